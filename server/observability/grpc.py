"""The gRPC side: request ids, trace context, gRPC server metrics and the call log line.

:class:`GrpcObserver` is what the front door (:mod:`server.door`) calls at the start and the end
of every RPC, outermost, so it sees every final status code: it opens the request scope
(``x-request-id`` and ``traceparent`` from the metadata), and at the end counts ``grpc_server_*``
by method and code, the request by code and Dify error class, bytes in and out (the lengths of
the raw messages grpc handed over and got back), and writes the call log line.
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


class GrpcObserver:
    def __init__(self, observability: Observability) -> None:
        self.metrics = observability.metrics
        self.tracing = observability.tracing is not None
        self.calls = observability.calls

    def begin(self, meta: dict[str, Any], method: str, labels: tuple[str, str, str], received: int) -> RequestScope:
        given = meta.get("x-request-id")
        scope = RequestScope("grpc", method, request_id(given if isinstance(given, str) else None))
        if self.tracing:
            traceparent, tracestate = meta.get("traceparent"), meta.get("tracestate")
            scope.traceparent = traceparent if isinstance(traceparent, str) else None
            scope.tracestate = tracestate if isinstance(tracestate, str) else None
        current_scope.set(scope)
        metrics = self.metrics
        if metrics is not None:
            metrics.child(metrics.grpc_started, *labels).inc()
            metrics.child(metrics.bytes_in, "grpc").inc(received)
        return scope

    def end(self, scope: RequestScope, labels: tuple[str, str, str], code: str, sent: int) -> None:
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
