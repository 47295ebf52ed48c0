"""Constructors of prompt ``Message`` / ``ContentPart`` / ``Tool`` protos.

>>> from modelruntime import system, user, image
>>> msgs = [system("Be brief."), user(["What is this?", image(png_bytes, "image/png")])]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf import struct_pb2

from . import _convert
from .v1 import llm_service_pb2

__all__ = [
    "Content",
    "assistant",
    "audio",
    "developer",
    "document",
    "image",
    "system",
    "text",
    "tool",
    "tool_call",
    "tool_result",
    "user",
    "video",
]

Role = llm_service_pb2.Role

#: A message's content: a str, one part, or a list of str / ContentPart / dict parts.
Content = str | llm_service_pb2.ContentPart | Mapping[str, Any] | Iterable[Any] | None


def _parts(content: Content) -> list[llm_service_pb2.ContentPart]:
    if content is None:
        return []
    if isinstance(content, (str, llm_service_pb2.ContentPart, Mapping)):
        content = [content]
    return [_convert.to_content_part(p) for p in content]


def _message(role: int, content: Content, **fields: Any) -> llm_service_pb2.Message:
    msg = llm_service_pb2.Message(role=role, **{k: v for k, v in fields.items() if v})  # type: ignore[arg-type]
    msg.content.extend(_parts(content))
    return msg


def system(content: Content, *, name: str = "") -> llm_service_pb2.Message:
    """A system message."""
    return _message(Role.ROLE_SYSTEM, content, name=name)


def developer(content: Content, *, name: str = "") -> llm_service_pb2.Message:
    """A developer message (models that distinguish it from system)."""
    return _message(Role.ROLE_DEVELOPER, content, name=name)


def user(content: Content, *, name: str = "") -> llm_service_pb2.Message:
    """A user message: text, or a list of text and media parts (see :func:`image`)."""
    return _message(Role.ROLE_USER, content, name=name)


def assistant(
    content: Content = None,
    *,
    tool_calls: Iterable[llm_service_pb2.ToolCall | Mapping[str, Any]] | None = None,
    name: str = "",
) -> llm_service_pb2.Message:
    """An assistant message, optionally with the tool calls it made (ToolCall or dicts)."""
    msg = _message(Role.ROLE_ASSISTANT, content, name=name)
    msg.tool_calls.extend(_convert.to_tool_call(c) for c in tool_calls or ())
    return msg


def assistant_reply(response: llm_service_pb2.GenerateResponse) -> llm_service_pb2.Message:
    """The assistant turn of a ``Generate`` answer (or an accumulated stream) as history:
    content, tool calls, reasoning parts and provider state, so the provider gets back its
    signatures unchanged on the next turn (required by Anthropic and Gemini 3 with tools)."""
    m = response.message
    msg = _message(Role.ROLE_ASSISTANT, m.content or None)
    msg.tool_calls.extend(m.tool_calls)
    msg.reasoning.extend(m.reasoning)
    if m.HasField("provider_state"):
        msg.provider_state.CopyFrom(m.provider_state)
    return msg


def tool_result(call_id: str, content: Content) -> llm_service_pb2.Message:
    """A tool message answering the tool call ``call_id``."""
    return _message(Role.ROLE_TOOL, content, tool_call_id=call_id)


def text(value: str) -> llm_service_pb2.ContentPart:
    """A text content part."""
    return llm_service_pb2.ContentPart(text=value)


def image(
    source: bytes | bytearray | memoryview | str | None = None,
    mime_type: str = "",
    *,
    data: bytes | None = None,
    url: str | None = None,
    detail: str | int | None = None,
    format: str = "",
    filename: str = "",
) -> llm_service_pb2.ContentPart:
    """An image part: ``source`` bytes are sent inline, a str is a URL (``data:`` URLs too).

    ``detail`` is "low", "high" or "auto".
    """
    return _convert.media(
        "image", source, mime_type, data=data, url=url, detail=detail, format=format, filename=filename
    )


def audio(
    source: bytes | bytearray | memoryview | str | None = None,
    mime_type: str = "",
    *,
    data: bytes | None = None,
    url: str | None = None,
    format: str = "",
    filename: str = "",
) -> llm_service_pb2.ContentPart:
    """An audio part (bytes inline, str URL)."""
    return _convert.media("audio", source, mime_type, data=data, url=url, format=format, filename=filename)


def video(
    source: bytes | bytearray | memoryview | str | None = None,
    mime_type: str = "",
    *,
    data: bytes | None = None,
    url: str | None = None,
    format: str = "",
    filename: str = "",
) -> llm_service_pb2.ContentPart:
    """A video part (bytes inline, str URL)."""
    return _convert.media("video", source, mime_type, data=data, url=url, format=format, filename=filename)


def document(
    source: bytes | bytearray | memoryview | str | None = None,
    mime_type: str = "",
    *,
    data: bytes | None = None,
    url: str | None = None,
    format: str = "",
    filename: str = "",
) -> llm_service_pb2.ContentPart:
    """A document part, e.g. a PDF (bytes inline, str URL)."""
    return _convert.media("document", source, mime_type, data=data, url=url, format=format, filename=filename)


def tool(
    name: str,
    description: str = "",
    parameters: Mapping[str, Any] | struct_pb2.Struct | None = None,
) -> llm_service_pb2.Tool:
    """A tool definition; ``parameters`` is the JSON Schema of its arguments object."""
    return _convert.to_tool({"name": name, "description": description, "parameters": parameters})


def tool_call(id: str, name: str, arguments: str | Mapping[str, Any] = "") -> llm_service_pb2.ToolCall:
    """A complete tool call (``arguments`` as JSON text or a dict)."""
    return _convert.to_tool_call({"id": id, "type": "function", "name": name, "arguments": arguments})
