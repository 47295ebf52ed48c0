"""Pure transforms between domain LLM requests/results and OpenAI's chat wire format.

No I/O here: request bodies in, parsed JSON out, so every quirk is unit-testable.
Tolerates what compatible servers omit (ids, usage, tool-call indexes, the first-delta
role) and reads the usage variants some put elsewhere (Moonshot: ``choices[0].usage``,
Groq: ``x_groq.usage``). :func:`apply_body_options` applies the provider's declared request
quirks (``runtime:`` options documented in :mod:`.client`) to a built body.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from engine.adapter import LLMRequest
from engine.errors import FieldViolation, InvokeBadRequestError
from engine.messages import (
    CHAT_COMPLETIONS_ORIGIN,
    AssistantMessage,
    ContentPart,
    FinishReason,
    LLMResult,
    PartKind,
    PromptMessage,
    ReasoningPart,
    Role,
    TokenCounts,
    ToolCall,
)
from providers.kit.toolcalls import IdRewriter

from .options import OpenAIOptions

CHAT_ORIGIN = CHAT_COMPLETIONS_ORIGIN  # reasoning_content of chat completions (DeepSeek, Moonshot, ...)

FINISH_REASONS = {
    "stop": FinishReason.STOP,
    "length": FinishReason.LENGTH,
    "tool_calls": FinishReason.TOOL_CALLS,
    "function_call": FinishReason.TOOL_CALLS,
    "content_filter": FinishReason.CONTENT_FILTER,
    "sensitive": FinishReason.CONTENT_FILTER,  # Zhipu
    "max_tokens": FinishReason.LENGTH,
    "eos": FinishReason.STOP,
}


def finish_reason(raw: str | None) -> FinishReason:
    return FINISH_REASONS.get(raw or "stop", FinishReason.OTHER)


def _data_uri(part: ContentPart) -> str:
    if part.url:
        return part.url
    return f"data:{part.mime_type or 'application/octet-stream'};base64,{base64.b64encode(part.data).decode()}"


def _part(part: ContentPart) -> dict[str, Any]:
    kind = part.kind
    if kind is PartKind.TEXT:
        return {"type": "text", "text": part.text}
    if kind is PartKind.IMAGE:
        image: dict[str, Any] = {"url": _data_uri(part)}
        if part.detail:
            image["detail"] = part.detail
        return {"type": "image_url", "image_url": image}
    if kind is PartKind.AUDIO:
        data = part.data or (base64.b64decode(part.url.split(",", 1)[1]) if part.url.startswith("data:") else b"")
        if not data:
            raise InvokeBadRequestError("audio input must be inline data for this provider",
                                        field_violations=(FieldViolation("messages.content", "audio needs data"),))
        fmt = part.format or part.mime_type.rsplit("/", 1)[-1].replace("mpeg", "mp3").replace("x-wav", "wav")
        return {"type": "input_audio", "input_audio": {"data": base64.b64encode(data).decode(), "format": fmt}}
    if kind is PartKind.DOCUMENT:
        file: dict[str, Any] = {"file_data": _data_uri(part)}
        file["filename"] = part.filename or f"document.{part.format or 'pdf'}"
        return {"type": "file", "file": file}
    # Video: OpenAI has no video part; compatible servers (vLLM, Qwen) accept video_url.
    return {"type": "video_url", "video_url": {"url": _data_uri(part)}}


def _content(message: PromptMessage) -> Any:
    parts = message.content
    if len(parts) == 1 and parts[0].kind is PartKind.TEXT:
        return parts[0].text
    if all(p.kind is PartKind.TEXT for p in parts):
        return "".join(p.text for p in parts)
    return [_part(p) for p in parts]


def add_reasoning_history(wire: list[dict[str, Any]], messages: list[PromptMessage]) -> None:
    """Give each assistant turn its own reasoning back as ``reasoning_content`` (the wire list is
    one message per domain message, as :func:`build_chat_body` builds it)."""
    for out, message in zip(wire, messages, strict=True):
        if message.role is Role.ASSISTANT:
            text = "".join(p.text for p in message.reasoning_from(CHAT_ORIGIN))
            if text:
                out["reasoning_content"] = text


def message_to_wire(message: PromptMessage) -> dict[str, Any]:
    role = message.role
    if role is Role.ASSISTANT:
        out: dict[str, Any] = {"role": "assistant", "content": message.text() or None}
        if message.tool_calls:
            out["tool_calls"] = [
                {"id": c.id, "type": c.type or "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in message.tool_calls
            ]
    elif role is Role.TOOL:
        out = {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.text()}
    else:
        out = {"role": role.value, "content": _content(message)}
    if message.name:
        out["name"] = message.name
    return out


def _response_format(params: dict[str, Any]) -> dict[str, Any] | None:
    kind = params.pop("response_format", None)
    schema_text = params.pop("json_schema", None)
    if kind in (None, ""):
        if schema_text:
            kind = "json_schema"
        else:
            return None
    if kind == "json_schema":
        if not schema_text:
            raise InvokeBadRequestError(
                "response_format json_schema needs the json_schema parameter",
                field_violations=(FieldViolation("model_parameters.json_schema", "required with json_schema"),),
            )
        try:
            schema = orjson.loads(schema_text) if isinstance(schema_text, str) else schema_text
        except orjson.JSONDecodeError as exc:
            raise InvokeBadRequestError(
                f"json_schema is not valid JSON: {exc}",
                field_violations=(FieldViolation("model_parameters.json_schema", "not valid JSON"),),
            ) from None
        if not isinstance(schema, dict):
            raise InvokeBadRequestError(
                "json_schema must be a JSON object",
                field_violations=(FieldViolation("model_parameters.json_schema", "must be an object"),),
            )
        # Dify's form takes either {"name", "schema", "strict"} or a bare JSON schema.
        if "schema" not in schema:
            schema = {"name": "response", "schema": schema, "strict": True}
        schema.setdefault("name", "response")
        return {"type": "json_schema", "json_schema": schema}
    if kind in ("json_object", "JSON"):
        return {"type": "json_object"}
    return {"type": "text"}


def build_chat_body(model: str, request: LLMRequest, *, stream: bool, stream_usage: bool) -> dict[str, Any]:
    params = dict(request.parameters)
    body: dict[str, Any] = {"model": model, "messages": [message_to_wire(m) for m in request.messages]}
    response_format = _response_format(params)
    if response_format is not None:
        body["response_format"] = response_format
    body.update(params)
    if request.tools:
        body["tools"] = [
            {"type": "function", "function": {
                "name": t.name, "description": t.description,
                "parameters": t.parameters or {"type": "object", "properties": {}},
            }}
            for t in request.tools
        ]
        choice = request.tool_choice
        if choice is not None:
            if choice.mode == "function":
                body["tool_choice"] = {"type": "function", "function": {"name": choice.function_name}}
            else:
                body["tool_choice"] = choice.mode
    if request.stop:
        body["stop"] = request.stop
    if request.user:
        body["user"] = request.user
    if stream:
        body["stream"] = True
        if stream_usage:
            body["stream_options"] = {"include_usage": True}
    return body


def build_completion_body(model: str, request: LLMRequest, *, stream: bool, stream_usage: bool) -> dict[str, Any]:
    """Completion-mode models take one prompt string (Dify joins the messages' text)."""
    params = dict(request.parameters)
    params.pop("response_format", None)
    params.pop("json_schema", None)
    prompt = "\n".join(m.text() for m in request.messages if m.text())
    body: dict[str, Any] = {"model": model, "prompt": prompt, **params}
    if request.stop:
        body["stop"] = request.stop
    if request.user:
        body["user"] = request.user
    if stream:
        body["stream"] = True
        if stream_usage:
            body["stream_options"] = {"include_usage": True}
    return body


def _set_path(body: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = body
    for key in parents:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[leaf] = value


def _merge_missing(body: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if key not in body:
            body[key] = orjson.loads(orjson.dumps(value))  # a private copy of the YAML data
        elif isinstance(body[key], dict) and isinstance(value, dict):
            _merge_missing(body[key], value)


def _rewrite_tool_call_ids(messages: list[dict[str, Any]]) -> None:
    """Tool-call ids of the history in the 9-alphanumeric shape, calls and results alike."""
    calls = [c for m in messages for c in m.get("tool_calls") or () if isinstance(c.get("id"), str)]
    results = [m for m in messages if isinstance(m.get("tool_call_id"), str)]
    if not calls and not results:
        return
    rewrite = IdRewriter([c["id"] for c in calls] + [m["tool_call_id"] for m in results])
    for call in calls:
        call["id"] = rewrite(call["id"])
    for message in results:
        message["tool_call_id"] = rewrite(message["tool_call_id"])


def apply_body_options(body: dict[str, Any], options: OpenAIOptions) -> dict[str, Any]:
    """Apply the declared request quirks of a provider to a chat/completion body (in place).

    ``tool_choice_values``, ``switch_parameters``, ``parameter_paths``, ``extra_body``,
    ``user_max_length``, ``drop_fields`` and ``tool_call_ids``; see :class:`.options.OpenAIOptions`.
    """
    if options.tool_call_ids == "alnum9" and isinstance(body.get("messages"), list):
        _rewrite_tool_call_ids(body["messages"])
    choices = options.tool_choice_values
    if choices and isinstance(body.get("tool_choice"), str):
        body["tool_choice"] = choices.get(body["tool_choice"], body["tool_choice"])
    for name in options.switch_parameters:
        value = body.get(name)
        if isinstance(value, bool):
            body[name] = {"type": "enabled" if value else "disabled"}
    for name, path in options.parameter_paths.items():
        if name in body:
            _set_path(body, path, body.pop(name))
    if options.extra_body:
        _merge_missing(body, options.extra_body)
    limit = options.user_max_length
    if limit and isinstance(body.get("user"), str):
        body["user"] = body["user"][:limit]
    for name in options.drop_fields:
        body.pop(name, None)
    return body




def text_of(value: Any) -> str:
    """Text of a delta field that some servers send as a list of parts (MiniMax reasoning)."""
    if value is None or isinstance(value, str):
        return value or ""
    if isinstance(value, list):
        return "".join(text_of(v.get("text") if isinstance(v, dict) else v) for v in value)
    return str(value)


def counts_from_usage(usage: Any) -> TokenCounts | None:
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("prompt_tokens") or usage.get("input_tokens") or 0
    completion = usage.get("completion_tokens") or usage.get("output_tokens") or 0
    if not prompt and not completion and not usage.get("total_tokens"):
        return None
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or usage.get("prompt_cache_hit_tokens") or 0
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    return TokenCounts(int(prompt), int(completion), int(cached), int(reasoning))


def find_usage(obj: dict[str, Any]) -> TokenCounts | None:
    usage = obj.get("usage")
    if not usage:
        choices = obj.get("choices") or ()
        usage = choices[0].get("usage") if choices and isinstance(choices[0], dict) else None
    if not usage:
        usage = (obj.get("x_groq") or {}).get("usage")
    return counts_from_usage(usage)


def parse_chat_response(body: dict[str, Any], model: str, completion_mode: bool) -> LLMResult:
    choices = body.get("choices") or []
    choice = choices[0] if choices else {}
    message = AssistantMessage()
    if completion_mode:
        message.content = choice.get("text") or ""
    else:
        wire = choice.get("message") or {}
        message.content = text_of(wire.get("content"))
        message.reasoning_content = text_of(wire.get("reasoning_content") or wire.get("reasoning"))
        if message.reasoning_content:
            message.reasoning = [ReasoningPart(text=message.reasoning_content, origin=CHAT_ORIGIN)]
        message.refusal = wire.get("refusal") or ""
        for i, call in enumerate(wire.get("tool_calls") or []):
            function = call.get("function") or {}
            arguments = function.get("arguments")
            if not isinstance(arguments, str):  # some servers send an object
                arguments = orjson.dumps(arguments or {}).decode()
            message.tool_calls.append(ToolCall(
                id=str(call.get("id") or f"call_{i}"), name=function.get("name") or "",
                arguments=arguments, type=call.get("type") or "function",
            ))
    raw_finish = choice.get("finish_reason") or ""
    return LLMResult(
        model=body.get("model") or model,
        message=message,
        finish_reason=finish_reason(raw_finish),
        provider_finish_reason=raw_finish,
        id=body.get("id") or "",
        system_fingerprint=body.get("system_fingerprint") or "",
        counts=find_usage(body),
    )
