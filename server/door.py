"""The gRPC front door: one wrapper per method, built once at registration, instead of a chain
of four ``grpc.aio`` interceptors.

Why: grpc.aio runs every interceptor's ``intercept_service`` coroutine for every call, and each
interceptor wrapped the handler in a coroutine (a generator per message, when streaming) of its
own: four coroutine layers and four method lookups per call before the servicer ran, and each
streamed chunk passed through five generators. Here one coroutine does, in order, what the
interceptors did (issue 15 measured the difference in ``make bench``'s doors scenario):

1. observability (outermost): request id and trace context from the metadata, ``x-request-id``
   back in the initial metadata with the response or the first streamed message (never before:
   a call whose replica dies before answering must reach a load balancer such as nginx without
   response headers, so the client sees UNAVAILABLE, not a reset stream; an error carries it in
   the trailers), gRPC server metrics and the call log line at the end;
2. in-flight tracking, so shutdown can end a call with UNAVAILABLE (:class:`server.app._InFlight`);
3. request decoding: the handler takes raw bytes, so an undecodable request becomes the
   DecodeGuard's INVALID_ARGUMENT naming the field (:mod:`server.servicers._decode`), and the
   byte counts the metrics need are the lengths grpc handed over, not a second ``ByteSize()``;
4. authentication (not for health and reflection): one pass over the metadata serves both the
   request id and the ``authorization`` value; with auth off no coroutine is awaited at all;
5. the servicer; responses are serialized here (their length is the bytes-out figure).

Health and reflection are wrapped the same way (their streaming methods only get the decoding
guard, as before). Nothing of the happy path builds statuses or details: those are made only
on the error paths.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import DecodeError

from .auth.errors import AccessError
from .auth.errors import to_status as access_status
from .auth.gate import CURRENT, CallState, Gate
from .auth.grpc import OPEN, note_refusal, request_credentials
from .auth.keys import ANONYMOUS
from .observability.grpc import BoundMethod, GrpcObserver, status_code
from .servicers._decode import Malformed, diagnose, guard

if TYPE_CHECKING:
    from .app import _InFlight

log = logging.getLogger("modelruntime.server")

_METADATA_KEYS = frozenset({"x-request-id", "traceparent", "tracestate", "authorization"})


def _metadata(context: grpc.aio.ServicerContext) -> dict[str, Any]:
    """The few invocation metadata values the door reads, in one pass."""
    found: dict[str, Any] = {}
    for key, value in context.invocation_metadata() or ():
        if key in _METADATA_KEYS and key not in found:
            found[key] = value
    return found


class FrontDoor:
    def __init__(self, observer: GrpcObserver | None, in_flight: _InFlight, gate: Gate,
                 client_certs: bool = False) -> None:
        self.observer = observer
        self.in_flight = in_flight
        self.gate = gate
        self.client_certs = client_certs

    # ---- registration -----------------------------------------------------------------------

    def registrar(self, server: grpc.aio.Server) -> Registrar:
        return Registrar(server, self)

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        parse = handler.request_deserializer
        descriptor = getattr(getattr(parse, "__self__", None), "DESCRIPTOR", None)
        if parse is None or not isinstance(descriptor, Descriptor):
            return handler  # not a generated protobuf handler: leave it as it is
        serialize = handler.response_serializer or _identity
        service, _, name = method[1:].rpartition("/")
        check = not method.startswith(OPEN)
        observer = self.observer
        if handler.unary_unary is not None:
            bound = observer.bind(method, ("unary", service, name)) if observer is not None else None
            return grpc.unary_unary_rpc_method_handler(
                self._unary(handler.unary_unary, method, bound, parse, descriptor, serialize, check))
        if handler.unary_stream is not None and inspect.isasyncgenfunction(handler.unary_stream):
            bound = observer.bind(method, ("server_stream", service, name)) if observer is not None else None
            return grpc.unary_stream_rpc_method_handler(
                self._stream(handler.unary_stream, method, bound, parse, descriptor, serialize, check))
        return guard(handler)  # client/bidi streaming (reflection): the decoding guard only

    # ---- per call ---------------------------------------------------------------------------

    async def _identify(self, request: Any, context: grpc.aio.ServicerContext, authorization: Any,
                        method: str) -> None:
        raw, name = request_credentials(request)
        if not self.gate.enabled:
            CURRENT.set(CallState(ANONYMOUS, "grpc", raw, name))
            return
        if authorization is not None and not isinstance(authorization, str):
            authorization = authorization.decode("latin-1")
        identity = ""
        if self.client_certs and not authorization:
            names = context.auth_context().get("x509_common_name") or []
            identity = names[0].decode() if names else ""
        try:
            key = await self.gate.authenticate(authorization, identity)
        except AccessError as exc:
            note_refusal(self.gate, exc, request, method)
            raise
        CURRENT.set(CallState(key, "grpc", raw, name))

    def _unary(self, behavior: Callable, method: str, bound: BoundMethod | None, parse: Callable,
               descriptor: Descriptor, serialize: Callable, check: bool) -> Callable:
        observer, in_flight = self.observer, self.in_flight

        async def call(data: bytes, context: grpc.aio.ServicerContext) -> Any:
            meta = _metadata(context)
            scope = observer.begin(meta, bound, len(data)) if observer is not None and bound is not None else None
            code, sent = "OK", 0
            rpc = in_flight.enter(context)
            try:
                try:
                    request = parse(data)
                except DecodeError:
                    return await _refuse(descriptor, data, context)
                try:
                    if check:
                        await self._identify(request, context, meta.get("authorization"), method)
                    response = await behavior(request, context)
                except AccessError as exc:
                    await context.abort_with_status(_with_request_id(access_status(exc), scope))
                except asyncio.CancelledError as exc:
                    await in_flight.abort_if_cut(rpc, exc)
                if scope is not None:  # with the response, never before (see _with_request_id)
                    await context.send_initial_metadata((("x-request-id", scope.request_id),))
                if response is None:
                    return None
                out = serialize(response)
                sent = len(out)
                return out
            except asyncio.CancelledError:
                code = status_code(context, "CANCELLED")
                raise
            except BaseException:
                code = status_code(context, "UNKNOWN")
                raise
            finally:
                in_flight.leave(rpc)
                if scope is not None:
                    observer.end(scope, bound, code, sent)  # type: ignore[union-attr,arg-type]

        return call

    def _stream(self, behavior: Callable, method: str, bound: BoundMethod | None, parse: Callable,
                descriptor: Descriptor, serialize: Callable, check: bool) -> Callable:
        observer, in_flight = self.observer, self.in_flight

        async def call(data: bytes, context: grpc.aio.ServicerContext):
            meta = _metadata(context)
            scope = observer.begin(meta, bound, len(data)) if observer is not None and bound is not None else None
            code, sent = "OK", 0
            rpc = in_flight.enter(context)
            responses = None
            cut = headers = False
            try:
                try:
                    request = parse(data)
                except DecodeError:
                    await _refuse(descriptor, data, context)
                    return
                try:
                    if check:
                        await self._identify(request, context, meta.get("authorization"), method)
                    responses = behavior(request, context)
                    while not cut:
                        rpc.busy = True
                        try:
                            item = await anext(responses)
                        except StopAsyncIteration:
                            break
                        finally:
                            rpc.busy = False
                        if in_flight.cutting:
                            cut = True
                            break
                        out = serialize(item)
                        if scope is not None and not headers:  # headers go with the first message
                            headers = True
                            await context.send_initial_metadata((("x-request-id", scope.request_id),))
                        sent += len(out)
                        yield out
                        cut = in_flight.cutting
                except AccessError as exc:
                    await context.abort_with_status(_with_request_id(access_status(exc), scope))
                except asyncio.CancelledError as exc:
                    if responses is not None:
                        await responses.aclose()
                    await in_flight.abort_if_cut(rpc, exc)
                if cut and responses is not None:  # shutdown came between two messages: UNAVAILABLE
                    await responses.aclose()
                    await in_flight.abort_if_cut(rpc)
            except (asyncio.CancelledError, GeneratorExit):
                code = status_code(context, "CANCELLED")
                raise
            except BaseException:
                code = status_code(context, "UNKNOWN")
                raise
            finally:
                in_flight.leave(rpc)
                if responses is not None:
                    await responses.aclose()
                if scope is not None:
                    observer.end(scope, bound, code, sent)  # type: ignore[union-attr,arg-type]

        return call


async def _refuse(descriptor: Descriptor, data: bytes, context: grpc.aio.ServicerContext) -> None:
    field, description = diagnose(descriptor, memoryview(data)) or ("", "cannot be parsed")
    bad = Malformed(descriptor.full_name, field, description)
    log.info("malformed %s: %s %s", bad.type_name, bad.field or "request", bad.description)
    await context.abort_with_status(bad.status())


def _identity(message: Any) -> Any:
    return message


class Registrar:
    """What the generated ``add_*Servicer_to_server`` functions are given instead of the server:
    every handler they register reaches grpc wrapped by the door."""

    def __init__(self, server: grpc.aio.Server, door: FrontDoor) -> None:
        self.server = server
        self.door = door

    def add_registered_method_handlers(self, service: str, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        self.server.add_registered_method_handlers(
            service, {name: self.door.wrap(f"/{service}/{name}", h) for name, h in handlers.items()})

    def add_generic_rpc_handlers(self, handlers: tuple[grpc.GenericRpcHandler, ...]) -> None:
        self.server.add_generic_rpc_handlers(tuple(WrappedGeneric(h, self.door.wrap) for h in handlers))


class WrappedGeneric(grpc.GenericRpcHandler):
    """A generic handler whose method handlers come out through ``wrap(method, handler)``, each
    built once (the front door's wrapper here; the threaded bridge's in server/bridge.py)."""

    def __init__(self, inner: grpc.GenericRpcHandler,
                 wrap: Callable[[str, grpc.RpcMethodHandler], grpc.RpcMethodHandler]) -> None:
        self.inner = inner
        self.wrap = wrap
        self.cache: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        handler = self.inner.service(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        cached = self.cache.get(method)
        if cached is None or cached[0] is not handler:
            cached = self.cache[method] = (handler, self.wrap(method, handler))
        return cached[1]


def _with_request_id(status: Any, scope: Any) -> Any:
    """A refusal's status with ``x-request-id`` in its trailers (no response headers went out)."""
    if scope is None:
        return status
    return status._replace(trailing_metadata=(*status.trailing_metadata, ("x-request-id", scope.request_id)))
