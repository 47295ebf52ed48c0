"""The gRPC side: request ids, trace context, gRPC server metrics and the call log line.

Why an interceptor: it is the one place that sees every RPC's method and final status code.
It runs outermost, opens the request scope (``x-request-id`` and ``traceparent`` from the
metadata), sends ``x-request-id`` back in the initial metadata, and at the end counts
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


class _Method:
    """The children one method's RPCs touch, bound when its handler is first wrapped."""

    __slots__ = ("handled", "labels", "metrics", "name", "requests", "seconds", "started")

    def __init__(self, metrics: Any, name: str, labels: tuple[str, str, str]) -> None:
        self.metrics, self.name, self.labels = metrics, name, labels
        self.started: Any = metrics.grpc_started.labels(*labels) if metrics is not None else None
        self.seconds: Any = metrics.grpc_seconds.labels(*labels) if metrics is not None else None
        self.handled: dict[str, Any] = {}
        self.requests: dict[tuple[str, str], Any] = {}

    def ended(self, code: str, error_class: str, seconds: float) -> None:
        handled = self.handled.get(code)
        if handled is None:
            handled = self.handled[code] = self.metrics.grpc_handled.labels(*self.labels, code)
        handled.value += 1
        requests = self.requests.get((code, error_class))
        if requests is None:
            requests = self.requests[(code, error_class)] = self.metrics.requests.labels(
                "grpc", self.name, code, error_class)
        requests.value += 1
        self.seconds.observe(seconds)


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
        self._bytes: Any = self.metrics.door_bytes["grpc"] if self.metrics is not None else (None, None)

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
            bound = _Method(self.metrics, method, ("unary", service, name))
            return grpc.unary_unary_rpc_method_handler(self._unary(handler.unary_unary, bound), **io)
        if handler.unary_stream is not None and inspect.isasyncgenfunction(handler.unary_stream):
            bound = _Method(self.metrics, method, ("server_stream", service, name))
            return grpc.unary_stream_rpc_method_handler(self._stream(handler.unary_stream, bound), **io)
        return handler

    def _begin(self, request: Any, context: grpc.aio.ServicerContext, method: _Method) -> RequestScope:
        given = traceparent = tracestate = None
        for key, value in context.invocation_metadata() or ():
            if key == "x-request-id":
                given = value
            elif key == "traceparent":
                traceparent = value
            elif key == "tracestate":
                tracestate = value
        scope = RequestScope("grpc", method.name, request_id(given if isinstance(given, str) else None))
        if self.tracing:
            scope.traceparent = traceparent if isinstance(traceparent, str) else None
            scope.tracestate = tracestate if isinstance(tracestate, str) else None
        current_scope.set(scope)
        if method.started is not None:
            method.started.value += 1
            self._bytes[0].value += _size(request)
        return scope

    def _end(self, scope: RequestScope, method: _Method, code: str, sent: int) -> None:
        if method.started is not None:
            error_class = scope.error_class or (scope.record.error_type if scope.record is not None else "")
            method.ended(code, error_class, time.perf_counter() - scope.started)
            self._bytes[1].value += sent
        if self.calls is not None:
            self.calls.write(scope, code)
        current_scope.set(None)

    def _unary(self, behavior, method: _Method):
        async def call(request, context):
            scope = self._begin(request, context, method)
            code, sent = "OK", 0
            try:
                await context.send_initial_metadata((("x-request-id", scope.request_id),))
                response = await behavior(request, context)
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
                self._end(scope, method, code, sent)
        return call

    def _stream(self, behavior, method: _Method):
        async def call(request, context):
            scope = self._begin(request, context, method)
            code, sent = "OK", 0
            count = self.metrics is not None
            responses = behavior(request, context)
            try:
                await context.send_initial_metadata((("x-request-id", scope.request_id),))
                async for item in responses:
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
                self._end(scope, method, code, sent)
        return call
