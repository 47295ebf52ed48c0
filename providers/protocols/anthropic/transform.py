"""Pure transforms between domain LLM requests/results and Anthropic's Messages API.

No I/O here. Requests: our message list becomes a top-level ``system`` plus strictly
alternating ``user``/``assistant`` turns (consecutive turns of one role are merged; tool
results become ``tool_result`` blocks of a user turn; assistant tool calls become
``tool_use`` blocks whose ``input`` is the parsed JSON object). ``max_tokens`` is always
sent: Anthropic requires it.

Thinking is driven by the model's parameter rules (:class:`ModelTraits`):

* ``thinking`` + ``thinking_budget`` rules (extended thinking, Claude 3.7 to 4.6):
  ``thinking: {type: enabled, budget_tokens}``; sampling parameters are dropped, as the API
  rejects them while thinking;
* ``effort`` / ``thinking_display`` rules (adaptive thinking, Claude Opus 4.8 and later):
  ``thinking: {type: adaptive|disabled, display}`` and ``output_config.effort``.

Responses: :func:`parse_message` for unary replies and :class:`StreamAssembler` for the SSE
event sequence (``message_start`` … ``message_stop``), both reporting raw token counts; the
block and usage bookkeeping it shares with Bedrock Converse is :mod:`providers.kit.blocks`.

Across turns: ``thinking`` blocks (with their ``signature``) and ``redacted_thinking`` blocks
come back as reasoning parts tagged ``anthropic`` and are replayed, unchanged and first, in the
assistant turn they belong to (Anthropic requires them after a tool call while thinking is on);
another protocol's parts are dropped. Prompt caching: a caller's cache breakpoints become
``cache_control`` on system, tool and content blocks; usage splits cache reads from 5-minute and
1-hour writes.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes

import orjson

from engine.adapter import LLMRequest
from engine.entities import AIModelEntity, ParameterRule
from engine.errors import bad_request
from engine.messages import (
    AssistantMessage,
    ContentPart,
    FinishReason,
    LLMChunk,
    LLMResult,
    PartKind,
    PromptMessage,
    ReasoningPart,
    Role,
    TokenCounts,
    Tool,
    ToolCall,
    ToolChoice,
)
from providers.kit.blocks import BlockAssembler, arguments, tool_input, usage_counts

ORIGIN = "anthropic"  # reasoning parts this protocol produced (direct, Vertex)

STOP_REASONS = {
    "end_turn": FinishReason.STOP,
    "stop_sequence": FinishReason.STOP,
    "max_tokens": FinishReason.LENGTH,
    "model_context_window_exceeded": FinishReason.LENGTH,
    "tool_use": FinishReason.TOOL_CALLS,
    "refusal": FinishReason.CONTENT_FILTER,
    "pause_turn": FinishReason.OTHER,
}

DEFAULT_MAX_TOKENS = 4096
MIN_THINKING_BUDGET = 1024
_SAMPLING = ("temperature", "top_p", "top_k")
_IMAGE_TYPES = {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "gif": "image/gif",
                "webp": "image/webp"}


def finish_reason(raw: str | None) -> FinishReason:
    return STOP_REASONS.get(raw or "end_turn", FinishReason.OTHER)


# ---- model traits ----------------------------------------------------------------------------


@dataclass(slots=True)
class ModelTraits:
    """What the request builder needs from a model's schema."""

    max_tokens: int = DEFAULT_MAX_TOKENS  # used when the caller sent none
    rules: dict[str, ParameterRule] = field(default_factory=dict)

    @classmethod
    def from_schema(cls, schema: AIModelEntity | None) -> ModelTraits:
        if schema is None:
            return cls()
        rules = {r.name: r for r in schema.parameter_rules}
        rule = rules.get("max_tokens") or rules.get("max_tokens_to_sample")
        default = DEFAULT_MAX_TOKENS
        if rule is not None:
            value = rule.default if rule.default is not None else rule.max
            if value:
                default = int(value)
        return cls(default, rules)

    @property
    def adaptive(self) -> bool:
        """Adaptive-thinking models (effort, thinking display) rather than budgeted thinking."""
        return "effort" in self.rules or "thinking_display" in self.rules

    def default_budget(self) -> int:
        rule = self.rules.get("thinking_budget")
        value = rule.default if rule is not None and rule.default else MIN_THINKING_BUDGET
        return max(int(value), MIN_THINKING_BUDGET)


# ---- content ---------------------------------------------------------------------------------


def _parse_data_url(url: str) -> tuple[str, bytes] | None:
    """``data:<mime>[;base64],<payload>`` → (mime, bytes); None for other URLs."""
    if not url.startswith("data:"):
        return None
    head, sep, payload = url[5:].partition(",")
    if not sep:
        return None
    mime, _, flags = head.partition(";")
    try:
        data = base64.b64decode(payload, validate=False) if "base64" in flags else unquote_to_bytes(payload)
    except ValueError:
        return None
    return mime, data


def _inline(part: ContentPart) -> tuple[str, bytes] | None:
    """(mime type, bytes) of inline media: raw bytes or a data: URL."""
    if part.data:
        return part.mime_type, part.data
    parsed = _parse_data_url(part.url)
    if parsed is not None:
        return part.mime_type or parsed[0], parsed[1]
    return None


def _image(part: ContentPart, path: str) -> dict[str, Any]:
    inline = _inline(part)
    if inline is None:
        if not part.url:
            raise bad_request(path, "image needs inline data or a URL")
        return {"type": "image", "source": {"type": "url", "url": part.url}}
    mime, data = inline
    mime = mime or _IMAGE_TYPES.get(part.format.lower(), "")
    if mime == "image/jpg":
        mime = "image/jpeg"
    if mime not in _IMAGE_TYPES.values():
        raise bad_request(path, f"Anthropic accepts JPEG, PNG, GIF and WebP images, not {mime or 'unknown'}")
    return {"type": "image", "source": {"type": "base64", "media_type": mime, "data": base64.b64encode(data).decode()}}


def _document(part: ContentPart, path: str) -> dict[str, Any]:
    inline = _inline(part)
    if inline is None:
        if not part.url:
            raise bad_request(path, "document needs inline data or a URL")
        block: dict[str, Any] = {"type": "document", "source": {"type": "url", "url": part.url}}
    else:
        mime, data = inline
        mime = mime or ("application/pdf" if part.format.lower() == "pdf" else "")
        if mime == "application/pdf":
            source = {"type": "base64", "media_type": mime, "data": base64.b64encode(data).decode()}
        elif mime.startswith("text/"):
            source = {"type": "text", "media_type": "text/plain", "data": data.decode("utf-8", "replace")}
        else:
            raise bad_request(path, f"Anthropic accepts PDF and plain-text documents, not {mime or 'unknown'}")
        block = {"type": "document", "source": source}
    if part.filename:
        block["title"] = part.filename
    return block


def cache_control(ttl: str) -> dict[str, Any]:
    """A breakpoint: ``ephemeral``; the 1-hour lifetime is named, 5 minutes is the default."""
    return {"type": "ephemeral", "ttl": "1h"} if ttl == "1h" else {"type": "ephemeral"}


def _cached(block: dict[str, Any], ttl: str) -> dict[str, Any]:
    if ttl:
        block["cache_control"] = cache_control(ttl)
    return block


def _part(part: ContentPart, path: str) -> dict[str, Any] | None:
    if part.kind is PartKind.TEXT:
        # empty text blocks are rejected
        return _cached({"type": "text", "text": part.text}, part.cache) if part.text else None
    if part.kind is PartKind.IMAGE:
        return _cached(_image(part, path), part.cache)
    if part.kind is PartKind.DOCUMENT:
        return _cached(_document(part, path), part.cache)
    raise bad_request(path, f"Anthropic does not accept {part.kind.value} content")


def _blocks(message: PromptMessage, i: int) -> list[dict[str, Any]]:
    out = []
    for j, part in enumerate(message.content):
        block = _part(part, f"messages[{i}].content[{j}]")
        if block is not None:
            out.append(block)
    return out


def reasoning_blocks(message: PromptMessage) -> list[dict[str, Any]]:
    """This protocol's reasoning parts of an assistant turn, as the blocks they came as."""
    out: list[dict[str, Any]] = []
    for part in message.reasoning_from(ORIGIN):
        if part.encrypted:
            out.append({"type": "redacted_thinking", "data": part.encrypted})
        elif part.signature:
            out.append({"type": "thinking", "thinking": part.text, "signature": part.signature})
    return out


def _assistant_blocks(message: PromptMessage, i: int) -> list[dict[str, Any]]:
    blocks = reasoning_blocks(message)
    blocks += [b for b in _blocks(message, i) if b["type"] == "text"]
    for j, call in enumerate(message.tool_calls):
        blocks.append({
            "type": "tool_use", "id": call.id, "name": call.name,
            "input": tool_input(call.arguments, f"messages[{i}].tool_calls[{j}].arguments"),
        })
    return blocks


def _tool_result(message: PromptMessage, i: int) -> dict[str, Any]:
    if not message.tool_call_id:
        raise bad_request(f"messages[{i}].tool_call_id", "a tool message needs the id of the call it answers")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id}
    parts = _blocks(message, i)
    ttl = next((p.cache for p in reversed(message.content) if p.cache), "")
    if ttl:  # a breakpoint on a tool result ends the prefix after the whole result block
        for p in parts:
            p.pop("cache_control", None)
    if parts and all(p["type"] == "text" for p in parts):
        block["content"] = "".join(p["text"] for p in parts)
    elif parts:
        block["content"] = parts
    return _cached(block, ttl)


def _simplify(content: list[dict[str, Any]]) -> Any:
    if len(content) == 1 and content[0]["type"] == "text":
        return content[0]["text"]
    return content


def convert_messages(messages: list[PromptMessage]) -> tuple[str | list[dict[str, Any]] | None, list[dict[str, Any]]]:
    """(system, messages): system/developer text is hoisted out; the rest alternates."""
    system: list[tuple[str, str]] = []  # (text, cache ttl)
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        role = message.role
        if role in (Role.SYSTEM, Role.DEVELOPER):
            text = message.text()
            if text:
                system.append((text, next((p.cache for p in reversed(message.content) if p.cache), "")))
            continue
        if role is Role.ASSISTANT:
            wire_role, blocks = "assistant", _assistant_blocks(message, i)
        elif role is Role.TOOL:
            wire_role, blocks = "user", [_tool_result(message, i)]
        else:
            wire_role, blocks = "user", _blocks(message, i)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == wire_role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": wire_role, "content": blocks})
    for turn in turns:
        turn["content"] = _simplify(turn["content"])
    system_out: str | list[dict[str, Any]] | None = None
    if len(system) == 1 and not system[0][1]:
        system_out = system[0][0]
    elif system:
        system_out = [_cached({"type": "text", "text": text}, ttl) for text, ttl in system]
    return system_out, turns


def tools_to_wire(tools: list[Tool]) -> list[dict[str, Any]]:
    return [
        _cached({"name": t.name, "description": t.description or "",
                 "input_schema": t.parameters or {"type": "object", "properties": {}}}, t.cache)
        for t in tools
    ]


def tool_choice_to_wire(choice: ToolChoice | None) -> dict[str, Any] | None:
    if choice is None:
        return None
    if choice.mode == "function":
        return {"type": "tool", "name": choice.function_name}
    if choice.mode == "required":
        return {"type": "any"}
    if choice.mode == "none":
        return {"type": "none"}
    return {"type": "auto"}


# ---- request bodies --------------------------------------------------------------------------


def _json_schema(value: Any) -> dict[str, Any]:
    try:
        schema = orjson.loads(value) if isinstance(value, str) else value
    except orjson.JSONDecodeError:
        raise bad_request("model_parameters.json_schema", "not valid JSON") from None
    if not isinstance(schema, dict) or not schema:
        raise bad_request("model_parameters.json_schema", "must be a non-empty JSON object")
    # Dify's form may wrap the schema as {"name", "schema", "strict"} (OpenAI's shape).
    inner = schema.get("schema")
    return inner if isinstance(inner, dict) and "name" in schema else schema


def _apply_thinking(body: dict[str, Any], params: dict[str, Any], traits: ModelTraits) -> None:
    thinking = params.pop("thinking", None)
    budget = params.pop("thinking_budget", None)
    display = params.pop("thinking_display", None)
    effort = params.pop("effort", None)
    output_config: dict[str, Any] = {}
    if effort:
        output_config["effort"] = effort
    if traits.adaptive:
        if thinking is False:
            body["thinking"] = {"type": "disabled"}
        elif thinking is True or display:
            config: dict[str, Any] = {"type": "adaptive"}
            if display:
                config["display"] = display
            body["thinking"] = config
    elif thinking is True or (thinking is None and budget and "thinking" not in traits.rules):
        budget = int(budget) if budget else traits.default_budget()
        if budget >= body["max_tokens"]:
            raise bad_request("model_parameters.thinking_budget",
                              f"must be less than max_tokens ({body['max_tokens']})")
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
        for name in _SAMPLING:  # rejected while extended thinking is on
            params.pop(name, None)
    schema = params.pop("json_schema", None)
    if schema not in (None, ""):
        output_config["format"] = {"type": "json_schema", "schema": _json_schema(schema)}
    if output_config:
        body["output_config"] = output_config


def _unthought_tool_turn(turns: list[dict[str, Any]]) -> bool:
    """The last turn answers tool calls whose assistant turn does not start with thinking."""
    if len(turns) < 2 or turns[-1]["role"] != "user" or not isinstance(turns[-1]["content"], list):
        return False
    if not any(b.get("type") == "tool_result" for b in turns[-1]["content"]):
        return False
    content = turns[-2]["content"]
    first = content[0] if isinstance(content, list) and content else {}
    return first.get("type") not in ("thinking", "redacted_thinking")


def build_messages_body(model: str, request: LLMRequest, traits: ModelTraits, *, stream: bool) -> dict[str, Any]:
    params = dict(request.parameters)
    max_tokens = params.pop("max_tokens", None)
    if max_tokens is None:
        max_tokens = params.pop("max_tokens_to_sample", None)
    params.pop("max_tokens_to_sample", None)
    params.pop("response_format", None)  # JSON output goes through json_schema (output_config.format)
    system, messages = convert_messages(request.messages)
    body: dict[str, Any] = {"model": model, "max_tokens": int(max_tokens or traits.max_tokens), "messages": messages}
    if system is not None:
        body["system"] = system
    _apply_thinking(body, params, traits)
    if body.get("thinking", {}).get("type") in ("enabled", "adaptive") and _unthought_tool_turn(messages):
        # The tool loop in progress began without Anthropic's thinking (another provider's turn):
        # Anthropic refuses thinking then, and its own advice is to turn it off for the request.
        del body["thinking"]
    body.update(params)  # temperature, top_p, top_k and any vendor rule, under its wire name
    if request.tools:
        body["tools"] = tools_to_wire(request.tools)
        choice = tool_choice_to_wire(request.tool_choice)
        if choice is not None:
            body["tool_choice"] = choice
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    if request.user:
        body["metadata"] = {"user_id": request.user}
    if stream:
        body["stream"] = True
    return body


def build_count_tokens_body(model: str, messages: list[PromptMessage], tools: list[Tool]) -> dict[str, Any]:
    """The Messages body without ``max_tokens``/``stream``, as count_tokens wants it."""
    system, wire = convert_messages(messages)
    if not wire:  # the endpoint needs one message; Dify counts a bare system prompt this way
        wire = [{"role": "user", "content": "Hello"}]
    body: dict[str, Any] = {"model": model, "messages": wire}
    if system is not None:
        body["system"] = system
    if tools:
        body["tools"] = tools_to_wire(tools)
    return body


# ---- responses -------------------------------------------------------------------------------


def counts_from_usage(usage: Any) -> TokenCounts | None:
    """Anthropic's ``input_tokens`` excludes cache reads and writes; our prompt count includes them.
    ``cache_creation.ephemeral_1h_input_tokens`` is the 1-hour share of the writes."""
    return usage_counts(usage, input="input_tokens", cache_read="cache_read_input_tokens",
                        cache_write="cache_creation_input_tokens", output="output_tokens",
                        write_1h=("cache_creation", "ephemeral_1h_input_tokens"))


def parse_message(body: dict[str, Any], model: str) -> LLMResult:
    message = AssistantMessage()
    texts: list[str] = []
    thoughts: list[str] = []
    for block in body.get("content") or ():
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "thinking":
            thoughts.append(block.get("thinking") or "")
            message.reasoning.append(ReasoningPart(text=block.get("thinking") or "",
                                                   signature=block.get("signature") or "", origin=ORIGIN))
        elif kind == "redacted_thinking":
            message.reasoning.append(ReasoningPart(encrypted=block.get("data") or "", origin=ORIGIN))
        elif kind == "tool_use":
            message.tool_calls.append(ToolCall(
                id=str(block.get("id") or f"toolu_{len(message.tool_calls)}"), name=block.get("name") or "",
                arguments=arguments(block.get("input")),
            ))
    message.content = "".join(texts)
    message.reasoning_content = "".join(thoughts)
    raw = body.get("stop_reason") or ""
    return LLMResult(
        model=body.get("model") or model, message=message, finish_reason=finish_reason(raw),
        provider_finish_reason=raw, id=body.get("id") or "", counts=counts_from_usage(body.get("usage")),
    )


class StreamAssembler(BlockAssembler):
    """Messages stream events (decoded JSON objects) → chunks; :meth:`final` gives the closing chunk.

    The block numbering, tool-call indexes and usage halves are the kit's
    (:class:`~providers.kit.blocks.BlockAssembler`); here are only Anthropic's event names.
    ``done`` once ``message_stop`` arrived.
    """

    __slots__ = ()

    def __init__(self, model: str) -> None:
        super().__init__(model, ORIGIN)

    def feed(self, event: dict[str, Any]) -> LLMChunk | None:
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self.id = message.get("id") or self.id
            self.model = message.get("model") or self.model
            self.add_usage(message.get("usage"))
        elif kind == "content_block_start":
            return self._block_start(int(event.get("index") or 0), event.get("content_block") or {})
        elif kind == "content_block_delta":
            return self._delta(int(event.get("index") or 0), event.get("delta") or {})
        elif kind == "message_delta":
            delta = event.get("delta") or {}
            self.stop_reason = delta.get("stop_reason") or self.stop_reason
            self.add_usage(event.get("usage"))
        elif kind == "message_stop":
            self.done = True
        return None  # ping, content_block_stop and unknown future events

    def _block_start(self, index: int, block: dict[str, Any]) -> LLMChunk | None:
        kind = block.get("type")
        if kind == "tool_use":
            initial = block.get("input")
            return self.tool_start(index, block.get("id") or "", block.get("name") or "",
                                   arguments(initial) if initial else "")  # normally {} and then deltas
        if kind == "text":
            return self.text(block.get("text"))
        if kind == "thinking":
            return self.reasoning(index, block.get("thinking"), signature=block.get("signature"))
        if kind == "redacted_thinking":
            return self.reasoning(index, encrypted=block.get("data"))
        return None

    def _delta(self, index: int, delta: dict[str, Any]) -> LLMChunk | None:
        kind = delta.get("type")
        if kind == "text_delta":
            return self.text(delta.get("text"))
        if kind == "input_json_delta":
            return self.tool_fragment(index, delta.get("partial_json"))
        if kind == "thinking_delta":
            return self.reasoning(index, delta.get("thinking"))
        if kind == "signature_delta":
            return self.reasoning(index, signature=delta.get("signature"))
        return None  # citations_delta: nothing for the caller

    def final(self) -> LLMChunk:
        return self.closing(finish_reason(self.stop_reason), counts_from_usage(self.usage))
