"""POST /v1/chat/completions: OpenAI chat → ``LLMRequest`` → runtime → OpenAI chat.

Request mapping:

* ``messages`` (system, developer, user, assistant with ``tool_calls``, tool) with text,
  ``image_url`` (data: and http(s) URLs, passed through without re-encoding), ``input_audio``,
  ``file`` (``file_data`` data: URLs) and ``video_url`` parts;
* ``tools`` (function tools) and ``tool_choice``; ``stop``, ``user``;
* ``response_format`` → the model parameters the runtime validates: ``json_object`` →
  ``{"response_format": "json_object"}``, ``json_schema`` → ``{"response_format":
  "json_schema", "json_schema": "<the json_schema object as JSON text>"}``;
* every other top-level field (temperature, top_p, seed, max_tokens, presence_penalty, ...)
  is a model parameter: the runtime checks it against the model's rules and drops the ones
  the model has no rule for (Dify semantics). ``max_completion_tokens`` also fills
  ``max_tokens``, so it reaches models whose rule uses either name; errors name the field the
  caller sent.

Streaming: no status line goes out before the runtime produced its first chunk (the
provider accepted the request), so a provider 429 is a real 429. After that, a failure is a
``data: {"error": {...}}`` event and the stream ends without ``[DONE]``.
"""

from __future__ import annotations

from typing import Any

import orjson

from engine.adapter import LLMRequest
from engine.errors import InvokeError, RuntimeFault
from engine.messages import (
    CHAT_COMPLETIONS_ORIGIN,
    ContentPart,
    FinishReason,
    LLMChunk,
    LLMResult,
    LLMUsage,
    PartKind,
    PromptMessage,
    ReasoningPart,
    Role,
    Tool,
    ToolCall,
    ToolChoice,
)

from .call import Call, new_id
from .openai_errors import bad_request, sse_error_event, to_http

_ROLES = {
    "system": Role.SYSTEM, "developer": Role.DEVELOPER, "user": Role.USER, "assistant": Role.ASSISTANT,
    "tool": Role.TOOL,
}
# Fields that are not model parameters.
_STRUCTURAL = frozenset({
    "model", "messages", "tools", "tool_choice", "stream", "stream_options", "stop", "user", "response_format",
    "n", "functions", "function_call",
})
_FINISH = {FinishReason.STOP: "stop", FinishReason.LENGTH: "length", FinishReason.TOOL_CALLS: "tool_calls",
           FinishReason.CONTENT_FILTER: "content_filter"}
_DONE = b"data: [DONE]\n\n"
_FIELDS = {"json_schema": "response_format", "response_format": "response_format"}


# ---- request ---------------------------------------------------------------------------------


def _mime_of(url: str, default: str) -> str:
    if url.startswith("data:"):
        end = min(i for i in (url.find(";"), url.find(","), len(url)) if i >= 0)
        return url[5:end] or default
    return default


def _media(kind: PartKind, url: Any, path: str, default_mime: str, detail: str = "", filename: str = "") -> ContentPart:
    if not isinstance(url, str) or not url:
        raise bad_request(f"{path}: a URL is required", param=path)
    mime = _mime_of(url, "")
    return ContentPart(kind, url=url, mime_type=mime, format=mime.rsplit("/", 1)[-1] if mime else "",
                       detail=detail, filename=filename)


def _part(part: Any, path: str) -> ContentPart | None:
    if not isinstance(part, dict):
        raise bad_request(f"{path} must be an object", param=path)
    kind = part.get("type")
    if kind == "text":
        text = part.get("text")
        if not isinstance(text, str):
            raise bad_request(f"{path}.text must be a string", param=f"{path}.text")
        return ContentPart(PartKind.TEXT, text=text)
    if kind == "image_url":
        image = part.get("image_url")
        if isinstance(image, str):
            return _media(PartKind.IMAGE, image, f"{path}.image_url", "image/*")
        image_obj: dict[str, Any] = image if isinstance(image, dict) else {}
        return _media(PartKind.IMAGE, image_obj.get("url"), f"{path}.image_url.url", "image/*",
                      detail=str(image_obj.get("detail") or ""))
    if kind == "input_audio":
        raw_audio = part.get("input_audio")
        audio: dict[str, Any] = raw_audio if isinstance(raw_audio, dict) else {}
        data, fmt = audio.get("data"), str(audio.get("format") or "wav")
        if not isinstance(data, str) or not data:
            raise bad_request(f"{path}.input_audio.data is required", param=f"{path}.input_audio.data")
        return ContentPart(PartKind.AUDIO, url=f"data:audio/{fmt};base64,{data}", mime_type=f"audio/{fmt}", format=fmt)
    if kind == "file":
        raw_file = part.get("file")
        file: dict[str, Any] = raw_file if isinstance(raw_file, dict) else {}
        if file.get("file_id") and not file.get("file_data"):
            raise bad_request("file_id references are not supported; send file_data", param=f"{path}.file.file_id")
        return _media(PartKind.DOCUMENT, file.get("file_data"), f"{path}.file.file_data", "application/pdf",
                      filename=str(file.get("filename") or ""))
    if kind == "video_url":
        video = part.get("video_url")
        url = video.get("url") if isinstance(video, dict) else video
        return _media(PartKind.VIDEO, url, f"{path}.video_url.url", "video/*")
    if kind == "refusal":
        return None  # an earlier assistant refusal: nothing to send back
    raise bad_request(f"{path}.type: unsupported content part type {kind!r}", param=f"{path}.type")


def _content(content: Any, path: str) -> list[ContentPart]:
    if content is None:
        return []
    if isinstance(content, str):
        return [ContentPart(PartKind.TEXT, text=content)]
    if isinstance(content, list):
        parts = [_part(p, f"{path}[{j}]") for j, p in enumerate(content)]
        return [p for p in parts if p is not None]
    raise bad_request(f"{path} must be a string or an array of content parts", param=path)


def _tool_calls(raw: Any, path: str) -> list[ToolCall]:
    if not raw:
        return []
    if not isinstance(raw, list):
        raise bad_request(f"{path} must be an array", param=path)
    calls = []
    for k, call in enumerate(raw):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise bad_request(f"{path}[{k}].function.name is required", param=f"{path}[{k}].function.name")
        arguments = fn.get("arguments")
        if not isinstance(arguments, str):
            arguments = orjson.dumps(arguments if arguments is not None else {}).decode()
        calls.append(ToolCall(str(call.get("id") or ""), fn["name"], arguments, str(call.get("type") or "function")))
    return calls


def parse_messages(raw: Any) -> list[PromptMessage]:
    if not isinstance(raw, list) or not raw:
        raise bad_request("messages must be a non-empty array", param="messages")
    out = []
    for i, m in enumerate(raw):
        path = f"messages[{i}]"
        if not isinstance(m, dict):
            raise bad_request(f"{path} must be an object", param=path)
        role = _ROLES.get(m.get("role"))  # type: ignore[arg-type]
        if role is None:
            raise bad_request(f"{path}.role: unsupported role {m.get('role')!r}", param=f"{path}.role")
        out.append(PromptMessage(
            role=role, content=_content(m.get("content"), f"{path}.content"), name=str(m.get("name") or ""),
            tool_calls=_tool_calls(m.get("tool_calls"), f"{path}.tool_calls") if role is Role.ASSISTANT else [],
            tool_call_id=str(m.get("tool_call_id") or ""),
            reasoning=_reasoning(m) if role is Role.ASSISTANT else [],
        ))
    return out


def _reasoning(message: dict[str, Any]) -> list[ReasoningPart]:
    """An assistant turn's ``reasoning_content`` sent back (what DeepSeek's thinking mode needs
    after tool calls); it reaches providers that take it, never OpenAI itself."""
    text = message.get("reasoning_content")
    return [ReasoningPart(text=text, origin=CHAT_COMPLETIONS_ORIGIN)] if isinstance(text, str) and text else []


def parse_tools(raw: Any) -> list[Tool]:
    if not raw:
        return []
    if not isinstance(raw, list):
        raise bad_request("tools must be an array", param="tools")
    tools = []
    for i, t in enumerate(raw):
        if not isinstance(t, dict) or t.get("type", "function") != "function":
            raise bad_request(f"tools[{i}].type: only function tools are supported", param=f"tools[{i}].type")
        fn = t.get("function")
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise bad_request(f"tools[{i}].function.name is required", param=f"tools[{i}].function.name")
        params = fn.get("parameters")
        tools.append(Tool(fn["name"], str(fn.get("description") or ""), params if isinstance(params, dict) else {}))
    return tools


def parse_tool_choice(raw: Any) -> ToolChoice | None:
    if raw is None:
        return None
    if raw in ("auto", "none", "required"):
        return ToolChoice(raw)
    if isinstance(raw, dict) and isinstance(raw.get("function"), dict) and raw["function"].get("name"):
        return ToolChoice("function", str(raw["function"]["name"]))
    raise bad_request("tool_choice must be 'auto', 'none', 'required' or a function choice", param="tool_choice")


def _response_format(raw: Any, params: dict[str, Any]) -> None:
    if raw is None:
        return
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind == "text":
        params["response_format"] = "text"
    elif kind == "json_object":
        params["response_format"] = "json_object"
    elif kind == "json_schema":
        schema = raw.get("json_schema")
        if not isinstance(schema, dict):
            raise bad_request("response_format.json_schema must be an object", param="response_format")
        params["response_format"] = "json_schema"
        params["json_schema"] = orjson.dumps(schema).decode()
    else:
        raise bad_request("response_format.type must be text, json_object or json_schema", param="response_format")


def parse_request(body: dict[str, Any]) -> tuple[LLMRequest, dict[str, str]]:
    """The runtime request, and how runtime field names map back to the caller's."""
    n = body.get("n")
    if n is not None and n != 1:
        raise bad_request("only n=1 is supported", param="n")
    if body.get("functions") or body.get("function_call"):
        raise bad_request("functions/function_call are deprecated; use tools/tool_choice", param="functions")
    params = {k: v for k, v in body.items() if k not in _STRUCTURAL and v is not None}
    fields = dict(_FIELDS)
    if "max_completion_tokens" in params and "max_tokens" not in params:
        params["max_tokens"] = params["max_completion_tokens"]
        fields["max_tokens"] = "max_completion_tokens"
    _response_format(body.get("response_format"), params)
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    elif stop is None:
        stop = []
    elif not (isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
        raise bad_request("stop must be a string or an array of strings", param="stop")
    user = body.get("user")
    request = LLMRequest(
        messages=parse_messages(body.get("messages")), parameters=params, tools=parse_tools(body.get("tools")),
        tool_choice=parse_tool_choice(body.get("tool_choice")), stop=stop, user=user if isinstance(user, str) else "",
    )
    return request, fields


# ---- response --------------------------------------------------------------------------------


def finish_reason(reason: FinishReason | None, provider_reason: str) -> str | None:
    if reason is None:
        return None
    return _FINISH.get(reason) or (provider_reason if provider_reason in _FINISH.values() else "stop")


def usage_json(u: LLMUsage | None) -> dict[str, Any] | None:
    if u is None:
        return None
    return {
        "prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens, "total_tokens": u.total_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_prompt_tokens},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        # Extensions: the runtime's price of this call.
        "cost": float(u.total_price), "currency": u.currency,
    }


def completion_json(result: LLMResult, call: Call, provider: str) -> dict[str, Any]:
    m = result.message
    message: dict[str, Any] = {"role": "assistant", "content": m.content or None, "refusal": m.refusal or None}
    if m.reasoning_content:
        message["reasoning_content"] = m.reasoning_content
    if m.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": c.type or "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in m.tool_calls
        ]
    out: dict[str, Any] = {
        "id": result.id or new_id("chatcmpl-"), "object": "chat.completion", "created": call.created,
        "model": call.public_model(provider, result.model),
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": finish_reason(result.finish_reason, result.provider_finish_reason) or "stop"}],
        "usage": usage_json(result.usage),
    }
    if result.system_fingerprint:
        out["system_fingerprint"] = result.system_fingerprint
    return out


class _ChunkWriter:
    """LLMChunks → ``chat.completion.chunk`` SSE events with one id, role first, and each
    tool call's id/type/name sent once (the SDK concatenates repeated strings)."""

    __slots__ = ("call", "created", "id", "model", "provider", "role_sent", "tools_started")

    def __init__(self, call: Call, provider: str, first: LLMChunk) -> None:
        self.call = call
        self.provider = provider
        self.id = first.id or new_id("chatcmpl-")
        self.model = call.public_model(provider, first.model)
        self.created = call.created
        self.role_sent = False
        self.tools_started: set[int] = set()

    def event(self, chunk: LLMChunk) -> bytes:
        delta: dict[str, Any] = {}
        if not self.role_sent:
            delta["role"] = "assistant"
            self.role_sent = True
        if chunk.content:
            delta["content"] = chunk.content
        if chunk.reasoning_content:
            delta["reasoning_content"] = chunk.reasoning_content
        if chunk.refusal:
            delta["refusal"] = chunk.refusal
        if chunk.tool_calls:
            calls = []
            for t in chunk.tool_calls:
                fragment: dict[str, Any] = {"index": t.index}
                function: dict[str, Any] = {"arguments": t.arguments}
                if t.index not in self.tools_started and (t.id or t.name):
                    self.tools_started.add(t.index)
                    fragment["id"] = t.id or new_id("call_")
                    fragment["type"] = "function"
                    function["name"] = t.name
                fragment["function"] = function
                calls.append(fragment)
            delta["tool_calls"] = calls
        if chunk.model:
            self.model = self.call.public_model(self.provider, chunk.model)
        return self._encode([{"index": 0, "delta": delta, "logprobs": None,
                              "finish_reason": finish_reason(chunk.finish_reason, chunk.provider_finish_reason)}])

    def usage_event(self, usage: LLMUsage | None) -> bytes:
        return self._encode([], usage_json(usage) or usage_json(LLMUsage()))

    def _encode(self, choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> bytes:
        obj: dict[str, Any] = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                               "model": self.model, "choices": choices}
        if usage is not None:
            obj["usage"] = usage
        return b"data: " + orjson.dumps(obj) + b"\n\n"


async def chat_completions(call: Call) -> None:
    body = call.json()
    target = call.target(body.get("model"))
    request, call.fields = parse_request(body)
    if not body.get("stream"):
        result = await call.runtime.generate(target, request)
        await call.send_json(completion_json(result, call, target.provider))
        return
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
    chunks = call.runtime.stream(target, request)
    try:
        try:
            first = await anext(chunks)
        except StopAsyncIteration:
            raise InvokeError("The provider returned an empty stream", provider=target.provider) from None
        await call.start()  # the provider accepted the request: now 200
        writer = _ChunkWriter(call, target.provider, first)
        usage = first.usage
        await call.write(writer.event(first))
        try:
            async for chunk in chunks:
                if chunk.usage is not None:
                    usage = chunk.usage
                await call.write(writer.event(chunk))
        except RuntimeFault as exc:
            await call.end(sse_error_event(to_http(exc, call.fields, call.request_credentials)))
            return
        tail = writer.usage_event(usage) + _DONE if include_usage else _DONE
        await call.end(tail)
    finally:
        await chunks.aclose()
