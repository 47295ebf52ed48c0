"""Typed ``runtime:`` options: how the runtime reaches a provider, checked at start-up.

A provider YAML's ``runtime:`` block is ours (Dify has none): it names the wire protocol and
gives that protocol's options. Each protocol declares its options as a subclass of
:class:`ProtocolOptions`; the registry validates every block when it loads the providers, so
a misspelt key stops start-up with the key and the nearest valid name instead of being
silently ignored at call time.

Keys every protocol shares:

    protocol            the wire protocol (a name in ``providers.PROTOCOLS``)
    base_models_from    another provider whose predefined models customizable models may name
                        as their base (Azure deployments take an OpenAI base model's schema)
    capabilities        {model type: protocol}: a model type served by another protocol
                        (Tongyi's rerank and TTS by DashScope's native API)
    capability_options  {protocol: {key: value}}: that protocol's own options; keys it shares
                        with this block (say ``api_key_credential``) are inherited
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .entities import ModelType


class ProtocolOptions(BaseModel):
    """Base of every protocol's options; unknown keys are an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    protocol: str
    base_models_from: str | None = None
    capabilities: dict[str, str] = Field(default_factory=dict)
    capability_options: dict[str, dict[str, Any]] = Field(default_factory=dict)

    def capabilities_types(self) -> list[ModelType]:
        """Model types another protocol serves (names are checked by the registry)."""
        out = []
        for name in self.capabilities:
            try:
                out.append(ModelType.value_of(name))
            except ValueError:
                continue
        return out


    @classmethod
    def parse(cls, raw: dict[str, Any], where: str) -> ProtocolOptions:
        """Validate a ``runtime:`` block; errors name the key and suggest the nearest valid one."""
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise OptionsError(where, describe(exc, cls)) from None


class OptionsError(ValueError):
    def __init__(self, where: str, problems: list[str]) -> None:
        self.where = where
        self.problems = problems
        super().__init__(f"{where}: " + "; ".join(problems))


def describe(exc: ValidationError, model: type[BaseModel]) -> list[str]:
    """Pydantic's errors as short lines: the dotted key, what is wrong, a suggestion for typos."""
    fields = list(model.model_fields)
    out = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden" and len(err["loc"]) == 1:
            near = difflib.get_close_matches(str(err["loc"][0]), fields, n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            out.append(f"unknown key '{key}'{hint}")
        else:
            out.append(f"'{key}': {err['msg']}")
    return out
