"""The gRPC side: request ids, trace context, gRPC server metrics and the call log line.

:class:`GrpcObserver` is what the front door (:mod:`server.door`) calls at the start and the end
of every RPC, outermost, so it sees every final status code: it opens the request scope
(``x-request-id`` and ``traceparent`` from the metadata), and at the end counts ``grpc_server_*``
by method and code, the request by code and Dify error class, bytes in and out (the lengths of
the raw messages grpc handed over and got back), and writes the call log line. Each method's
metric children are bound once, when the door wraps its handler (:meth:`GrpcObserver.bind`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import grpc

from .calls import RequestScope, current_scope, request_id

if TYPE_CHECKING:
    from . import Observability


def status_code(context: grpc.aio.ServicerContext, default: str) -> str:
    """The status code the call ended with, as a name (``default`` when none was set)."""
    try:
        code = context.code()
    except Exception:  # noqa: BLE001 - an older grpcio without code(): report the default
        return default
    if code is None:
        return default
    return code.name if isinstance(code, grpc.StatusCode) else str(code)


class BoundMethod:
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


class GrpcObserver:
    def __init__(self, observability: Observability) -> None:
        self.metrics = observability.metrics
        self.tracing = observability.tracing is not None
        self.calls = observability.calls
        self._bytes: Any = self.metrics.door_bytes["grpc"] if self.metrics is not None else (None, None)

    def bind(self, name: str, labels: tuple[str, str, str]) -> BoundMethod:
        return BoundMethod(self.metrics, name, labels)

    def begin(self, meta: dict[str, Any], method: BoundMethod, received: int) -> RequestScope:
        given = meta.get("x-request-id")
        scope = RequestScope("grpc", method.name, request_id(given if isinstance(given, str) else None))
        if self.tracing:
            traceparent, tracestate = meta.get("traceparent"), meta.get("tracestate")
            scope.traceparent = traceparent if isinstance(traceparent, str) else None
            scope.tracestate = tracestate if isinstance(tracestate, str) else None
        current_scope.set(scope)
        if method.started is not None:
            method.started.value += 1
            self._bytes[0].value += received
        return scope

    def end(self, scope: RequestScope, method: BoundMethod, code: str, sent: int) -> None:
        if method.started is not None:
            error_class = scope.error_class or (scope.record.error_type if scope.record is not None else "")
            method.ended(code, error_class, time.perf_counter() - scope.started)
            self._bytes[1].value += sent
        if self.calls is not None:
            self.calls.write(scope, code)
        current_scope.set(None)
