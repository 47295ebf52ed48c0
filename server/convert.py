"""Protobuf ↔ domain conversion: the one boundary between gRPC messages and the engine.

Servicers only orchestrate (convert the request, call the runtime, convert the result);
every proto ↔ domain mapping lives here, so adapters and the runtime never see protobuf.
Converts once per call at the edge. Struct values are unpacked with a small recursive walk
rather than json_format (several times faster on the hot path), after a cap on their keys:
a Struct is the one request field whose size the engine cannot bound cheaply afterwards.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from enum import Enum
from typing import Any

from google.protobuf import struct_pb2
from modelruntime.v1 import common_pb2
from modelruntime.v1 import llm_service_pb2 as llm_pb
from modelruntime.v1 import moderation_service_pb2 as mod_pb
from modelruntime.v1 import provider_service_pb2 as prov_pb
from modelruntime.v1 import rerank_service_pb2 as rr_pb
from modelruntime.v1 import text_embedding_service_pb2 as te_pb
from modelruntime.v1 import tts_service_pb2 as tts_pb

from engine import entities as ent
from engine.adapter import LLMRequest
from engine.errors import FieldViolation, InvokeBadRequestError
from engine.messages import (
    AudioChunk,
    ContentPart,
    EmbeddingResult,
    LLMChunk,
    LLMResult,
    LLMUsage,
    ModerationResult,
    PartKind,
    PromptMessage,
    ProviderState,
    ReasoningPart,
    RerankResult,
    Role,
    Tool,
    ToolCall,
    ToolChoice,
    Voice,
)
from engine.plugins import LoadReport
from engine.pricing import decimal_str
from engine.runtime import Limits, Target

# ---- Struct / Value --------------------------------------------------------------------


def value_to_py(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "number_value":
        return value.number_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return struct_to_dict(value.struct_value)
    if kind == "list_value":
        return [value_to_py(v) for v in value.list_value.values]
    return None


def struct_to_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    return {k: value_to_py(v) for k, v in struct.fields.items()}


def capped_struct(struct: struct_pb2.Struct, field: str, max_keys: int) -> dict[str, Any]:
    """A caller's map (parameters, credentials) as a dict, refused past ``max_keys`` keys."""
    if len(struct.fields) > max_keys:
        raise InvokeBadRequestError(
            f"{field} has {len(struct.fields)} keys; the limit is {max_keys}",
            field_violations=(FieldViolation(field, f"at most {max_keys} keys are accepted"),),
        )
    return struct_to_dict(struct)


def credentials(request: Any, limits: Limits) -> dict[str, Any]:
    """The ``credentials`` Struct of a ProviderService request."""
    return capped_struct(request.credentials, "credentials", limits.max_struct_keys)


def optional_credentials(request: Any, limits: Limits) -> dict[str, Any] | None:
    """The optional ``credentials`` Struct of a ProviderService request (None: not sent)."""
    return credentials(request, limits) if request.HasField("credentials") else None


def optional(request: Any, field: str) -> Any:
    """A proto3 ``optional`` scalar: its value, or None when the caller left it unset."""
    return getattr(request, field) if request.HasField(field) else None


def dict_to_struct(data: dict[str, Any], out: struct_pb2.Struct | None = None) -> struct_pb2.Struct:
    out = out if out is not None else struct_pb2.Struct()
    if data:
        out.update(_jsonable(data))
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, Enum):
        return value.value
    return value


def py_to_value(value: Any) -> struct_pb2.Value:
    out = struct_pb2.Value()
    if value is None:
        out.null_value = struct_pb2.NULL_VALUE
    else:
        holder = struct_pb2.Struct()
        holder.update({"v": _jsonable(value)})
        out.CopyFrom(holder.fields["v"])
    return out


# ---- targets ---------------------------------------------------------------------------

MODEL_TYPES = {
    common_pb2.MODEL_TYPE_LLM: ent.ModelType.LLM,
    common_pb2.MODEL_TYPE_TEXT_EMBEDDING: ent.ModelType.TEXT_EMBEDDING,
    common_pb2.MODEL_TYPE_RERANK: ent.ModelType.RERANK,
    common_pb2.MODEL_TYPE_SPEECH2TEXT: ent.ModelType.SPEECH2TEXT,
    common_pb2.MODEL_TYPE_MODERATION: ent.ModelType.MODERATION,
    common_pb2.MODEL_TYPE_TTS: ent.ModelType.TTS,
}
MODEL_TYPES_PB = {v: k for k, v in MODEL_TYPES.items()}


def model_type(value: int, field: str = "model_type", required: bool = True) -> ent.ModelType | None:
    found = MODEL_TYPES.get(value)
    if found is None and required:
        raise InvokeBadRequestError(
            f"{field} is required", field_violations=(FieldViolation(field, "must be a model type"),)
        )
    return found


def target(msg: common_pb2.ModelTarget, limits: Limits, route: str = "") -> Target:
    if route:
        if msg.provider or msg.model or msg.credentials.fields or msg.credentials_name:
            raise InvokeBadRequestError("Set either target or route, not both",
                                        field_violations=(FieldViolation("route", "set either target or route"),))
        return Target("", "", {}, route)
    if not msg.provider:
        raise InvokeBadRequestError("target.provider is required",
                                    field_violations=(FieldViolation("target.provider", "required"),))
    if not msg.model:
        raise InvokeBadRequestError("target.model is required",
                                    field_violations=(FieldViolation("target.model", "required"),))
    return Target(msg.provider, msg.model, capped_struct(msg.credentials, "target.credentials", limits.max_struct_keys))


# ---- LLM requests ----------------------------------------------------------------------

_ROLES = {
    llm_pb.ROLE_SYSTEM: Role.SYSTEM, llm_pb.ROLE_USER: Role.USER, llm_pb.ROLE_ASSISTANT: Role.ASSISTANT,
    llm_pb.ROLE_TOOL: Role.TOOL, llm_pb.ROLE_DEVELOPER: Role.DEVELOPER,
}
_DETAIL = {llm_pb.IMAGE_DETAIL_LOW: "low", llm_pb.IMAGE_DETAIL_HIGH: "high", llm_pb.IMAGE_DETAIL_AUTO: "auto"}
_MEDIA = {"image": PartKind.IMAGE, "audio": PartKind.AUDIO, "video": PartKind.VIDEO, "document": PartKind.DOCUMENT}
_CHOICE = {
    llm_pb.TOOL_CHOICE_MODE_AUTO: "auto", llm_pb.TOOL_CHOICE_MODE_NONE: "none",
    llm_pb.TOOL_CHOICE_MODE_REQUIRED: "required", llm_pb.TOOL_CHOICE_MODE_FUNCTION: "function",
}


_TTL = {llm_pb.CACHE_TTL_UNSPECIFIED: "5m", llm_pb.CACHE_TTL_FIVE_MINUTES: "5m", llm_pb.CACHE_TTL_ONE_HOUR: "1h"}


def _cache(holder: llm_pb.ContentPart | llm_pb.Tool) -> str:
    """A cache breakpoint's lifetime ("5m", "1h"), or "" when the caller set none."""
    return _TTL.get(holder.cache_control.ttl, "5m") if holder.HasField("cache_control") else ""


def _part(part: llm_pb.ContentPart, path: str) -> ContentPart:
    which = part.WhichOneof("part")
    if which == "text":
        return ContentPart(PartKind.TEXT, text=part.text, cache=_cache(part))
    if which is None:
        raise InvokeBadRequestError(f"{path} is empty", field_violations=(FieldViolation(path, "empty part"),))
    media = getattr(part, which)
    mime = media.mime_type
    return ContentPart(
        _MEDIA[which], data=media.data, url=media.url, mime_type=mime,
        format=media.format or (mime.rsplit("/", 1)[-1] if mime else ""),
        detail=_DETAIL.get(media.detail, ""), filename=media.filename, cache=_cache(part),
    )


def _state(holder: llm_pb.Message | llm_pb.ToolCall) -> ProviderState | None:
    if not holder.HasField("provider_state"):
        return None
    return ProviderState(holder.provider_state.origin, holder.provider_state.data)


def _state_out(state: ProviderState | None, holder: Any) -> None:
    if state is not None:
        holder.provider_state.origin = state.origin
        holder.provider_state.data = state.data


def messages(msgs: Iterable[llm_pb.Message]) -> list[PromptMessage]:
    out = []
    for i, m in enumerate(msgs):
        role = _ROLES.get(m.role)
        if role is None:
            raise InvokeBadRequestError(
                f"messages[{i}].role is required",
                field_violations=(FieldViolation(f"messages[{i}].role", "must be set"),),
            )
        out.append(PromptMessage(
            role=role,
            content=[_part(p, f"messages[{i}].content[{j}]") for j, p in enumerate(m.content)],
            name=m.name,
            tool_calls=[ToolCall(c.id, c.name, c.arguments, c.type or "function", _state(c)) for c in m.tool_calls],
            tool_call_id=m.tool_call_id,
            reasoning=[ReasoningPart(r.text, r.signature, r.encrypted, r.id, r.origin) for r in m.reasoning],
            state=_state(m),
        ))
    return out


def tools(items: Iterable[llm_pb.Tool]) -> list[Tool]:
    return [Tool(t.name, t.description, struct_to_dict(t.parameters), _cache(t)) for t in items]


def tool_choice(msg: llm_pb.ToolChoice, present: bool) -> ToolChoice | None:
    if not present or msg.mode == llm_pb.TOOL_CHOICE_MODE_UNSPECIFIED:
        return None
    mode = _CHOICE[msg.mode]
    if mode == "function" and not msg.function_name:
        raise InvokeBadRequestError(
            "tool_choice.function_name is required with TOOL_CHOICE_MODE_FUNCTION",
            field_violations=(FieldViolation("tool_choice.function_name", "required"),),
        )
    return ToolChoice(mode, msg.function_name)


def llm_request(request: llm_pb.GenerateRequest | llm_pb.StreamGenerateRequest, limits: Limits) -> LLMRequest:
    return LLMRequest(
        messages=messages(request.messages),
        parameters=capped_struct(request.model_parameters, "model_parameters", limits.max_struct_keys),
        tools=tools(request.tools),
        tool_choice=tool_choice(request.tool_choice, request.HasField("tool_choice")),
        stop=list(request.stop),
        user=request.user,
    )


# ---- LLM results -----------------------------------------------------------------------

_FINISH = {
    "stop": llm_pb.FINISH_REASON_STOP, "length": llm_pb.FINISH_REASON_LENGTH,
    "tool_calls": llm_pb.FINISH_REASON_TOOL_CALLS, "content_filter": llm_pb.FINISH_REASON_CONTENT_FILTER,
    "other": llm_pb.FINISH_REASON_OTHER,
}


def usage(u: LLMUsage, out: common_pb2.LLMUsage) -> None:
    out.prompt_tokens = u.prompt_tokens
    out.prompt_unit_price = decimal_str(u.prompt_unit_price)
    out.prompt_price_unit = decimal_str(u.prompt_price_unit)
    out.prompt_price = decimal_str(u.prompt_price)
    out.completion_tokens = u.completion_tokens
    out.completion_unit_price = decimal_str(u.completion_unit_price)
    out.completion_price_unit = decimal_str(u.completion_price_unit)
    out.completion_price = decimal_str(u.completion_price)
    out.total_tokens = u.total_tokens
    out.total_price = decimal_str(u.total_price)
    out.currency = u.currency
    out.latency = u.latency
    out.cached_prompt_tokens = u.cached_prompt_tokens
    out.reasoning_tokens = u.reasoning_tokens
    out.cache_write_tokens = u.cache_write_tokens
    out.cache_write_1h_tokens = u.cache_write_1h_tokens


def generate_response(result: LLMResult) -> llm_pb.GenerateResponse:
    out = llm_pb.GenerateResponse(
        id=result.id, model=result.model, provider_finish_reason=result.provider_finish_reason,
        system_fingerprint=result.system_fingerprint,
    )
    if result.finish_reason is not None:
        out.finish_reason = _FINISH[result.finish_reason.value]
    m = result.message
    msg = out.message
    msg.content = m.content
    msg.reasoning_content = m.reasoning_content
    msg.refusal = m.refusal
    for c in m.tool_calls:
        _state_out(c.state, msg.tool_calls.add(id=c.id, type=c.type, name=c.name, arguments=c.arguments))
    for r in m.reasoning:
        msg.reasoning.add(text=r.text, signature=r.signature, encrypted=r.encrypted, id=r.id, origin=r.origin)
    _state_out(m.state, msg)
    if result.usage is not None:
        usage(result.usage, out.usage)
    return out


def stream_chunk(chunk: LLMChunk) -> llm_pb.StreamGenerateResponse:
    out = llm_pb.StreamGenerateResponse(id=chunk.id, model=chunk.model, index=chunk.index)
    delta = out.delta
    if chunk.content:
        delta.content = chunk.content
    if chunk.reasoning_content:
        delta.reasoning_content = chunk.reasoning_content
    if chunk.refusal:
        delta.refusal = chunk.refusal
    for t in chunk.tool_calls:
        _state_out(t.state, delta.tool_calls.add(index=t.index, id=t.id, name=t.name, arguments=t.arguments,
                                                 type=t.type))
    for r in chunk.reasoning:
        delta.reasoning.add(index=r.index, text=r.text, signature=r.signature, encrypted=r.encrypted, id=r.id,
                            origin=r.origin)
    _state_out(chunk.state, delta)
    if chunk.finish_reason is not None:
        out.finish_reason = _FINISH[chunk.finish_reason.value]
        out.provider_finish_reason = chunk.provider_finish_reason
        out.system_fingerprint = chunk.system_fingerprint
    if chunk.usage is not None:
        usage(chunk.usage, out.usage)
    return out


# ---- embeddings, rerank, moderation ----------------------------------------------------

_INPUT_TYPES = {te_pb.EMBEDDING_INPUT_TYPE_QUERY: "query"}


def input_type(value: int) -> str:
    return _INPUT_TYPES.get(value, "document")


def embed_response(result: EmbeddingResult) -> te_pb.EmbedResponse:
    response = te_pb.EmbedResponse(model=result.model)
    add = response.embeddings.add
    for vector in result.embeddings:
        add().values.extend(vector)
    u = result.usage
    if u is not None:
        out = response.usage
        out.tokens, out.total_tokens, out.currency, out.latency = u.tokens, u.total_tokens, u.currency, u.latency
        out.unit_price, out.price_unit = decimal_str(u.unit_price), decimal_str(u.price_unit)
        out.total_price = decimal_str(u.total_price)
    return response


def rerank_response(result: RerankResult) -> rr_pb.RerankResponse:
    response = rr_pb.RerankResponse(model=result.model)
    for d in result.docs:
        response.documents.add(index=d.index, text=d.text, score=d.score)
    return response


def moderate_response(result: ModerationResult) -> mod_pb.ModerateResponse:
    response = mod_pb.ModerateResponse(flagged=result.flagged, model=result.model)
    for c in result.categories:
        response.categories.add(name=c.name, flagged=c.flagged, score=c.score)
    return response


# ---- text to speech --------------------------------------------------------------------

_ENCODINGS = {
    tts_pb.AUDIO_ENCODING_MP3: "mp3", tts_pb.AUDIO_ENCODING_OPUS: "opus", tts_pb.AUDIO_ENCODING_AAC: "aac",
    tts_pb.AUDIO_ENCODING_FLAC: "flac", tts_pb.AUDIO_ENCODING_WAV: "wav", tts_pb.AUDIO_ENCODING_PCM: "pcm",
}
_ENCODINGS_PB = {v: k for k, v in _ENCODINGS.items()}


def encoding(value: int) -> str:
    """The requested audio encoding ('' = the model's default)."""
    return _ENCODINGS.get(value, "")


def audio_chunk(chunk: AudioChunk) -> tts_pb.StreamSynthesizeResponse:
    return tts_pb.StreamSynthesizeResponse(
        audio=chunk.data, encoding=_ENCODINGS_PB.get(chunk.encoding, tts_pb.AUDIO_ENCODING_UNSPECIFIED),
        mime_type=chunk.mime_type, sample_rate_hz=chunk.sample_rate_hz,
    )


def voices_response(voices: Iterable[Voice]) -> tts_pb.ListVoicesResponse:
    response = tts_pb.ListVoicesResponse()
    for v in voices:
        response.voices.add(id=v.id, name=v.name, languages=v.languages)
    return response


# ---- catalog ---------------------------------------------------------------------------


def i18n(obj: ent.I18nObject | None, out: common_pb2.I18nText) -> None:
    if obj is None:
        return
    out.en_us = obj.en_US
    out.zh_hans = obj.zh_Hans or ""
    out.pt_br = obj.pt_BR or ""
    out.ja_jp = obj.ja_JP or ""


def _enum(pb_module: Any, prefix: str, value: str) -> int:
    return getattr(pb_module, f"{prefix}_{value.upper().replace('-', '_')}")


def _show_on(items: list[ent.ShowOn], out: Any) -> None:
    for s in items:
        out.add(variable=s.variable, value=s.value)


def credential_fields(schemas: list[ent.CredentialFormSchema], out: Any) -> None:
    for f in schemas:
        field = out.add(variable=f.variable, type=_enum(prov_pb, "FORM_TYPE", f.type.value),
                        required=f.required, max_length=f.max_length)
        i18n(f.label, field.label)
        i18n(f.placeholder, field.placeholder)
        i18n(f.help, field.help)
        if f.default is not None:
            field.default = f.default
        for o in f.options or []:
            option = field.options.add(value=o.value)
            i18n(o.label, option.label)
            _show_on(o.show_on, option.show_on)
        _show_on(f.show_on, field.show_on)


def provider(p: ent.ProviderEntity, out: prov_pb.Provider) -> None:
    out.name = p.provider
    i18n(p.label, out.label)
    i18n(p.description, out.description)
    i18n(p.icon_small, out.icon_small)
    i18n(p.icon_large, out.icon_large)
    out.background = p.background or ""
    if p.help:
        i18n(p.help.title, out.help.title)
        i18n(p.help.url, out.help.url)
    out.supported_model_types.extend(MODEL_TYPES_PB[t] for t in p.supported_model_types)
    out.configurate_methods.extend(_enum(prov_pb, "CONFIGURATE_METHOD", m.value) for m in p.configurate_methods)
    if p.provider_credential_schema:
        credential_fields(p.provider_credential_schema.credential_form_schemas, out.provider_credential_fields)
    if p.model_credential_schema:
        credential_fields(p.model_credential_schema.credential_form_schemas, out.model_credential_fields)
        i18n(p.model_credential_schema.model.label, out.model_name_label)
        i18n(p.model_credential_schema.model.placeholder, out.model_name_placeholder)
        i18n(p.model_credential_schema.model.help, out.model_name_help)


def model(m: ent.AIModelEntity, out: prov_pb.Model) -> None:
    out.name = m.model
    i18n(m.label, out.label)
    out.model_type = MODEL_TYPES_PB[m.model_type]
    out.features.extend(_enum(prov_pb, "MODEL_FEATURE", f.value) for f in m.features or [])
    out.fetch_from = _enum(prov_pb, "FETCH_FROM", m.fetch_from.value)
    dict_to_struct(m.model_properties, out.properties)
    out.deprecated = m.deprecated
    for r in m.parameter_rules:
        rule = out.parameter_rules.add(
            name=r.name, use_template=r.use_template or "",
            type=_enum(prov_pb, "PARAMETER_TYPE", r.type.value), required=r.required, options=r.options,
        )
        i18n(r.label, rule.label)
        i18n(r.help, rule.help)
        i18n(r.placeholder, rule.placeholder)
        _show_on(r.show_on, rule.show_on)
        if r.default is not None:
            rule.default.CopyFrom(py_to_value(r.default))
        if r.min is not None:
            rule.min = r.min
        if r.max is not None:
            rule.max = r.max
        if r.precision is not None:
            rule.precision = r.precision
    if m.pricing is not None:
        out.pricing.input = decimal_str(m.pricing.input)
        out.pricing.output = decimal_str(m.pricing.output) if m.pricing.output is not None else ""
        out.pricing.unit = decimal_str(m.pricing.unit)
        out.pricing.currency = m.pricing.currency
        out.pricing.cached = _money(m.pricing.cached)
        out.pricing.cache_write = _money(m.pricing.cache_write)
        out.pricing.cache_write_1h = _money(m.pricing.cache_write_1h)
        for t in m.pricing.tiered_pricing:
            tier = out.pricing.tiers.add(min_prompt_tokens=t.min, input=_money(t.input), output=_money(t.output),
                                         cached=_money(t.cached))
            if t.max is not None:
                tier.max_prompt_tokens = t.max


def _money(value: Decimal | None) -> str:
    return decimal_str(value) if value is not None else ""


_LOAD_STATUS = {"loaded": prov_pb.PROVIDER_LOAD_STATUS_LOADED, "replaced": prov_pb.PROVIDER_LOAD_STATUS_REPLACED,
                "skipped": prov_pb.PROVIDER_LOAD_STATUS_SKIPPED}
_SEVERITY = {"error": prov_pb.LOAD_PROBLEM_SEVERITY_ERROR, "warning": prov_pb.LOAD_PROBLEM_SEVERITY_WARNING}


def loading_report(report: LoadReport) -> prov_pb.GetLoadingReportResponse:
    out = prov_pb.GetLoadingReportResponse()
    for p in report.providers:
        out.providers.add(provider=p.provider, status=_LOAD_STATUS[p.status], source=p.source, detail=p.detail)
    for problem in report.problems:
        out.problems.add(file=problem.file, reason=problem.reason, severity=_SEVERITY[problem.severity])
    return out


# ---- routes -----------------------------------------------------------------------------


def routes_response(router: Any) -> prov_pb.ListRoutesResponse:
    """The routes of an ``engine.routing.Router``, deployments in order, never their credentials."""
    response = prov_pb.ListRoutesResponse()
    for name in sorted(router.routes):
        route = router.routes[name]
        spec = route.spec
        out = response.routes.add(name=name, strategy=spec.strategy, retry_attempts=spec.retry.attempts,
                                  context_window_fallback=spec.context_window_fallback,
                                  description=spec.description)
        for deployment in route.deployments:
            d = deployment.spec
            cooling = router.cooling(deployment)
            out.deployments.add(name=deployment.name, provider=d.provider, model=d.model, weight=d.weight,
                                max_in_flight=d.max_in_flight, in_flight=deployment.in_flight,
                                cooling_down=cooling is not None, cooldown_seconds=cooling or 0.0,
                                credentials_name=d.credentials_name)
    return response
