"""Pure transforms between domain LLM requests/results and Ollama's native API.

No I/O here. Chat mode speaks ``POST /api/chat``; a model configured with ``mode: completion``
speaks ``POST /api/generate`` with the prompt of the first user message, as Dify does.

Requests:

* messages keep their roles; images go in the message's ``images`` list as bare base64 (Ollama
  takes no URLs, so an http(s) image is refused before sending); an assistant turn's tool calls
  carry their ``arguments`` as a JSON **object**; a tool result names the function it answers
  (``tool_name``), found from the assistant turn that made the call;
* the model's parameter rules are Ollama's own ``options`` keys (``temperature``, ``top_p``,
  ``top_k``, ``num_predict``, ``num_ctx``, ``repeat_penalty``, ``seed``, ...), except the
  top-level ``format``, ``json_schema`` (sent as ``format``), ``keep_alive`` and ``think``;
  stop words go to ``options.stop``;
* Ollama has no ``tool_choice``: ``none`` sends no tools and a named function is sent alone.

Responses: one JSON object per NDJSON line (or one object when not streaming), read by
:class:`LineReader`. Tool calls arrive whole in one line, usually not the last, with object
arguments, and become one complete fragment each (arguments as JSON text). The final line
(``done: true``) has ``done_reason`` and the counts ``prompt_eval_count``/``eval_count``.
Ollama says ``stop`` even when the model called tools; that is reported as ``tool_calls``.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import unquote_to_bytes

import orjson

from engine.adapter import LLMRequest
from engine.entities import LLMMode
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

DONE_REASONS = {"stop": FinishReason.STOP, "length": FinishReason.LENGTH}
TOP_LEVEL = ("keep_alive", "think")


def finish_reason(raw: str, called_tools: bool) -> FinishReason:
    if called_tools and raw in ("", "stop"):
        return FinishReason.TOOL_CALLS
    return DONE_REASONS.get(raw or "stop", FinishReason.OTHER)


# ---- messages --------------------------------------------------------------------------------


def _image_b64(part: ContentPart, path: str) -> str:
    if part.data:
        return base64.b64encode(part.data).decode()
    if part.url.startswith("data:"):
        head, sep, payload = part.url[5:].partition(",")
        if sep:
            if ";base64" in head:
                return payload.strip()
            return base64.b64encode(unquote_to_bytes(payload)).decode()
    if part.url:
        raise bad_request(path, "Ollama accepts inline (base64) images only, not image URLs")
    raise bad_request(path, "image needs inline data")


def _text_and_images(message: PromptMessage, i: int) -> tuple[str, list[str]]:
    texts: list[str] = []
    images: list[str] = []
    for j, part in enumerate(message.content):
        if part.kind is PartKind.TEXT:
            texts.append(part.text)
        elif part.kind is PartKind.IMAGE:
            images.append(_image_b64(part, f"messages[{i}].content[{j}]"))
        else:
            raise bad_request(f"messages[{i}].content[{j}]", f"Ollama does not accept {part.kind.value} content")
    return "".join(texts), images


def _arguments(arguments: str, path: str) -> dict[str, Any]:
    if not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        raise bad_request(path, "tool call arguments must be a JSON object") from None
    if not isinstance(value, dict):
        raise bad_request(path, "tool call arguments must be a JSON object")
    return value


def convert_messages(messages: list[PromptMessage]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool-call id -> function name, for the tool results that follow
    for i, message in enumerate(messages):
        role = message.role
        text, images = _text_and_images(message, i)
        if role in (Role.SYSTEM, Role.DEVELOPER):
            if text:
                out.append({"role": "system", "content": text})
        elif role is Role.ASSISTANT:
            item: dict[str, Any] = {"role": "assistant", "content": text}
            if message.tool_calls:
                item["tool_calls"] = []
                for j, call in enumerate(message.tool_calls):
                    names[call.id] = call.name
                    item["tool_calls"].append({"function": {
                        "name": call.name,
                        "arguments": _arguments(call.arguments, f"messages[{i}].tool_calls[{j}].arguments")}})
            if text or message.tool_calls:
                out.append(item)
        elif role is Role.TOOL:
            item = {"role": "tool", "content": text}
            name = names.get(message.tool_call_id) or message.name
            if name:
                item["tool_name"] = name
            out.append(item)
        else:
            item = {"role": "user", "content": text}
            if images:
                item["images"] = images
            out.append(item)
    return out


def tools_to_wire(tools: list[Tool], choice: ToolChoice | None) -> list[dict[str, Any]]:
    mode = choice.mode if choice is not None else "auto"
    if mode == "none":
        return []
    if mode == "function":
        tools = [t for t in tools if t.name == choice.function_name]  # type: ignore[union-attr]
        if not tools:
            raise bad_request("tool_choice.function_name", "names no tool of the request")
    return [
        {"type": "function", "function": {
            "name": t.name, "description": t.description or "",
            "parameters": t.parameters or {"type": "object", "properties": {}}}}
        for t in tools
    ]


# ---- request bodies --------------------------------------------------------------------------


def _format(value: Any) -> Any:
    if isinstance(value, dict):
        return value
    try:
        parsed = orjson.loads(value)
    except (orjson.JSONDecodeError, TypeError):
        return "json"  # Dify's fallback for a schema that does not parse
    return parsed if isinstance(parsed, dict) else "json"


def _common(model: str, request: LLMRequest, stream: bool) -> dict[str, Any]:
    params = dict(request.parameters)
    body: dict[str, Any] = {"model": model, "stream": stream}
    schema = params.pop("json_schema", None)
    fmt = params.pop("format", None)
    if schema not in (None, ""):
        body["format"] = _format(schema)
    elif fmt:
        body["format"] = fmt
    params.pop("response_format", None)
    for name in TOP_LEVEL:
        if name in params:
            value = params.pop(name)
            if value is not None and value != "":
                body[name] = value
    sampling = {k: v for k, v in params.items() if v is not None}  # Ollama's own ``options``
    if request.stop:
        sampling["stop"] = list(request.stop)
    body["options"] = sampling
    return body


def build_chat_body(model: str, request: LLMRequest, *, stream: bool) -> dict[str, Any]:
    body = _common(model, request, stream)
    body["messages"] = convert_messages(request.messages)
    if request.tools:
        tools = tools_to_wire(request.tools, request.tool_choice)
        if tools:
            body["tools"] = tools
    return body


def build_generate_body(model: str, request: LLMRequest, *, stream: bool) -> dict[str, Any]:
    """Completion mode: the first user message is the prompt; a system message is ``system``."""
    body = _common(model, request, stream)
    for i, message in enumerate(request.messages):
        text, images = _text_and_images(message, i)
        if message.role in (Role.SYSTEM, Role.DEVELOPER):
            if text and "system" not in body:
                body["system"] = text
        elif message.role is Role.USER:
            body["prompt"] = text
            if images:
                body["images"] = images
            break
    if "prompt" not in body:
        raise bad_request("messages", "completion mode needs a user message as the prompt")
    return body


def endpoint_and_body(model: str, mode: LLMMode, request: LLMRequest, *, stream: bool) -> tuple[str, dict[str, Any]]:
    if mode is LLMMode.COMPLETION:
        return "generate", build_generate_body(model, request, stream=stream)
    return "chat", build_chat_body(model, request, stream=stream)


# ---- responses -------------------------------------------------------------------------------


def counts_from(obj: dict[str, Any]) -> TokenCounts | None:
    prompt = obj.get("prompt_eval_count")
    completion = obj.get("eval_count")
    if not isinstance(prompt, int) and not isinstance(completion, int):
        return None
    return TokenCounts(prompt_tokens=prompt if isinstance(prompt, int) else 0,
                       completion_tokens=completion if isinstance(completion, int) else 0)


def _arguments_text(value: Any) -> str:
    if isinstance(value, str):
        return value or "{}"
    return orjson.dumps(value if value is not None else {}).decode()


class LineReader:
    """Reads chat or generate objects (stream lines, or one unary body) in order."""

    __slots__ = ("calls", "counts", "done", "model", "raw_finish")

    def __init__(self, model: str) -> None:
        self.model = model
        self.calls = 0
        self.done = False
        self.raw_finish = ""
        self.counts: TokenCounts | None = None

    def feed(self, obj: dict[str, Any]) -> LLMChunk | None:
        raw = obj.get("message")
        message: dict[str, Any] = raw if isinstance(raw, dict) else {}
        content = message.get("content") if message else obj.get("response")
        thinking = message.get("thinking") if message else obj.get("thinking")
        chunk = LLMChunk(model=self.model, content=str(content or ""), reasoning_content=str(thinking or ""))
        for call in message.get("tool_calls") or ():
            given = call.get("function") if isinstance(call, dict) else None
            function: dict[str, Any] = given if isinstance(given, dict) else {}
            index = self.calls
            self.calls += 1
            chunk.tool_calls.append(ToolCallDelta(
                index=index, id=str(call.get("id") or f"call_{index}_{function.get('name') or 'tool'}"),
                name=str(function.get("name") or ""), arguments=_arguments_text(function.get("arguments")),
                type="function",
            ))
        if obj.get("done"):
            self.done = True
            self.raw_finish = str(obj.get("done_reason") or "")
            self.counts = counts_from(obj)
        if chunk.content or chunk.reasoning_content or chunk.tool_calls:
            return chunk
        return None

    def final(self) -> LLMChunk:
        return LLMChunk(model=self.model, finish_reason=finish_reason(self.raw_finish, self.calls > 0),
                        provider_finish_reason=self.raw_finish, counts=self.counts)


def parse_response(body: dict[str, Any], model: str) -> LLMResult:
    reader = LineReader(model)
    chunk = reader.feed(body)
    final = reader.final()
    message = AssistantMessage()
    if chunk is not None:
        message.content = chunk.content
        message.reasoning_content = chunk.reasoning_content
        message.tool_calls = [ToolCall(id=d.id, name=d.name, arguments=d.arguments) for d in chunk.tool_calls]
    return LLMResult(
        model=model, message=message, finish_reason=final.finish_reason,
        provider_finish_reason=final.provider_finish_reason, counts=final.counts,
    )
