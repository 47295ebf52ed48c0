"""Schemas of customizable models, built from their credentials as Dify does.

- ``openai_api_compatible``: everything comes from the model credential form (mode,
  context size, max tokens, tool-call and vision support, voices). The variable names of
  the compatible providers' forms are all accepted: ``mode`` or ``completion_type``,
  ``max_tokens_to_sample`` or ``max_tokens``, ``model_label_en_US``/``model_label_zh_Hans``.
- ``base_model`` (Azure deployments): the predefined schema of the chosen base model of
  another provider, renamed to the deployment.
- OpenAI's own customizable names: a fine-tune (``ft:<base>:<org>[:<suffix>]:<id>``) or a dated
  snapshot (``gpt-4o-mini-2024-07-18``) takes the predefined schema of the model it names (its
  rules and pricing); a fine-tune of a model without YAML gets the customizable defaults.

The rule and schema builders are the kit's (:mod:`providers.kit.customizable`).
"""

from __future__ import annotations

import re
from typing import Any

from engine.entities import (
    AIModelEntity,
    FetchFrom,
    I18nObject,
    ModelFeature,
    ModelType,
    ParameterRule,
    ParameterType,
)
from providers.kit.customizable import form_int, rule, schema

_MODES = {"chat": "chat", "chat_completion": "chat", "completion": "completion"}


def _llm_rules(credentials: dict[str, Any]) -> list[ParameterRule]:
    max_tokens = form_int(credentials.get("max_tokens_to_sample") or credentials.get("max_tokens"), 4096)
    f, i = ParameterType.FLOAT, ParameterType.INT
    return [
        rule("temperature", f, template="temperature", min=0, max=2, default=0.7, precision=2),
        rule("top_p", f, template="top_p", min=0, max=1, default=1, precision=2),
        rule("presence_penalty", f, template="presence_penalty", min=-2, max=2, default=0, precision=2),
        rule("frequency_penalty", f, template="frequency_penalty", min=-2, max=2, default=0, precision=2),
        rule("max_tokens", i, template="max_tokens", min=1, max=max_tokens, default=min(512, max_tokens),
             precision=0),
        rule("seed", i),
        rule("response_format", ParameterType.STRING, options=["text", "json_object", "json_schema"]),
        rule("json_schema", ParameterType.TEXT, template="json_schema"),
    ]


def compatible_schema(model: str, model_type: ModelType, credentials: dict[str, Any]) -> AIModelEntity:
    features: list[ModelFeature] = []
    properties: dict[str, Any] = {}
    rules: list[ParameterRule] = []
    if model_type is ModelType.LLM:
        calling = credentials.get("function_calling_type")
        if calling in ("function_call", "tool_call"):
            features.append(ModelFeature.TOOL_CALL)
        if calling == "tool_call":
            features.append(ModelFeature.MULTI_TOOL_CALL)
        if credentials.get("stream_function_calling") == "supported":
            features.append(ModelFeature.STREAM_TOOL_CALL)
        if credentials.get("vision_support") == "support":
            features.append(ModelFeature.VISION)
        mode = _MODES.get(str(credentials.get("mode") or credentials.get("completion_type") or "chat"), "chat")
        properties = {"mode": mode, "context_size": form_int(credentials.get("context_size"), 4096)}
        rules = _llm_rules(credentials)
    elif model_type is ModelType.TEXT_EMBEDDING:
        properties = {"context_size": form_int(credentials.get("context_size"), 512), "max_chunks": 1}
    elif model_type is ModelType.RERANK:
        properties = {"context_size": form_int(credentials.get("context_size"), 512)}
    elif model_type is ModelType.TTS:
        voices = [v.strip() for v in str(credentials.get("voices") or "").split(",") if v.strip()] or ["alloy"]
        properties = {
            "default_voice": voices[0],
            "voices": [{"mode": v, "name": v, "language": []} for v in voices],
            "audio_type": "mp3",
        }
    label = I18nObject(en_US=str(credentials.get("model_label_en_US") or model),
                       zh_Hans=str(credentials.get("model_label_zh_Hans") or "") or None)
    return schema(model, model_type, properties, rules=rules, features=features, label=label)


def apply_model_info(info: dict[str, Any], credentials: dict[str, Any]) -> None:
    """Xinference ``GET /v1/models/{uid}`` → the compatible form's credential values (in place):
    ``chat`` or else ``generate`` ability picks the mode, ``tools`` enables tool calls,
    ``vision`` image input, ``context_length`` the context size."""
    ability = [str(a).lower() for a in info.get("model_ability") or []]
    if "chat" in ability:
        credentials["mode"] = "chat"
    elif "generate" in ability:
        credentials["mode"] = "completion"
    if "tools" in ability:
        credentials["function_calling_type"] = "tool_call"
        credentials["stream_function_calling"] = "supported"
    if "vision" in ability:
        credentials["vision_support"] = "support"
    if isinstance(info.get("context_length"), int) and info["context_length"] > 0:
        credentials["context_size"] = str(info["context_length"])


def base_model_schema(
    model: str, model_type: ModelType, base: str, catalog: dict[tuple[ModelType, str], AIModelEntity]
) -> AIModelEntity | None:
    found = catalog.get((model_type, base)) if base else None
    if found is None:
        return None
    return found.model_copy(update={
        "model": model, "label": I18nObject.plain(model), "fetch_from": FetchFrom.CUSTOMIZABLE_MODEL,
    })


_SNAPSHOT = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{4})$")  # -2024-07-18, -0125


def named_base(name: str, model_type: ModelType,
               predefined: dict[tuple[ModelType, str], AIModelEntity]) -> AIModelEntity | None:
    """The predefined model ``name`` stands for: itself, or the model of a dated snapshot."""
    found = predefined.get((model_type, name))
    if found is None:
        snapshot = _SNAPSHOT.search(name)
        if snapshot is not None:
            found = predefined.get((model_type, name[:snapshot.start()]))
    return found


def fine_tune_base(model: str) -> str:
    """The base model a fine-tune's name encodes (``ft:gpt-4o-mini-2024-07-18:org::id``), else the name."""
    parts = model.split(":")
    return parts[1] if parts[0] == "ft" and len(parts) >= 3 and parts[1] else model


def fine_tune_schema(
    model: str, model_type: ModelType, predefined: dict[tuple[ModelType, str], AIModelEntity],
    credentials: dict[str, Any],
) -> AIModelEntity | None:
    """OpenAI's customizable model: the base model's schema under the caller's name; a fine-tune
    of a model with no YAML gets the customizable defaults, and any other unknown name None (a
    typo fails here, naming the model, instead of after a round trip)."""
    base = named_base(fine_tune_base(model), model_type, predefined)
    if base is None:
        return compatible_schema(model, model_type, credentials) if model.startswith("ft:") else None
    return base.model_copy(update={
        "model": model, "label": I18nObject.plain(model), "fetch_from": FetchFrom.CUSTOMIZABLE_MODEL,
    })
