"""Pure transforms between domain LLM requests/results and OpenAI's Responses API (``/v1/responses``).

Models whose YAML says ``model_properties.endpoint: responses`` are served here: gpt-5.x rejects
tools together with ``reasoning_effort`` on ``/chat/completions``, and encrypted reasoning that a
stateless caller can send back exists only here. No I/O in this module.

Request: each message becomes an input item: user/system/developer text and media as ``message``
items (``input_text``, ``input_image``, ``input_file``); an assistant turn as its reasoning items
(this protocol's own, with ``encrypted_content``, replayed unchanged and first), its text as an
``output_text`` message and its calls as ``function_call`` items; a tool result as
``function_call_output``. Nothing is stored at OpenAI (``store: false``): the caller holds the
history, so reasoning models are asked for ``include: ["reasoning.encrypted_content"]``.
Parameters: the token limit (any alias) → ``max_output_tokens``, ``reasoning_effort`` →
``reasoning.effort``, ``verbosity`` → ``text.verbosity``, ``response_format``/``json_schema`` →
``text.format``; ``temperature``, ``top_p``, ``top_logprobs``, ``parallel_tool_calls`` as they
are. Chat-only parameters the Responses API has no field for (``seed``, penalties, ``n``) are
not sent; stop sequences are refused, as OpenAI's reasoning models refuse them.

Response: ``output`` items → text, refusal, tool calls (``call_id`` is the call id; the item id
rides in the call's provider state) and reasoning parts (summary text, ``encrypted_content`` and
item id, tagged ``openai_responses``). Usage: ``input_tokens`` (with ``cached_tokens``) and
``output_tokens`` (with ``reasoning_tokens``). The finish reason is derived: calls → tool_calls,
``incomplete`` for ``max_output_tokens`` → length, for ``content_filter`` → content_filter.
"""

from __future__ import annotations

from typing import Any

from engine.adapter import LLMRequest
from engine.errors import bad_request
from engine.messages import (
    AssistantMessage,
    ContentPart,
    FinishReason,
    LLMResult,
    PartKind,
    PromptMessage,
    ProviderState,
    ReasoningPart,
    Role,
    TokenCounts,
    ToolCall,
    state_of,
)

from .chat_transform import _data_uri, _response_format

ORIGIN = "openai_responses"
MIN_OUTPUT_TOKENS = 16  # max_output_tokens below this is refused by the API
_LIMITS = ("max_output_tokens", "max_completion_tokens", "max_tokens")
_PASSED = ("temperature", "top_p", "top_logprobs", "parallel_tool_calls")
_NOT_IN_RESPONSES = ("seed", "presence_penalty", "frequency_penalty", "n", "logit_bias", "logprobs")


# ---- request ---------------------------------------------------------------------------


def _input_part(part: ContentPart, path: str) -> dict[str, Any]:
    if part.kind is PartKind.TEXT:
        return {"type": "input_text", "text": part.text}
    if part.kind is PartKind.IMAGE:
        return {"type": "input_image", "image_url": _data_uri(part), "detail": part.detail or "auto"}
    if part.kind is PartKind.DOCUMENT:
        if part.url and not part.url.startswith("data:"):
            return {"type": "input_file", "file_url": part.url}
        return {"type": "input_file", "file_data": _data_uri(part),
                "filename": part.filename or f"document.{part.format or 'pdf'}"}
    raise bad_request(path, f"the Responses API does not accept {part.kind.value} input")


def _reasoning_items(message: PromptMessage) -> list[dict[str, Any]]:
    items = []
    for part in message.reasoning_from(ORIGIN):
        if not part.id:
            continue
        item: dict[str, Any] = {"type": "reasoning", "id": part.id,
                                "summary": [{"type": "summary_text", "text": part.text}] if part.text else []}
        if part.encrypted:
            item["encrypted_content"] = part.encrypted
        items.append(item)
    return items


def _assistant_items(message: PromptMessage) -> list[dict[str, Any]]:
    items = _reasoning_items(message)
    text = message.text()
    item_id = message.state_from(ORIGIN)
    if text and item_id:  # the output message as it came (its id pairs it with the reasoning before it)
        items.append({"type": "message", "id": item_id, "role": "assistant", "status": "completed",
                      "content": [{"type": "output_text", "text": text, "annotations": []}]})
    elif text:
        items.append({"type": "message", "role": "assistant", "content": text})
    for call in message.tool_calls:
        wire: dict[str, Any] = {"type": "function_call", "call_id": call.id, "name": call.name,
                                "arguments": call.arguments or "{}"}
        item_id = state_of(call, ORIGIN)
        if item_id:
            wire["id"] = item_id
        items.append(wire)
    return items


def input_items(messages: list[PromptMessage]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        if message.role is Role.ASSISTANT:
            items.extend(_assistant_items(message))
        elif message.role is Role.TOOL:
            if not message.tool_call_id:
                raise bad_request(f"messages[{i}].tool_call_id", "a tool message needs the id of the call it answers")
            items.append({"type": "function_call_output", "call_id": message.tool_call_id, "output": message.text()})
        else:
            parts = message.content
            content: Any
            if all(p.kind is PartKind.TEXT for p in parts):
                content = message.text()
            else:
                content = [_input_part(p, f"messages[{i}].content[{j}]") for j, p in enumerate(parts)]
            items.append({"type": "message", "role": message.role.value, "content": content})
    return items


def _text_format(params: dict[str, Any]) -> dict[str, Any] | None:
    chat = _response_format(params)  # the chat shape, checked there
    if chat is None:
        return None
    if chat["type"] == "json_schema":
        spec = chat["json_schema"]
        out = {"type": "json_schema", "name": spec.get("name") or "response", "schema": spec.get("schema") or {}}
        if "strict" in spec:
            out["strict"] = bool(spec["strict"])
        if spec.get("description"):
            out["description"] = spec["description"]
        return out
    return {"type": chat["type"]}


def build_responses_body(model: str, request: LLMRequest, *, stream: bool, reasoning: bool) -> dict[str, Any]:
    """The ``POST /responses`` body. ``reasoning``: the model reasons (asks for encrypted reasoning)."""
    if request.stop:
        raise bad_request("stop", "stop sequences are not supported by the Responses API this model uses")
    params = dict(request.parameters)
    body: dict[str, Any] = {"model": model, "input": input_items(request.messages), "store": False}
    name = next((k for k in _LIMITS if params.get(k) is not None), None)
    if name is not None:
        if int(params[name]) < MIN_OUTPUT_TOKENS:
            raise bad_request(f"model_parameters.{name}", f"the Responses API needs at least {MIN_OUTPUT_TOKENS}")
        body["max_output_tokens"] = int(params[name])
    for name in _PASSED:
        if params.get(name) is not None:
            body[name] = params[name]
    effort = params.get("reasoning_effort")
    if effort:
        body["reasoning"] = {"effort": effort}
    text: dict[str, Any] = {}
    text_format = _text_format(params)
    if text_format is not None:
        text["format"] = text_format
    if params.get("verbosity"):
        text["verbosity"] = params["verbosity"]
    if text:
        body["text"] = text
    if reasoning:
        body["include"] = ["reasoning.encrypted_content"]
    if request.tools:
        body["tools"] = [{"type": "function", "name": t.name, "description": t.description or "",
                          "parameters": t.parameters or {"type": "object", "properties": {}}, "strict": False}
                         for t in request.tools]
        choice = request.tool_choice
        if choice is not None:
            body["tool_choice"] = ({"type": "function", "name": choice.function_name}
                                   if choice.mode == "function" else choice.mode)
    if request.user:
        body["user"] = request.user
    if stream:
        body["stream"] = True
    return body


# ---- response --------------------------------------------------------------------------


def counts_from_usage(usage: Any) -> TokenCounts | None:
    if not isinstance(usage, dict):
        return None
    prompt = int(usage.get("input_tokens") or 0)
    completion = int(usage.get("output_tokens") or 0)
    if not (prompt or completion):
        return None
    cached = int((usage.get("input_tokens_details") or {}).get("cached_tokens") or 0)
    reasoning = int((usage.get("output_tokens_details") or {}).get("reasoning_tokens") or 0)
    return TokenCounts(prompt, completion, cached, reasoning)


def finish(status: str, incomplete: Any, has_calls: bool) -> tuple[FinishReason, str]:
    """(finish reason, provider's reason text) of a response's status."""
    if status == "incomplete":
        reason = str((incomplete or {}).get("reason") or "incomplete") if isinstance(incomplete, dict) else "incomplete"
        if reason == "content_filter":
            return FinishReason.CONTENT_FILTER, reason
        return (FinishReason.LENGTH if reason == "max_output_tokens" else FinishReason.OTHER), reason
    if has_calls:
        return FinishReason.TOOL_CALLS, "tool_calls"
    return FinishReason.STOP, status or "completed"


def summary_text(item: dict[str, Any]) -> str:
    return "\n\n".join(str(s.get("text") or "") for s in item.get("summary") or () if isinstance(s, dict))


def reasoning_part(item: dict[str, Any]) -> ReasoningPart:
    return ReasoningPart(text=summary_text(item), encrypted=str(item.get("encrypted_content") or ""),
                         id=str(item.get("id") or ""), origin=ORIGIN)


def tool_call(item: dict[str, Any], n: int) -> ToolCall:
    item_id = str(item.get("id") or "")
    return ToolCall(id=str(item.get("call_id") or item_id or f"call_{n}"), name=str(item.get("name") or ""),
                    arguments=str(item.get("arguments") or ""),
                    state=ProviderState(ORIGIN, item_id) if item_id else None)


def parse_response(body: dict[str, Any], model: str) -> LLMResult:
    message = AssistantMessage()
    texts: list[str] = []
    for item in body.get("output") or ():
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "reasoning":
            part = reasoning_part(item)
            message.reasoning.append(part)
            if part.text:
                message.reasoning_content += part.text
        elif kind == "function_call":
            message.tool_calls.append(tool_call(item, len(message.tool_calls)))
        elif kind == "message":
            if item.get("id"):
                message.state = ProviderState(ORIGIN, str(item["id"]))
            for content in item.get("content") or ():
                if not isinstance(content, dict):
                    continue
                if content.get("type") == "output_text":
                    texts.append(str(content.get("text") or ""))
                elif content.get("type") == "refusal":
                    message.refusal += str(content.get("refusal") or "")
    message.content = "".join(texts)
    reason, raw = finish(str(body.get("status") or ""), body.get("incomplete_details"), bool(message.tool_calls))
    return LLMResult(model=str(body.get("model") or model), message=message, finish_reason=reason,
                     provider_finish_reason=raw, id=str(body.get("id") or ""),
                     counts=counts_from_usage(body.get("usage")))
