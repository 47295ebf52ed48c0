"""Python-native arguments → request protos (shared by the sync and async facades)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any, cast

from google.protobuf import struct_pb2

from .v1 import common_pb2, llm_service_pb2, text_embedding_service_pb2, tts_service_pb2

__all__ = [
    "audio_encoding",
    "input_type",
    "model_type",
    "read_audio",
    "target",
    "to_content_part",
    "to_message",
    "to_messages",
    "to_struct",
    "to_tool",
    "to_tool_call",
    "to_tool_choice",
    "to_tools",
]

StructLike = Mapping[str, Any] | struct_pb2.Struct | None


def to_struct(value: StructLike) -> struct_pb2.Struct | None:
    """A dict (JSON-like values) → ``google.protobuf.Struct``; a Struct passes through."""
    if value is None:
        return None
    if isinstance(value, struct_pb2.Struct):
        return value
    if not isinstance(value, Mapping):
        raise TypeError(f"expected a mapping or google.protobuf.Struct, got {type(value).__name__}")
    s = struct_pb2.Struct()
    s.update(_jsonable(value))
    return s


def _jsonable(value: Any) -> Any:
    """Tuples → lists and nested mappings → dicts, as Struct.update wants them."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def target(provider: str, model: str, credentials: StructLike) -> common_pb2.ModelTarget:
    t = common_pb2.ModelTarget(provider=provider, model=model)
    creds = to_struct(credentials)
    if creds is not None:
        t.credentials.CopyFrom(creds)
    return t


def _enum(value: Any, enum: Any, prefix: str, what: str, aliases: Mapping[str, str] | None = None) -> int:
    """Accept an enum number, its full name, or its short name in any case/-/_ spelling."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise TypeError(f"invalid {what}: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        key = value.strip().upper().replace("-", "_").replace(" ", "_")
        if aliases:
            key = aliases.get(key, key)
        for name in (key, prefix + key):
            try:
                return int(enum.Value(name))
            except ValueError:
                continue
        choices = ", ".join(v.name[len(prefix) :].lower() for v in enum.DESCRIPTOR.values if v.number)
        raise ValueError(f"unknown {what} {value!r}; expected one of: {choices}")
    raise TypeError(f"invalid {what}: {value!r}")


def model_type(value: Any) -> common_pb2.ModelType.ValueType:
    """A model type: "llm", "text-embedding", "rerank", "speech2text", "moderation", "tts" or a ModelType."""
    n = _enum(value, common_pb2.ModelType, "MODEL_TYPE_", "model type", {"EMBEDDING": "TEXT_EMBEDDING"})
    return cast("common_pb2.ModelType.ValueType", n)


def input_type(value: Any) -> text_embedding_service_pb2.EmbeddingInputType.ValueType:
    """An embedding input type: "document", "query" or an EmbeddingInputType."""
    n = _enum(
        value, text_embedding_service_pb2.EmbeddingInputType, "EMBEDDING_INPUT_TYPE_", "embedding input type"
    )
    return cast("text_embedding_service_pb2.EmbeddingInputType.ValueType", n)


def audio_encoding(value: Any) -> tts_service_pb2.AudioEncoding.ValueType:
    """An audio encoding: "mp3", "opus", "aac", "flac", "wav", "pcm" or an AudioEncoding."""
    n = _enum(value, tts_service_pb2.AudioEncoding, "AUDIO_ENCODING_", "audio encoding")
    return cast("tts_service_pb2.AudioEncoding.ValueType", n)


def _role(value: Any) -> llm_service_pb2.Role.ValueType:
    return cast("llm_service_pb2.Role.ValueType", _enum(value, llm_service_pb2.Role, "ROLE_", "role"))


def _image_detail(value: Any) -> llm_service_pb2.ImageDetail.ValueType:
    n = _enum(value, llm_service_pb2.ImageDetail, "IMAGE_DETAIL_", "image detail")
    return cast("llm_service_pb2.ImageDetail.ValueType", n)


def _tool_choice_mode(value: Any) -> llm_service_pb2.ToolChoiceMode.ValueType:
    n = _enum(value, llm_service_pb2.ToolChoiceMode, "TOOL_CHOICE_MODE_", "tool choice")
    return cast("llm_service_pb2.ToolChoiceMode.ValueType", n)


_MEDIA_KINDS = ("image", "audio", "video", "document")


def media(
    kind: str,
    source: bytes | bytearray | memoryview | str | None = None,
    mime_type: str = "",
    *,
    data: bytes | None = None,
    url: str | None = None,
    format: str = "",
    detail: Any = None,
    filename: str = "",
) -> llm_service_pb2.ContentPart:
    """One media content part; ``source`` is bytes (inline data) or a str (URL, incl. data: URLs)."""
    if kind not in _MEDIA_KINDS:
        raise ValueError(f"unknown media kind {kind!r}")
    if source is not None:
        if data is not None or url is not None:
            raise ValueError("give either source or data=/url=, not both")
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
        elif isinstance(source, str):
            url = source
        else:
            raise TypeError(f"{kind} source must be bytes or a URL string, got {type(source).__name__}")
    if (data is None) == (url is None):
        raise ValueError(f"{kind} needs exactly one of data or url")
    m = llm_service_pb2.MediaContent(mime_type=mime_type, format=format, filename=filename)
    if data is not None:
        m.data = bytes(data)
    else:
        m.url = str(url)
    if detail is not None:
        m.detail = _image_detail(detail)
    part = llm_service_pb2.ContentPart()
    getattr(part, kind).CopyFrom(m)
    return part


def to_content_part(part: Any) -> llm_service_pb2.ContentPart:
    """str, ContentPart, or a dict part.

    Dict parts: ``{"type": "text", "text": ...}``; ``{"type": "image"|"audio"|"video"|"document",
    "data"|"url": ..., "mime_type": ..., "format": ..., "detail": ..., "filename": ...}``;
    OpenAI's ``{"type": "image_url", "image_url": {"url": ..., "detail": ...}}``.
    """
    if isinstance(part, llm_service_pb2.ContentPart):
        return part
    if isinstance(part, str):
        return llm_service_pb2.ContentPart(text=part)
    if isinstance(part, Mapping):
        kind = part.get("type")
        if kind is None:
            if "text" in part:
                kind = "text"
            else:
                kind = next((k for k in _MEDIA_KINDS if k in part), None)
        if kind == "text":
            return llm_service_pb2.ContentPart(text=str(part.get("text", "")))
        if kind == "image_url":
            spec = part.get("image_url")
            if isinstance(spec, str):
                spec = {"url": spec}
            spec = dict(spec or {})
            return media(
                "image", url=spec.get("url"), detail=spec.get("detail"), mime_type=spec.get("mime_type", "")
            )
        if kind in _MEDIA_KINDS:
            spec = part.get(kind)
            spec = dict(spec) if isinstance(spec, Mapping) else dict(part)
            return media(
                kind,
                data=spec.get("data"),
                url=spec.get("url"),
                mime_type=spec.get("mime_type", ""),
                format=spec.get("format", ""),
                detail=spec.get("detail"),
                filename=spec.get("filename", ""),
            )
        raise ValueError(f"unknown content part type {kind!r}")
    raise TypeError(f"invalid content part: {type(part).__name__}")


def to_tool_call(call: Any) -> llm_service_pb2.ToolCall:
    """ToolCall, or ``{"id", "name", "arguments"}`` / OpenAI ``{"id", "type", "function": {...}}``.

    ``arguments`` may be a JSON string or a dict (serialized with json.dumps).
    """
    if isinstance(call, llm_service_pb2.ToolCall):
        return call
    if not isinstance(call, Mapping):
        raise TypeError(f"invalid tool call: {type(call).__name__}")
    fn = call.get("function")
    fn = fn if isinstance(fn, Mapping) else call
    args = fn.get("arguments", "")
    if not isinstance(args, str):
        args = json.dumps(args, ensure_ascii=False)
    return llm_service_pb2.ToolCall(
        id=str(call.get("id", "")),
        type=str(call.get("type") or "function"),
        name=str(fn.get("name", "")),
        arguments=args,
    )


def to_message(message: Any) -> llm_service_pb2.Message:
    """Message, or an OpenAI-like dict ``{"role", "content", "name", "tool_calls", "tool_call_id"}``.

    ``content`` is a str, a list of parts (see :func:`to_content_part`), or None.
    """
    if isinstance(message, llm_service_pb2.Message):
        return message
    if not isinstance(message, Mapping):
        raise TypeError(f"a message must be a dict or modelruntime.v1 Message, got {type(message).__name__}")
    msg = llm_service_pb2.Message(
        role=_role(message.get("role")),
        name=str(message.get("name") or ""),
        tool_call_id=str(message.get("tool_call_id") or ""),
    )
    content = message.get("content")
    if content is not None:
        if isinstance(content, (str, llm_service_pb2.ContentPart, Mapping)):
            content = [content]
        msg.content.extend(to_content_part(p) for p in content)
    msg.tool_calls.extend(to_tool_call(c) for c in message.get("tool_calls") or ())
    return msg


def to_messages(messages: Iterable[Any]) -> list[llm_service_pb2.Message]:
    if isinstance(messages, (str, Mapping, llm_service_pb2.Message)):
        raise TypeError("messages must be a list of messages")
    return [to_message(m) for m in messages]


def to_tool(tool: Any) -> llm_service_pb2.Tool:
    """Tool, ``{"name", "description", "parameters"}`` or OpenAI ``{"type": "function", "function": {...}}``."""
    if isinstance(tool, llm_service_pb2.Tool):
        return tool
    if not isinstance(tool, Mapping):
        raise TypeError(f"invalid tool: {type(tool).__name__}")
    fn = tool.get("function")
    fn = fn if isinstance(fn, Mapping) else tool
    t = llm_service_pb2.Tool(name=str(fn.get("name", "")), description=str(fn.get("description") or ""))
    params = to_struct(fn.get("parameters"))
    if params is not None:
        t.parameters.CopyFrom(params)
    return t


def to_tools(tools: Iterable[Any] | None) -> list[llm_service_pb2.Tool]:
    return [to_tool(t) for t in tools or ()]


def to_tool_choice(choice: Any) -> llm_service_pb2.ToolChoice | None:
    """A tool choice: "auto", "none", "required", a ToolChoice, or a forced function as
    ``{"type": "function", "function": {"name": ...}}``, ``{"function_name": ...}`` or ``{"name": ...}``."""
    if choice is None:
        return None
    if isinstance(choice, llm_service_pb2.ToolChoice):
        return choice
    if isinstance(choice, str):
        return llm_service_pb2.ToolChoice(mode=_tool_choice_mode(choice))
    if isinstance(choice, Mapping):
        fn = choice.get("function")
        name = (
            (fn.get("name") if isinstance(fn, Mapping) else None)
            or choice.get("function_name")
            or choice.get("name")
        )
        if name:
            return llm_service_pb2.ToolChoice(
                mode=llm_service_pb2.TOOL_CHOICE_MODE_FUNCTION, function_name=str(name)
            )
        if "mode" in choice:
            return llm_service_pb2.ToolChoice(mode=_tool_choice_mode(choice["mode"]))
    raise ValueError(f"invalid tool_choice: {choice!r}")


def read_audio(audio: bytes | bytearray | memoryview | str | os.PathLike[str] | IO[bytes]) -> bytes:
    """Bytes as they are; a path is read; a binary file object is read to the end."""
    if isinstance(audio, (bytes, bytearray, memoryview)):
        return bytes(audio)
    if isinstance(audio, (str, os.PathLike)):
        with open(audio, "rb") as f:
            return f.read()
    read = getattr(audio, "read", None)
    if callable(read):
        data = read()
        if isinstance(data, str):
            raise TypeError("audio file objects must be opened in binary mode")
        return bytes(data)
    raise TypeError(f"audio must be bytes, a path or a binary file, got {type(audio).__name__}")


def metadata_tuple(
    *parts: Mapping[str, str | bytes] | Sequence[tuple[str, str | bytes]] | None,
) -> tuple[tuple[str, str | bytes], ...] | None:
    """Merge call metadata given as mappings or pair sequences (later entries added after earlier)."""
    out: list[tuple[str, str | bytes]] = []
    for p in parts:
        if not p:
            continue
        items = p.items() if isinstance(p, Mapping) else p
        out.extend((str(k).lower(), v) for k, v in items)
    return tuple(out) or None
