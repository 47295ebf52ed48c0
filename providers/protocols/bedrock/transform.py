"""Pure transforms between domain LLM requests/results and Bedrock's Converse API.

No I/O here. Requests (``POST /model/{modelId}/converse[-stream]``)::

    {"messages": [{"role": "user"|"assistant", "content": [ContentBlock, ...]}],
     "system": [{"text"}],
     "inferenceConfig": {"maxTokens", "temperature", "topP", "stopSequences"},
     "toolConfig": {"tools": [{"toolSpec": {"name", "description", "inputSchema": {"json"}}}],
                    "toolChoice": {"auto": {}} | {"any": {}} | {"tool": {"name"}}},
     "additionalModelRequestFields": {...}}

A ContentBlock is a union with one key: ``text``; ``image{format, source{bytes}}`` and
``document{format, name, source{bytes}}`` with base64 bytes (the JSON form of a blob);
``toolUse{toolUseId, name, input}`` with ``input`` a JSON object; ``toolResult{toolUseId,
content[{text}|{image}|{document}], status}``. Turns must alternate, so consecutive turns of one
role are merged and tool results become blocks of a user turn. Converse rejects blank text
blocks, so empty text is dropped.

Sampling parameters outside ``inferenceConfig`` travel in ``additionalModelRequestFields`` in
the model family's own shape: ``top_k`` for Claude (and Mistral), ``inferenceConfig.topK`` for
Amazon Nova; Claude's extended thinking is ``thinking: {type: enabled, budget_tokens}`` there,
and temperature/topP/top_k are left out while it is on. Any other rule a model YAML declares is
passed through under its own name.

Responses: :func:`parse_converse` for ``{"output": {"message"}, "stopReason", "usage"}`` and
:class:`StreamAssembler` for the ConverseStream events (``messageStart``,
``contentBlockStart`` (tool use only: text blocks get no start event), ``contentBlockDelta``,
``contentBlockStop``, ``messageStop``, then ``metadata`` with the usage); the block and usage
bookkeeping it shares with Anthropic's Messages stream is :mod:`providers.kit.blocks`.

Across turns: ``reasoningContent`` blocks (``reasoningText{text, signature}`` or
``redactedContent``) come back as reasoning parts tagged ``bedrock`` and are replayed unchanged,
first in their assistant turn (Claude's extended thinking needs them after a tool call).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes

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

ORIGIN = "bedrock"  # reasoning parts Converse produced

STOP_REASONS = {
    "end_turn": FinishReason.STOP,
    "stop_sequence": FinishReason.STOP,
    "max_tokens": FinishReason.LENGTH,
    "model_context_window_exceeded": FinishReason.LENGTH,
    "tool_use": FinishReason.TOOL_CALLS,
    "content_filtered": FinishReason.CONTENT_FILTER,
    "guardrail_intervened": FinishReason.CONTENT_FILTER,
}

MIN_THINKING_BUDGET = 1024
IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/gif": "gif",
                 "image/webp": "webp"}
DOCUMENT_FORMATS = {
    "application/pdf": "pdf", "text/csv": "csv", "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "text/html": "html", "text/plain": "txt", "text/markdown": "md",
}
_GEO_PREFIXES = {"us", "eu", "apac", "global", "us-gov", "jp", "au", "ca", "in"}
_NAME_FORBIDDEN = re.compile(r"[^A-Za-z0-9\s\-()\[\]]+")
_SPACES = re.compile(r"\s+")
_SAMPLING = ("temperature", "top_p", "top_k")


def finish_reason(raw: str | None) -> FinishReason:
    return STOP_REASONS.get(raw or "end_turn", FinishReason.OTHER)


def model_family(model: str) -> str:
    """The vendor part of a model id, inference profile or ARN: ``us.anthropic.claude-…`` →
    ``anthropic``; Amazon's Nova models are ``nova`` (their parameters differ from Titan's)."""
    name = model.rsplit("/", 1)[-1]
    parts = name.split(".")
    while len(parts) > 2 and parts[0] in _GEO_PREFIXES:
        parts = parts[1:]
    vendor = parts[0] if len(parts) > 1 else ""
    if vendor == "amazon" and parts[1].startswith("nova"):
        return "nova"
    return vendor


# ---- model traits ----------------------------------------------------------------------------


@dataclass(slots=True)
class ModelTraits:
    family: str = ""
    max_tokens: int | None = None  # sent when the caller gave none (None: the model's default)
    rules: dict[str, ParameterRule] = field(default_factory=dict)

    @classmethod
    def from_schema(cls, model: str, schema: AIModelEntity | None) -> ModelTraits:
        family = model_family(model)
        if schema is None:
            return cls(family)
        rules = {r.name: r for r in schema.parameter_rules}
        rule = rules.get("max_tokens")
        default = None
        if rule is not None:
            value = rule.default if rule.default is not None else rule.max
            default = int(value) if value else None
        return cls(family, default, rules)

    def default_budget(self) -> int:
        rule = self.rules.get("thinking_budget")
        value = rule.default if rule is not None and rule.default else MIN_THINKING_BUDGET
        return max(int(value), MIN_THINKING_BUDGET)


# ---- content ---------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _inline(part: ContentPart) -> tuple[str, bytes] | None:
    """(mime type, bytes) of inline media: raw bytes or a ``data:`` URL; None for other URLs."""
    if part.data:
        return part.mime_type.lower(), part.data
    url = part.url
    if not url.startswith("data:"):
        return None
    head, sep, payload = url[5:].partition(",")
    if not sep:
        return None
    mime, _, flags = head.partition(";")
    try:
        data = base64.b64decode(payload) if "base64" in flags else unquote_to_bytes(payload)
    except ValueError:
        return None
    return (part.mime_type or mime).lower(), data


def _image(part: ContentPart, path: str) -> dict[str, Any]:
    inline = _inline(part)
    if inline is None:
        raise bad_request(path, "Bedrock needs images inline (bytes or a data: URL), not a link")
    mime, data = inline
    fmt = IMAGE_FORMATS.get(mime) or {"jpg": "jpeg"}.get(part.format.lower(), part.format.lower())
    if fmt not in ("png", "jpeg", "gif", "webp"):
        raise bad_request(path, f"Bedrock accepts PNG, JPEG, GIF and WebP images, not {mime or part.format or 'unknown'}")
    return {"image": {"format": fmt, "source": {"bytes": _b64(data)}}}


def document_name(filename: str, taken: set[str]) -> str:
    """A name Converse accepts (letters, digits, single spaces, hyphens, parentheses and square
    brackets), unique within the request."""
    stem = filename.rsplit(".", 1)[0] if "." in filename else filename
    name = _SPACES.sub(" ", _NAME_FORBIDDEN.sub("-", stem)).strip(" -") or "document"
    name = name[:200]
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name} ({n})", n + 1
    taken.add(candidate)
    return candidate


def _document(part: ContentPart, path: str, names: set[str]) -> dict[str, Any]:
    inline = _inline(part)
    if inline is None:
        raise bad_request(path, "Bedrock needs documents inline (bytes or a data: URL), not a link")
    mime, data = inline
    fmt = DOCUMENT_FORMATS.get(mime.split(";")[0]) or part.format.lower()
    if fmt not in DOCUMENT_FORMATS.values():
        raise bad_request(path, f"Bedrock does not accept {mime or part.format or 'unknown'} documents")
    return {"document": {"format": fmt, "name": document_name(part.filename or "document", names),
                         "source": {"bytes": _b64(data)}}}


def _blocks(message: PromptMessage, i: int, names: set[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for j, part in enumerate(message.content):
        path = f"messages[{i}].content[{j}]"
        if part.kind is PartKind.TEXT:
            if part.text.strip():  # Converse rejects blank text blocks
                out.append({"text": part.text})
        elif part.kind is PartKind.IMAGE:
            out.append(_image(part, path))
        elif part.kind is PartKind.DOCUMENT:
            out.append(_document(part, path, names))
        else:
            raise bad_request(path, f"Bedrock Converse does not accept {part.kind.value} content here")
    return out


def reasoning_blocks(message: PromptMessage) -> list[dict[str, Any]]:
    """Converse's own reasoning parts of an assistant turn, as the blocks they came as."""
    out: list[dict[str, Any]] = []
    for part in message.reasoning_from(ORIGIN):
        if part.encrypted:
            out.append({"reasoningContent": {"redactedContent": part.encrypted}})
        elif part.signature:
            out.append({"reasoningContent": {"reasoningText": {"text": part.text, "signature": part.signature}}})
    return out


def _assistant_blocks(message: PromptMessage, i: int, names: set[str]) -> list[dict[str, Any]]:
    blocks = reasoning_blocks(message) + [b for b in _blocks(message, i, names) if "text" in b]
    for j, call in enumerate(message.tool_calls):
        blocks.append({"toolUse": {
            "toolUseId": call.id, "name": call.name,
            "input": tool_input(call.arguments, f"messages[{i}].tool_calls[{j}].arguments"),
        }})
    return blocks


def _tool_result(message: PromptMessage, i: int, names: set[str]) -> dict[str, Any]:
    if not message.tool_call_id:
        raise bad_request(f"messages[{i}].tool_call_id", "a tool message needs the id of the call it answers")
    content = _blocks(message, i, names) or [{"text": ""}]
    return {"toolResult": {"toolUseId": message.tool_call_id, "content": content, "status": "success"}}


def convert_messages(messages: list[PromptMessage]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system blocks, alternating turns)."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    names: set[str] = set()
    for i, message in enumerate(messages):
        role = message.role
        if role in (Role.SYSTEM, Role.DEVELOPER):
            text = message.text()
            if text.strip():
                system.append({"text": text})
            continue
        if role is Role.ASSISTANT:
            wire_role, blocks = "assistant", _assistant_blocks(message, i, names)
        elif role is Role.TOOL:
            wire_role, blocks = "user", [_tool_result(message, i, names)]
        else:
            wire_role, blocks = "user", _blocks(message, i, names)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == wire_role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": wire_role, "content": blocks})
    return system, turns


def _uses_tools(turns: list[dict[str, Any]]) -> set[str]:
    """Names of the tools the history calls (Converse needs a toolConfig whenever it does)."""
    return {b["toolUse"]["name"] for t in turns for b in t["content"] if "toolUse" in b}


def tool_config(tools: list[Tool], choice: ToolChoice | None, history: set[str]) -> dict[str, Any] | None:
    """``toolConfig``; tool choice ``none`` drops the tools, unless the history has tool blocks:
    then Converse requires the config, and tools the history names but the request does not
    are declared with an open schema."""
    if choice is not None and choice.mode == "none":
        if not history:
            return None
        tools, choice = [t for t in tools if t.name in history], None
    specs = []
    for tool in tools:
        spec: dict[str, Any] = {
            "name": tool.name,
            "inputSchema": {"json": tool.parameters or {"type": "object", "properties": {}}},
        }
        if tool.description:
            spec["description"] = tool.description
        specs.append({"toolSpec": spec})
    declared = {t.name for t in tools}
    for name in sorted(history - declared):
        specs.append({"toolSpec": {"name": name, "inputSchema": {"json": {"type": "object", "properties": {}}}}})
    if not specs:
        return None
    config: dict[str, Any] = {"tools": specs}
    if choice is not None and tools:
        if choice.mode == "function":
            config["toolChoice"] = {"tool": {"name": choice.function_name}}
        elif choice.mode == "required":
            config["toolChoice"] = {"any": {}}
        elif choice.mode == "auto":
            config["toolChoice"] = {"auto": {}}
    return config


# ---- request body ----------------------------------------------------------------------------


def _unthought_tool_turn(turns: list[dict[str, Any]]) -> bool:
    """The last turn answers tool calls whose assistant turn does not start with reasoning."""
    if len(turns) < 2 or not any("toolResult" in b for b in turns[-1]["content"]):
        return False
    return "reasoningContent" not in turns[-2]["content"][0]


def build_converse_body(request: LLMRequest, traits: ModelTraits) -> dict[str, Any]:
    params = dict(request.parameters)
    params.pop("response_format", None)
    system, turns = convert_messages(request.messages)
    body: dict[str, Any] = {"messages": turns}
    if system:
        body["system"] = system

    inference: dict[str, Any] = {}
    additional: dict[str, Any] = {}
    max_tokens = params.pop("max_tokens", None) or traits.max_tokens
    if max_tokens:
        inference["maxTokens"] = int(max_tokens)
    thinking = params.pop("thinking", None)
    budget = params.pop("thinking_budget", None)
    if thinking is True and _unthought_tool_turn(turns):
        thinking = None  # a tool loop begun without Converse's reasoning: Claude refuses thinking then
    if thinking is True:
        budget = int(budget) if budget else traits.default_budget()
        if max_tokens and budget >= int(max_tokens):
            raise bad_request("model_parameters.thinking_budget", f"must be less than max_tokens ({max_tokens})")
        additional["thinking"] = {"type": "enabled", "budget_tokens": budget}
        for name in _SAMPLING:  # rejected while extended thinking is on
            params.pop(name, None)
    if "temperature" in params:
        inference["temperature"] = params.pop("temperature")
    if "top_p" in params:
        inference["topP"] = params.pop("top_p")
    top_k = params.pop("top_k", None)
    if top_k is not None:
        if traits.family == "nova":
            additional.setdefault("inferenceConfig", {})["topK"] = top_k
        else:
            additional["top_k"] = top_k
    if request.stop:
        inference["stopSequences"] = list(request.stop)
    additional.update(params)  # any other rule, under its wire name
    if inference:
        body["inferenceConfig"] = inference
    if additional:
        body["additionalModelRequestFields"] = additional
    config = tool_config(request.tools, request.tool_choice, _uses_tools(turns))
    if config is not None:
        body["toolConfig"] = config
    return body


# ---- responses -------------------------------------------------------------------------------


def counts_from_usage(usage: Any) -> TokenCounts | None:
    """``inputTokens`` excludes prompt-cache reads and writes; our prompt count includes them."""
    return usage_counts(usage, input="inputTokens", cache_read="cacheReadInputTokens",
                        cache_write="cacheWriteInputTokens", output="outputTokens")


def parse_converse(body: dict[str, Any], model: str) -> LLMResult:
    message = AssistantMessage()
    output = body.get("output")
    output = output if isinstance(output, dict) else {}
    wire = output.get("message")
    wire = wire if isinstance(wire, dict) else {}
    texts: list[str] = []
    thoughts: list[str] = []
    for block in wire.get("content") or ():
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif isinstance(block.get("toolUse"), dict):
            use = block["toolUse"]
            message.tool_calls.append(ToolCall(
                id=str(use.get("toolUseId") or f"tooluse_{len(message.tool_calls)}"),
                name=str(use.get("name") or ""), arguments=arguments(use.get("input")),
            ))
        elif isinstance(block.get("reasoningContent"), dict):
            content = block["reasoningContent"]
            reasoning = content.get("reasoningText")
            if isinstance(reasoning, dict):
                text = str(reasoning.get("text") or "")
                thoughts.append(text)
                message.reasoning.append(ReasoningPart(text=text, signature=str(reasoning.get("signature") or ""),
                                                       origin=ORIGIN))
            elif isinstance(content.get("redactedContent"), str):
                message.reasoning.append(ReasoningPart(encrypted=content["redactedContent"], origin=ORIGIN))
    message.content = "".join(texts)
    message.reasoning_content = "".join(thoughts)
    raw = str(body.get("stopReason") or "")
    return LLMResult(
        model=model, message=message, finish_reason=finish_reason(raw), provider_finish_reason=raw,
        counts=counts_from_usage(body.get("usage")),
    )


class StreamAssembler(BlockAssembler):
    """ConverseStream events → chunks. ``stopped`` after ``messageStop``; ``done`` once the
    ``metadata`` event that follows it (with the usage) has arrived.

    The block numbering, tool-call indexes and usage are the kit's
    (:class:`~providers.kit.blocks.BlockAssembler`); here are only Converse's event names.
    ``id`` is the response's x-amzn-requestid (Converse has no message id).
    """

    __slots__ = ("stopped",)

    def __init__(self, model: str) -> None:
        super().__init__(model, ORIGIN)
        self.stopped = False

    @property
    def complete(self) -> bool:
        return self.stopped

    def feed(self, event: str, payload: dict[str, Any]) -> LLMChunk | None:
        if event == "contentBlockStart":
            start = payload.get("start") or {}
            use = start.get("toolUse") if isinstance(start, dict) else None
            if isinstance(use, dict):
                return self.tool_start(int(payload.get("contentBlockIndex") or 0),
                                       str(use.get("toolUseId") or ""), str(use.get("name") or ""))
        elif event == "contentBlockDelta":
            return self._delta(int(payload.get("contentBlockIndex") or 0), payload.get("delta") or {})
        elif event == "messageStop":
            self.stop_reason = str(payload.get("stopReason") or "")
            self.stopped = True
        elif event == "metadata":
            self.add_usage(payload.get("usage"))
            if self.stopped:
                self.done = True
        return None  # messageStart, contentBlockStop and unknown future events

    def _delta(self, block: int, delta: dict[str, Any]) -> LLMChunk | None:
        if not isinstance(delta, dict):
            return None
        if isinstance(delta.get("text"), str):
            return self.text(delta["text"])
        use = delta.get("toolUse")
        if isinstance(use, dict):
            return self.tool_fragment(block, use.get("input"))
        reasoning = delta.get("reasoningContent")
        if isinstance(reasoning, dict):
            return self.reasoning(block, reasoning.get("text"), signature=reasoning.get("signature"),
                                  encrypted=reasoning.get("redactedContent"))
        return None  # citations

    def final(self) -> LLMChunk:
        return self.closing(finish_reason(self.stop_reason), counts_from_usage(self.usage))
