"""Malformed request bytes → INVALID_ARGUMENT naming the field, for every service of the server.

The generated handlers parse requests with ``Message.FromString``; when that raises
(corrupt or truncated wire data, invalid UTF-8, nesting past protobuf's depth limit),
grpc.aio logs a traceback and answers ``UNKNOWN "Unexpected <class DecodeError>"``.
The front door (:mod:`server.door`) parses the raw bytes of unary and server-streaming calls
itself and answers a failure with :class:`Malformed`'s status, the one every other error gets
(server/errors.py); for the other kinds (reflection's bidi stream) :func:`guard` swaps in a
deserializer that returns a :class:`Malformed` marker instead of raising, and a behavior that
answers the marker.

Only on that failure path the raw bytes are walked once more (:func:`diagnose`) to name
the field at fault (``tools[0].parameters``); valid requests pay nothing but the lookup.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError

from engine.errors import FieldViolation, InvokeBadRequestError

from ..errors import to_status

log = logging.getLogger("modelruntime.server")

# upb's default decode depth: a message nested deeper than this cannot be parsed.
MAX_DEPTH = 100
# Inside these the caller's JSON has no proto field names: report the field holding it.
_OPAQUE = {"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"}


@dataclass(frozen=True, slots=True)
class Malformed:
    """Stands in for a request that could not be parsed."""

    type_name: str
    field: str
    description: str

    def status(self) -> grpc.Status:
        field = self.field or "request"
        return to_status(InvokeBadRequestError(
            f"request is not a valid {self.type_name}: {field} {self.description}",
            field_violations=(FieldViolation(field, self.description),),
        ))


class _Wire:
    """A cursor over protobuf wire format that raises ValueError where the bytes end early."""

    def __init__(self, data: memoryview) -> None:
        self.data, self.pos = data, 0

    def varint(self) -> int:
        result = shift = 0
        while shift < 70:
            if self.pos >= len(self.data):
                raise ValueError("is truncated")
            byte = self.data[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7
        raise ValueError("has a corrupt varint")

    def take(self, size: int) -> memoryview:
        if self.pos + size > len(self.data):
            raise ValueError("is truncated")
        self.pos += size
        return self.data[self.pos - size:self.pos]


def diagnose(
    descriptor: Descriptor, data: memoryview, path: str = "", depth: int = 0, opaque: bool = False
) -> tuple[str, str] | None:
    """The first defect in ``data`` as (field path, description); None when none is found."""
    wire = _Wire(data)
    counts: dict[int, int] = {}
    opaque = opaque or descriptor.full_name in _OPAQUE
    while wire.pos < len(data):
        try:
            tag = wire.varint()
        except ValueError as exc:
            return path, str(exc)
        number, kind = tag >> 3, tag & 7
        field = descriptor.fields_by_number.get(number)
        where = path
        if field is not None and not opaque:
            where = f"{path}.{field.name}" if path else field.name
            if field.is_repeated and not _is_map(field):
                counts[number] = counts.get(number, -1) + 1
                where = f"{where}[{counts[number]}]"
        try:
            if kind == 0:
                wire.varint()
            elif kind == 1:
                wire.take(8)
            elif kind == 5:
                wire.take(4)
            elif kind == 2:
                payload = wire.take(wire.varint())
                found = _check_payload(field, payload, where, depth, opaque)
                if found is not None:
                    return found
            else:
                return where or path, f"has an invalid wire type {kind}"
        except ValueError as exc:
            return where, str(exc)
    return None


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _check_payload(
    field: FieldDescriptor | None, payload: memoryview, where: str, depth: int, opaque: bool
) -> tuple[str, str] | None:
    if field is None:
        return None
    if field.type == FieldDescriptor.TYPE_STRING:
        try:
            str(payload, "utf-8")
        except UnicodeDecodeError:
            return where, "is not valid UTF-8"
    elif field.message_type is not None:
        if depth + 1 >= MAX_DEPTH:
            return where, f"nests more than {MAX_DEPTH} messages deep"
        return diagnose(field.message_type, payload, where, depth + 1, opaque)
    return None


def _guarded_deserializer(parse: Callable[[bytes], Any], descriptor: Descriptor) -> Callable[[bytes], Any]:
    def deserialize(data: bytes) -> Any:
        try:
            return parse(data)
        except DecodeError:
            field, description = diagnose(descriptor, memoryview(data)) or ("", "cannot be parsed")
            return Malformed(descriptor.full_name, field, description)

    return deserialize


async def _refuse(request: Malformed, context: grpc.aio.ServicerContext) -> None:
    log.info("malformed %s: %s %s", request.type_name, request.field or "request", request.description)
    await context.abort_with_status(request.status())


def guard(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    parse = handler.request_deserializer
    descriptor = getattr(getattr(parse, "__self__", None), "DESCRIPTOR", None)
    if parse is None or not isinstance(descriptor, Descriptor):
        return handler  # not a generated protobuf parser: nothing known to guard
    options = {
        "request_deserializer": _guarded_deserializer(parse, descriptor),
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(_unary_unary(handler.unary_unary), **options)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(_unary_stream(handler.unary_stream), **options)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(_stream_unary(handler.stream_unary), **options)
    return grpc.stream_stream_rpc_method_handler(_stream_stream(handler.stream_stream), **options)


def _unary_unary(behavior: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, Malformed):
            return await _refuse(request, context)
        return await behavior(request, context)

    return call


def _unary_stream(behavior: Callable[..., Any]) -> Callable[..., Any]:
    if not inspect.isasyncgenfunction(behavior):
        # A coroutine that streams through context.write (grpc's health Watch): guarding it
        # with an async generator made every Watch fail.
        return _unary_unary(behavior)

    async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        if isinstance(request, Malformed):
            await _refuse(request, context)
        async for response in behavior(request, context):
            yield response

    return call


async def _checked(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
    async for request in requests:
        if isinstance(request, Malformed):
            await _refuse(request, context)
        yield request


def _stream_unary(behavior: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def call(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
        return await behavior(_checked(requests, context), context)

    return call


def _stream_stream(behavior: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    async def call(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        async for response in behavior(_checked(requests, context), context):
            yield response

    return call
