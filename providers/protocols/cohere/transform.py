"""Pure transforms between domain LLM requests/results and Cohere's v2 Chat API.

No I/O here. Requests (``POST /v2/chat``):

* messages keep their roles (``system``/``user``/``assistant``/``tool``); a user turn with
  only text is a plain string, otherwise a list of ``text`` and ``image_url`` parts;
* an assistant turn that called tools carries ``tool_calls`` (``arguments`` as JSON text) and
  its text as ``tool_plan``, the form Cohere itself returns; a tool result is
  ``{"role": "tool", "tool_call_id", "content"}``;
* tools are ``{"type": "function", "function": {...}}``; ``tool_choice`` is ``REQUIRED`` or
  ``NONE`` (Cohere has no "this function" choice, so a named function is sent as the only tool
  with ``REQUIRED``);
* Dify rule names ``p``/``k`` are Cohere's own; ``top_p``/``top_k`` from other schemas are
  renamed; ``json_schema``/``response_format`` become ``response_format: {type: json_object}``;
  ``thinking``/``thinking_budget`` become ``thinking: {type, token_budget}``.

Responses: :func:`parse_chat` for unary replies and :class:`StreamAssembler` for the named SSE
events (``message-start`` ... ``message-end``). A ``tool_plan`` (the model's sentence before it
calls tools) is reported as content, which is where it comes back from in the next turn.
Token counts are the *billed* units, the ones Cohere charges for.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from engine.adapter import LLMRequest
from engine.errors import bad_request
from engine.messages import (
    AssistantMessage,
    ContentPart,
    FinishReason,
    LLMChunk,
    LLMResult,
    PartKind,
    PromptMessage,
    Role,
    TokenCounts,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
)

FINISH_REASONS = {
    "COMPLETE": FinishReason.STOP,
    "STOP_SEQUENCE": FinishReason.STOP,
    "MAX_TOKENS": FinishReason.LENGTH,
    "TOOL_CALL": FinishReason.TOOL_CALLS,
}
FAILED = ("ERROR", "TIMEOUT")  # finish reasons that mean the generation failed
_RENAMES = {"top_p": "p", "top_k": "k"}


def finish_reason(raw: str | None) -> FinishReason:
    return FINISH_REASONS.get(raw or "COMPLETE", FinishReason.OTHER)


# ---- messages --------------------------------------------------------------------------------


def _image_url(part: ContentPart, path: str) -> str:
    if part.data:
        mime = part.mime_type or f"image/{(part.format or 'png').lower()}"
        return f"data:{mime};base64,{base64.b64encode(part.data).decode()}"
    if part.url:
        return part.url
    raise bad_request(path, "image needs inline data or a URL")


def _user_content(message: PromptMessage, i: int) -> str | list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(message.content):
        path = f"messages[{i}].content[{j}]"
        if part.kind is PartKind.TEXT:
            if part.text:
                parts.append({"type": "text", "text": part.text})
        elif part.kind is PartKind.IMAGE:
            image: dict[str, Any] = {"url": _image_url(part, path)}
            if part.detail in ("low", "high", "auto"):
                image["detail"] = part.detail
            parts.append({"type": "image_url", "image_url": image})
        else:
            raise bad_request(path, f"Cohere does not accept {part.kind.value} content")
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _arguments(arguments: str, path: str) -> str:
    text = arguments.strip() or "{}"
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise bad_request(path, "tool call arguments must be a JSON object") from None
    if not isinstance(value, dict):
        raise bad_request(path, "tool call arguments must be a JSON object")
    return text


def _assistant(message: PromptMessage, i: int) -> dict[str, Any] | None:
    text = message.text()
    if not message.tool_calls:
        return {"role": "assistant", "content": text} if text else None
    out: dict[str, Any] = {"role": "assistant", "tool_calls": [
        {"id": call.id, "type": "function", "function": {
            "name": call.name, "arguments": _arguments(call.arguments, f"messages[{i}].tool_calls[{j}].arguments")}}
        for j, call in enumerate(message.tool_calls)
    ]}
    if text:
        out["tool_plan"] = text
    return out


def convert_messages(messages: list[PromptMessage]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        role = message.role
        if role in (Role.SYSTEM, Role.DEVELOPER):
            text = message.text()
            if text:
                out.append({"role": "system", "content": text})
        elif role is Role.ASSISTANT:
            converted = _assistant(message, i)
            if converted is not None:
                out.append(converted)
        elif role is Role.TOOL:
            if not message.tool_call_id:
                raise bad_request(f"messages[{i}].tool_call_id", "a tool message needs the id of the call it answers")
            out.append({"role": "tool", "tool_call_id": message.tool_call_id, "content": message.text() or " "})
        else:
            content = _user_content(message, i)
            if content:
                out.append({"role": "user", "content": content})
    return out


def tools_to_wire(tools: list[Tool]) -> list[dict[str, Any]]:
    return [
        {"type": "function", "function": {
            "name": t.name, "description": t.description or "",
            "parameters": t.parameters or {"type": "object", "properties": {}}}}
        for t in tools
    ]


def _apply_tools(body: dict[str, Any], tools: list[Tool], choice: ToolChoice | None) -> None:
    if not tools:
        return
    mode = choice.mode if choice is not None else "auto"
    if mode == "function":
        chosen = [t for t in tools if t.name == choice.function_name]  # type: ignore[union-attr]
        if not chosen:
            raise bad_request("tool_choice.function_name", "names no tool of the request")
        body["tools"] = tools_to_wire(chosen)
        body["tool_choice"] = "REQUIRED"
        return
    body["tools"] = tools_to_wire(tools)
    if mode == "required":
        body["tool_choice"] = "REQUIRED"
    elif mode == "none":
        body["tool_choice"] = "NONE"


# ---- request body ----------------------------------------------------------------------------


def _json_schema(value: Any) -> dict[str, Any]:
    try:
        schema = orjson.loads(value) if isinstance(value, str) else value
    except orjson.JSONDecodeError:
        raise bad_request("model_parameters.json_schema", "not valid JSON") from None
    if not isinstance(schema, dict) or not schema:
        raise bad_request("model_parameters.json_schema", "must be a non-empty JSON object")
    inner = schema.get("schema")  # Dify's form may wrap it as {"name", "schema", "strict"}
    return inner if isinstance(inner, dict) and "name" in schema else schema


def _apply_formats(body: dict[str, Any], params: dict[str, Any]) -> None:
    fmt = params.pop("response_format", None)
    schema = params.pop("json_schema", None)
    if schema not in (None, ""):
        body["response_format"] = {"type": "json_object", "json_schema": _json_schema(schema)}
    elif isinstance(fmt, str) and fmt.lower() in ("json_object", "json"):
        body["response_format"] = {"type": "json_object"}
    thinking = params.pop("thinking", None)
    budget = params.pop("thinking_budget", None)
    if thinking is False:
        body["thinking"] = {"type": "disabled"}
    elif thinking is True or budget:
        config: dict[str, Any] = {"type": "enabled"}
        if budget:
            config["token_budget"] = int(budget)
        body["thinking"] = config


def build_chat_body(model: str, request: LLMRequest, *, stream: bool) -> dict[str, Any]:
    params = {_RENAMES.get(k, k): v for k, v in request.parameters.items()}
    messages = convert_messages(request.messages)
    if not messages:
        raise bad_request("messages", "at least one message with content is required")
    body: dict[str, Any] = {"model": model, "messages": messages}
    _apply_formats(body, params)
    for name in ("max_tokens", "seed", "k"):
        if name in params and params[name] is not None:
            params[name] = int(params[name])
    body.update(params)
    _apply_tools(body, request.tools, request.tool_choice)
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    body["stream"] = stream
    return body


# ---- responses -------------------------------------------------------------------------------


def counts_from_usage(usage: Any) -> TokenCounts | None:
    """Billed units (what Cohere charges); the raw ``tokens`` when no billed units are given."""
    if not isinstance(usage, dict):
        return None
    for key in ("billed_units", "tokens"):
        part = usage.get(key)
        if isinstance(part, dict) and (part.get("input_tokens") is not None or part.get("output_tokens") is not None):
            cached = usage.get("cached_tokens")
            return TokenCounts(
                prompt_tokens=int(part.get("input_tokens") or 0),
                completion_tokens=int(part.get("output_tokens") or 0),
                cached_prompt_tokens=int(cached) if isinstance(cached, int | float) else 0,
            )
    return None


def _call(raw: Any, n: int) -> ToolCall:
    raw = raw if isinstance(raw, dict) else {}
    function = _obj(raw.get("function"))
    arguments = function.get("arguments")
    if not isinstance(arguments, str):
        arguments = orjson.dumps(arguments if arguments is not None else {}).decode()
    return ToolCall(id=str(raw.get("id") or f"call_{n}"), name=str(function.get("name") or ""),
                    arguments=arguments or "{}")


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def parse_chat(body: dict[str, Any], model: str) -> LLMResult:
    """A unary ``/v2/chat`` reply (the caller has checked ``finish_reason`` for failures)."""
    message = _obj(body.get("message"))
    texts: list[str] = []
    thoughts: list[str] = []
    for part in message.get("content") or ():
        if isinstance(part, dict):
            if part.get("type") == "text":
                texts.append(str(part.get("text") or ""))
            elif part.get("type") == "thinking":
                thoughts.append(str(part.get("thinking") or ""))
    calls = [_call(c, n) for n, c in enumerate(message.get("tool_calls") or ())]
    plan = str(message.get("tool_plan") or "")
    content = "".join(texts) or (plan if calls else "")
    raw = str(body.get("finish_reason") or "")
    return LLMResult(
        model=model, message=AssistantMessage(content=content, reasoning_content="".join(thoughts), tool_calls=calls),
        finish_reason=finish_reason(raw), provider_finish_reason=raw, id=str(body.get("id") or ""),
        counts=counts_from_usage(body.get("usage")),
    )


def _dig(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


class StreamAssembler:
    """Turns decoded v2 stream events into chunks; :meth:`final` gives the closing chunk.

    Tool calls are numbered 0, 1, ... in the order their ``tool-call-start`` events arrive
    (Cohere's own ``index`` maps onto ours); the first fragment of each carries id and name.
    """

    __slots__ = ("_calls", "_kinds", "counts", "done", "error", "id", "model", "raw_finish")

    def __init__(self, model: str) -> None:
        self.model = model
        self.id = ""
        self.raw_finish = ""
        self.error = ""
        self.done = False
        self.counts: TokenCounts | None = None
        self._calls: dict[int, int] = {}  # Cohere's tool-call index -> ours
        self._kinds: dict[int, str] = {}  # content index -> text | thinking

    def _chunk(self, **kw: Any) -> LLMChunk:
        return LLMChunk(model=self.model, id=self.id, **kw)

    def _call_index(self, event: dict[str, Any], new: bool) -> int:
        theirs = event.get("index")
        key = int(theirs) if isinstance(theirs, int) else len(self._calls) - (0 if new else 1)
        if key not in self._calls:
            self._calls[key] = len(self._calls)
        return self._calls[key]

    def feed(self, event: dict[str, Any]) -> LLMChunk | None:
        kind = event.get("type")
        delta = _obj(event.get("delta"))
        if kind == "message-start":
            self.id = str(event.get("id") or self.id)
        elif kind in ("content-start", "content-delta"):
            content = _dig(delta, "message", "content")
            if not isinstance(content, dict):
                return None
            index = int(event.get("index") or 0)
            if content.get("type"):
                self._kinds[index] = str(content["type"])
            if content.get("thinking") or self._kinds.get(index) == "thinking":
                text = content.get("thinking") or ""
                return self._chunk(reasoning_content=str(text)) if text else None
            text = content.get("text")
            return self._chunk(content=str(text)) if text else None
        elif kind == "tool-plan-delta":
            plan = _dig(delta, "message", "tool_plan")
            return self._chunk(content=str(plan)) if plan else None
        elif kind == "tool-call-start":
            call = _dig(delta, "message", "tool_calls")
            call = call[0] if isinstance(call, list) and call else call
            if not isinstance(call, dict):
                return None
            function = _obj(call.get("function"))
            index = self._call_index(event, new=True)
            return self._chunk(tool_calls=[ToolCallDelta(
                index=index, id=str(call.get("id") or f"call_{index}"), name=str(function.get("name") or ""),
                arguments=str(function.get("arguments") or ""), type="function",
            )])
        elif kind == "tool-call-delta":
            fragment = _dig(delta, "message", "tool_calls", "function", "arguments")
            if not fragment:
                return None
            return self._chunk(tool_calls=[ToolCallDelta(index=self._call_index(event, new=False),
                                                         arguments=str(fragment))])
        elif kind == "message-end":
            self.raw_finish = str(delta.get("finish_reason") or "")
            self.error = str(delta.get("error") or "")
            self.counts = counts_from_usage(delta.get("usage"))
            self.done = True
        return None  # content-end, tool-call-end, citation-*, debug and future events

    def final(self) -> LLMChunk:
        return self._chunk(finish_reason=finish_reason(self.raw_finish), provider_finish_reason=self.raw_finish,
                           counts=self.counts)
