"""The gRPC side: request ids, trace context, gRPC server metrics and the call log line.

Why an interceptor: it is the one place that sees every RPC's method and final status code.
It runs outermost, opens the request scope (``x-request-id`` and ``traceparent`` from the
metadata), sends ``x-request-id`` back in the initial metadata (with the response or the first
streamed message, never earlier: a call whose server dies before answering must reach a load
balancer such as nginx without response headers, so the client sees UNAVAILABLE rather than a
reset stream; errors carry it in the trailers, see servicers/_common.py), and at the end counts
``grpc_server_*`` by method and code, the request by code and Dify error class, bytes in and
out, and writes the call log line. Wrapped handlers are cached per method.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from typing import TYPE_CHECKING, Any

import grpc

from .calls import RequestScope, current_scope, request_id

if TYPE_CHECKING:
    from . import Observability


def _code(context: grpc.aio.ServicerContext, default: str) -> str:
    try:
        code = context.code()
    except Exception:  # noqa: BLE001 - an older grpcio without code(): report the default
        return default
    if code is None:
        return default
    return code.name if isinstance(code, grpc.StatusCode) else str(code)


def _size(message: Any) -> int:
    """Serialized size; 0 for the DecodeGuard's stand-in of an undecodable request."""
    size = getattr(message, "ByteSize", None)
    return size() if size is not None else 0


class GrpcObserver(grpc.aio.ServerInterceptor):
    def __init__(self, observability: Observability) -> None:
        self.metrics = observability.metrics
        self.tracing = observability.tracing is not None
        self.calls = observability.calls
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(self, continuation, details):
        handler = self._handlers.get(details.method)
        if handler is None:
            handler = await continuation(details)
            if handler is None:
                return None
            handler = self._wrap(handler, details.method)
            self._handlers[details.method] = handler
        return handler

    def _wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        service, _, name = method[1:].rpartition("/")
        io = {"request_deserializer": handler.request_deserializer,
              "response_serializer": handler.response_serializer}
        if handler.unary_unary is not None:
            labels = ("unary", service, name)
            return grpc.unary_unary_rpc_method_handler(self._unary(handler.unary_unary, method, labels), **io)
        if handler.unary_stream is not None and inspect.isasyncgenfunction(handler.unary_stream):
            labels = ("server_stream", service, name)
            return grpc.unary_stream_rpc_method_handler(self._stream(handler.unary_stream, method, labels), **io)
        return handler

    def _begin(self, request: Any, context: grpc.aio.ServicerContext, method: str,
               labels: tuple[str, str, str]) -> RequestScope:
        given = traceparent = tracestate = None
        for key, value in context.invocation_metadata() or ():
            if key == "x-request-id":
                given = value
            elif key == "traceparent":
                traceparent = value
            elif key == "tracestate":
                tracestate = value
        scope = RequestScope("grpc", method, request_id(given if isinstance(given, str) else None))
        if self.tracing:
            scope.traceparent = traceparent if isinstance(traceparent, str) else None
            scope.tracestate = tracestate if isinstance(tracestate, str) else None
        current_scope.set(scope)
        metrics = self.metrics
        if metrics is not None:
            metrics.child(metrics.grpc_started, *labels).inc()
            metrics.child(metrics.bytes_in, "grpc").inc(_size(request))
        return scope

    def _end(self, scope: RequestScope, labels: tuple[str, str, str], code: str, sent: int) -> None:
        metrics = self.metrics
        if metrics is not None:
            metrics.child(metrics.grpc_handled, *labels, code).inc()
            metrics.child(metrics.grpc_seconds, *labels).observe(time.perf_counter() - scope.started)
            error_class = scope.error_class or (scope.record.error_type if scope.record is not None else "")
            metrics.child(metrics.requests, "grpc", scope.method, code, error_class).inc()
            if sent:
                metrics.child(metrics.bytes_out, "grpc").inc(sent)
        if self.calls is not None:
            self.calls.write(scope, code)
        current_scope.set(None)

    def _unary(self, behavior, method: str, labels: tuple[str, str, str]):
        async def call(request, context):
            scope = self._begin(request, context, method, labels)
            code, sent = "OK", 0
            try:
                response = await behavior(request, context)
                await context.send_initial_metadata((("x-request-id", scope.request_id),))
                if response is not None and self.metrics is not None:
                    sent = _size(response)
                return response
            except asyncio.CancelledError:
                code = _code(context, "CANCELLED")
                raise
            except BaseException:
                code = _code(context, "UNKNOWN")
                raise
            finally:
                self._end(scope, labels, code, sent)
        return call

    def _stream(self, behavior, method: str, labels: tuple[str, str, str]):
        async def call(request, context):
            scope = self._begin(request, context, method, labels)
            code, sent = "OK", 0
            count = self.metrics is not None
            responses = behavior(request, context)
            try:
                first = True
                async for item in responses:
                    if first:
                        first = False
                        await context.send_initial_metadata((("x-request-id", scope.request_id),))
                    if count:
                        sent += _size(item)
                    yield item
            except (asyncio.CancelledError, GeneratorExit):
                code = _code(context, "CANCELLED")
                raise
            except BaseException:
                code = _code(context, "UNKNOWN")
                raise
            finally:
                await responses.aclose()
                self._end(scope, labels, code, sent)
        return call
