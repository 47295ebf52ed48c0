"""Observability: Prometheus metrics, OpenTelemetry traces and per-call log lines (issue 13).

Why a package of its own: the engine only calls a small observer hook (``engine/observe.py``)
and imports neither Prometheus nor OpenTelemetry; this package implements that hook and the
front doors' side (request ids, trace context, status codes, ``/metrics``).

- :mod:`.metrics`: the metric families and bounded labels;
- :mod:`.tracing`: the OpenTelemetry SDK, imported only when tracing is on;
- :mod:`.calls`: request scope, request ids, the call log line;
- :mod:`.content`: prompt and completion text, only with ``capture_content`` on;
- :mod:`.grpc`: what the gRPC front door calls (request id, gRPC server metrics, the log line);
- :mod:`.http`: the HTTP front door's twin of it.

Nothing is attached when metrics, tracing and the call log are all off.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from engine.observe import CallRecord, current_call

from ..auth.gate import CURRENT
from . import content
from .calls import CallLog, current_scope
from .metrics import Labels, Metrics

if TYPE_CHECKING:
    from engine.runtime import ModelRuntime

    from ..config import ObservabilityConfig

log = logging.getLogger("modelruntime.observability")

__all__ = ["Observability"]


class Observability:
    def __init__(self, config: ObservabilityConfig, providers: set[str], span_exporter: Any = None) -> None:
        self.config = config
        callers = config.max_caller_key_labels if config.caller_key_labels else 0
        self.metrics = Metrics(Labels(providers, config.max_model_labels, callers)) if config.metrics else None
        self.tracing: Any = None
        if config.tracing or span_exporter is not None:
            from .tracing import Tracing, otlp_exporter

            exporter = span_exporter or otlp_exporter(config.otlp_endpoint, config.otlp_insecure,
                                                      config.otlp_timeout_seconds)
            self.tracing = Tracing(config.service_name, exporter, batch=span_exporter is None)
        self.calls = CallLog(config.log_format) if config.call_log else None
        self.enabled = self.metrics is not None or self.tracing is not None or self.calls is not None
        self._admin: Any = None

    def attach(self, runtime: ModelRuntime) -> None:
        if not self.enabled:
            return
        runtime.observer = RuntimeObserver(self)
        runtime.egress.attempt_observer = AttemptHook(self)

    # ---- /metrics -------------------------------------------------------------------------

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

        assert self.metrics is not None
        return generate_latest(self.metrics.registry), CONTENT_TYPE_LATEST

    @property
    def metrics_on_http(self) -> bool:
        return self.metrics is not None and not self.config.metrics_admin

    def start_admin(self) -> int | None:
        """Serve /metrics on its own port (a thread of prometheus_client's); returns the port."""
        if self.metrics is None or not self.config.metrics_admin:
            return None
        from prometheus_client import start_http_server

        server, _thread = start_http_server(self.config.metrics_port, self.config.metrics_host,
                                            registry=self.metrics.registry)
        self._admin = server
        port = int(server.server_port)
        log.info("Prometheus metrics on http://%s:%d/metrics", self.config.metrics_host, port)
        return port

    def shutdown(self) -> None:
        if self._admin is not None:
            self._admin.shutdown()
            self._admin.server_close()
            self._admin = None
        if self.tracing is not None:
            self.tracing.shutdown()


class RuntimeObserver:
    """The engine's :class:`engine.observe.Observer`: feeds metrics, spans and the request scope."""

    __slots__ = ("capture_content", "max_chars", "metrics", "observability", "tracing")

    def __init__(self, observability: Observability) -> None:
        self.observability = observability
        self.metrics = observability.metrics
        self.tracing = observability.tracing
        config = observability.config
        # Content only where it can go (a span or a log line), and only when the operator asked.
        self.capture_content = config.capture_content and (
            self.tracing is not None or observability.calls is not None)
        self.max_chars = config.capture_content_max_chars

    def call_started(self, record: CallRecord) -> None:
        if self.metrics is not None:
            self.metrics.call_started(record.operation, record.stream)
        if self.tracing is not None:
            provider = self.metrics.labels.provider(record.provider) if self.metrics else record.provider
            record.span = self.tracing.start_call(record, current_scope.get(), provider)

    def first_token(self, record: CallRecord) -> None:
        if self.metrics is not None:
            self.metrics.first_token(record)
        if record.span is not None:
            self.tracing.first_token(record)

    def call_ended(self, record: CallRecord) -> None:
        if record.capture:
            content.capture(record, self.max_chars)
        metrics = self.metrics
        if metrics is not None:
            metrics.call_ended(record)
            if metrics.callers is not None:
                state = CURRENT.get()  # the caller key the auth gate identified in this task
                metrics.caller(state.key.name if state is not None else "_none", record)
        if record.span is not None:
            self.tracing.end_call(record)
        scope = current_scope.get()
        if scope is not None:
            scope.record = record


class _Attempt:
    __slots__ = ("headers", "hook", "record", "span")

    def __init__(self, hook: AttemptHook, record: CallRecord | None, headers: Mapping[str, str] | None,
                 span: Any = None) -> None:
        self.hook = hook
        self.record = record
        self.headers = headers
        self.span = span

    def end(self, status: int | None, error: BaseException | None, sent: int, received: int) -> None:
        metrics = self.hook.metrics
        if metrics is not None:
            if status is not None:
                label = str(status)
            else:
                label = "timeout" if isinstance(error, TimeoutError) else "connect_error"
            metrics.attempt(self.record.provider if self.record is not None else "", label, sent, received)
        if self.span is not None:
            self.hook.tracing.end_attempt(self.span, status, error, sent, received)


class AttemptHook:
    """The egress's :class:`engine.observe.AttemptObserver`."""

    __slots__ = ("metrics", "tracing")

    def __init__(self, observability: Observability) -> None:
        self.metrics = observability.metrics
        self.tracing = observability.tracing

    def attempt(self, method: str, url: str, headers: Mapping[str, str] | None, retry: bool) -> _Attempt:
        record = current_call.get()
        if record is not None:
            record.attempts += 1
        if retry and self.metrics is not None:
            self.metrics.retry(record.provider if record is not None else "")
        if self.tracing is None:
            return _Attempt(self, record, headers)
        span, headers = self.tracing.start_attempt(record, method, url, headers, retry)
        return _Attempt(self, record, headers, span)
