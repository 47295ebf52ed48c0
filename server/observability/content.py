"""Prompt and completion text for spans and call logs, only when the operator turns it on.

Why a module of its own: content is personal data more often than not, so it is opt-in
(``observability.capture_content``, off by default) and shaped in one place. The runtime hands
the raw request and answer over (``CallRecord.input`` / ``output``, only when asked); this module
turns them into the GenAI conventions' JSON once per call:

- chat: ``gen_ai.input.messages`` (``[{"role", "parts": [{"type": "text", "content"}, ...]}]``,
  tool calls and tool results as their own part types, media as a part naming its type only,
  never its bytes or URL) and ``gen_ai.output.messages`` (the assistant's text and finish reason);
- every other operation: the input texts (embedding inputs, rerank query then documents,
  moderation or TTS text, a transcription prompt) and the output text (a transcript), as JSON lists.

The caller's secret credential values are replaced by ``***`` in the finished JSON, and each
side is cut to ``max_chars`` characters (the cut marked with ``…``).
"""

from __future__ import annotations

from typing import Any

import orjson

from engine.messages import PartKind, PromptMessage

MARK = "…"


def _part(part: Any) -> dict[str, Any]:
    if part.kind is PartKind.TEXT:
        return {"type": "text", "content": part.text}
    # Media: the kind and type only. Bytes and URLs (which may carry signed tokens) stay out.
    return {"type": part.kind.value, **({"mime_type": part.mime_type} if part.mime_type else {})}


def _message(message: PromptMessage) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [_part(p) for p in message.content]
    if message.tool_call_id:
        parts = [{"type": "tool_call_response", "id": message.tool_call_id,
                  "response": message.text()}]
    for call in message.tool_calls:
        parts.append({"type": "tool_call", "id": call.id, "name": call.name, "arguments": call.arguments})
    return {"role": message.role.value, "parts": parts}


def _input(value: Any) -> Any:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and isinstance(value[0], PromptMessage):
        return [_message(m) for m in value]
    return list(value)


def _dump(value: Any, secrets: list[str], max_chars: int) -> str:
    text = orjson.dumps(value).decode()
    for secret in secrets:
        if len(secret) >= 4 and secret in text:
            text = text.replace(secret, "***")
    if len(text) > max_chars:
        text = text[: max_chars - 1] + MARK
    return text


def capture(record: Any, max_chars: int) -> None:
    """Replace the record's raw input / output with their scrubbed JSON text (once per call)."""
    secrets = record.secrets
    if record.input is not None:
        record.input = _dump(_input(record.input), secrets, max_chars)
    if record.output is not None:
        output: Any = record.output
        if record.operation == "chat":
            message: dict[str, Any] = {"role": "assistant", "parts": [{"type": "text", "content": output}]}
            if record.finish_reason:
                message["finish_reason"] = record.finish_reason
            output = [message]
        else:
            output = [output]
        record.output = _dump(output, secrets, max_chars)


def attributes(record: Any) -> dict[str, str]:
    """Span attributes of captured content (after :func:`capture`)."""
    chat = record.operation == "chat"
    out = {}
    if record.input is not None:
        out["gen_ai.input.messages" if chat else "modelruntime.input"] = record.input
    if record.output is not None:
        out["gen_ai.output.messages" if chat else "modelruntime.output"] = record.output
    return out
