"""Provider registry: loaded provider definitions plus one adapter instance per provider.

A provider YAML names its wire protocol in ``runtime.protocol``. The registry is given the
table of protocols (name -> ``"module:Class"`` of the adapter) by whoever builds it — the
providers wing publishes it as :data:`providers.PROTOCOLS` — and imports a protocol lazily
the first time a provider needs it. So the engine knows no protocol and no provider: an
OpenAI-compatible provider is a YAML folder and nothing else.

The first root holds the built-in definitions and loads strictly. Further roots (the operator's
``provider_dirs``) load through :mod:`engine.plugins` into a :class:`LoadReport`: a published
folder for a provider the runtime already serves keeps the runtime's ``runtime:`` options (its own
are laid over them), config overlays make an unknown vendor callable, and a bad file or option
block is reported instead of stopping the server (unless the operator asked for strict mode).
"""

from __future__ import annotations

import difflib
import importlib
import logging
from collections.abc import Mapping
from pathlib import Path

from .adapter import Adapter
from .entities import ModelType, ProviderEntity
from .errors import NotFoundError
from .loader import ProviderDefinition, load_providers
from .options import OptionsError, ProtocolOptions
from .plugins import LOADED, REPLACED, SKIPPED, LoadOptions, LoadReport, ProviderLoad, load_root

log = logging.getLogger("modelruntime.loader")


class DefinitionsError(ValueError):
    """Provider definitions the runtime cannot serve; raised at start-up with every problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid provider definitions:\n  " + "\n  ".join(problems))


def import_target(target: str) -> type:
    """Import ``"module:Class"`` (a protocol's adapter class)."""
    module_name, _, cls_name = target.partition(":")
    return getattr(importlib.import_module(module_name), cls_name)  # type: ignore[no-any-return]


class Registry:
    """Every provider definition and, for those that name a protocol, its adapter.

    Adapters are built at construction, so every ``runtime:`` block is validated against its
    protocol's typed options before the server serves anything; all problems are reported
    together (:class:`DefinitionsError`), not the first one.
    """

    def __init__(self, roots: list[Path], protocols: Mapping[str, str], options: LoadOptions | None = None) -> None:
        options = options or LoadOptions()
        self.definitions: dict[str, ProviderDefinition] = {}
        self.report = LoadReport()
        for note in options.notes:
            self.report.warn("config", note)
        for root in roots[:1]:
            self.definitions.update(load_providers(root))
        builtin = set(self.definitions)
        for root in roots[1:]:
            for definition, source in load_root(root, self.report):
                self._add(definition, source, builtin)
        self._overlay(options.overlays)
        self.protocols = dict(protocols)
        self._adapters: dict[str, Adapter] = {}
        added = {p.provider for p in self.report.providers if p.status != SKIPPED}
        problems: list[str] = []
        for name, definition in self.definitions.items():
            if "protocol" not in definition.entity.runtime:
                if name in added:
                    self.report.warn(self.report.provider(name).source,  # type: ignore[union-attr]
                                     f"provider {name}: no runtime.protocol, so its models are listed but "
                                     f"cannot be called (give it plugins.overlays.{name} in the server config)")
                continue  # catalog-only: its models are listed but cannot be called
            try:
                self._adapters[name] = self._build(definition)
            except OptionsError as exc:
                if name in added:
                    self.report.error(self.report.provider(name).source, str(exc))  # type: ignore[union-attr]
                else:
                    problems.append(str(exc))
        if options.strict and self.report.errors:
            problems += [f"{p.file}: {p.reason}" for p in self.report.errors]
        if problems:
            raise DefinitionsError(problems)
        self._log()

    def _add(self, definition: ProviderDefinition, source: Path, builtin: set[str]) -> None:
        """Add an operator's provider; one of the same name is replaced, keeping its runtime options."""
        name = definition.entity.provider
        before = self.definitions.get(name)
        if before is None:
            self.report.providers.append(ProviderLoad(name, LOADED, str(source)))
        else:
            own = definition.entity.runtime
            definition.entity.runtime = {**before.entity.runtime, **own}
            kept = "kept" if not own else "merged its runtime: options over"
            origin = "the built-in" if name in builtin else f"the one from {self.report.provider(name).source}"  # type: ignore[union-attr]
            detail = f"replaces {origin}; {kept} the runtime's own runtime: options"
            if not before.entity.runtime:
                detail = f"replaces {origin}"
            self.report.providers.append(ProviderLoad(name, REPLACED, str(source), detail))
        self.definitions[name] = definition

    def _overlay(self, overlays: Mapping[str, Mapping]) -> None:
        for name, overlay in overlays.items():
            definition = self.definitions.get(name)
            if definition is None:
                self.report.error("config", f"plugins.overlays.{name}: no provider '{name}' was loaded")
                continue
            definition.entity.runtime = {**definition.entity.runtime, **overlay}
            entry = self.report.provider(name)
            if entry is not None:
                entry.detail = "; ".join(filter(None, [entry.detail, "runtime options from plugins.overlays"]))

    def _log(self) -> None:
        if not self.report.providers and not self.report.problems:
            return
        for entry in self.report.providers:
            log.info("provider %s: %s from %s%s", entry.provider, entry.status, entry.source,
                     f" ({entry.detail})" if entry.detail else "")
        for problem in self.report.problems:
            (log.error if problem.severity == "error" else log.warning)("%s: %s", problem.file, problem.reason)

    def definition(self, provider: str) -> ProviderDefinition:
        found = self.definitions.get(provider)
        if found is None:
            raise NotFoundError(f"Unknown provider '{provider}'", provider=provider)
        return found

    def adapter_class(self, protocol: str) -> type[Adapter]:
        target = self.protocols.get(protocol)
        if target is None:
            raise KeyError(protocol)
        return import_target(target)

    def adapter(self, provider: str) -> Adapter:
        adapter = self._adapters.get(provider)
        if adapter is None:
            self.definition(provider)  # unknown provider: NotFound
            raise NotFoundError(f"Provider '{provider}' names no protocol: its models cannot be called",
                                provider=provider)
        return adapter

    def _build(self, definition: ProviderDefinition) -> Adapter:
        entity = definition.entity
        where = f"provider {entity.provider} ({definition.folder}): runtime"
        protocol = str(entity.runtime.get("protocol"))
        cls = self._protocol_class(protocol, where)
        options = cls.options_model.parse(entity.runtime, where)
        adapter = cls(entity, options)
        adapter.predefined = definition.index
        problems = adapter.model_problems()
        if problems:
            raise OptionsError(where, problems)
        if options.base_models_from:  # e.g. Azure deployments take the schema of an OpenAI base model
            base = self.definitions.get(options.base_models_from)
            if base is None:
                raise OptionsError(where, [f"'base_models_from': no provider '{options.base_models_from}'"])
            adapter.base_models = base.index
        for type_name, other in options.capabilities.items():
            adapter.composed[self._composed_type(entity, type_name, where)] = self._compose(
                definition, options, other, where)
        unused = set(options.capability_options) - set(options.capabilities.values())
        if unused:
            raise OptionsError(where, [f"'capability_options.{name}': no capability uses protocol '{name}'"
                                       for name in sorted(unused)])
        return adapter

    def _compose(self, definition: ProviderDefinition, options: ProtocolOptions, protocol: str,
                 where: str) -> Adapter:
        """The adapter of a protocol declared in ``runtime.capabilities``: its options are the keys
        of this block it shares, with ``capability_options.<protocol>`` laid over them."""
        cls = self._protocol_class(protocol, f"{where}.capabilities")
        shared = {k: v for k, v in options.model_dump(exclude_unset=True).items()
                  if k in cls.options_model.model_fields
                  and k not in ("protocol", "capabilities", "capability_options", "base_models_from")}
        raw = {**shared, **options.capability_options.get(protocol, {}), "protocol": protocol}
        composed = cls(definition.entity, cls.options_model.parse(raw, f"{where}.capability_options.{protocol}"))
        composed.predefined = definition.index
        return composed

    @staticmethod
    def _composed_type(entity: ProviderEntity, name: str, where: str) -> ModelType:
        try:
            model_type = ModelType.value_of(name)
        except ValueError:
            raise OptionsError(where, [f"'capabilities.{name}': not a model type"]) from None
        if model_type not in entity.supported_model_types:
            problem = f"'capabilities.{name}': the provider does not declare {model_type.value} models"
            raise OptionsError(where, [problem])
        return model_type

    def _protocol_class(self, protocol: str, where: str) -> type[Adapter]:
        if protocol not in self.protocols:
            near = difflib.get_close_matches(protocol, list(self.protocols), n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            raise OptionsError(where, [f"unknown protocol '{protocol}'{hint}"])
        return self.adapter_class(protocol)

    def provider_names(self, model_type: ModelType | None = None) -> list[str]:
        return [
            name for name, d in self.definitions.items()
            if model_type is None or model_type in d.entity.supported_model_types
        ]
