"""OpenTelemetry traces: one span per model call, one per upstream attempt, GenAI attributes.

Why here and imported lazily: tracing is off by default and must cost nothing then, so this
module (and with it the OpenTelemetry SDK) is imported only when ``observability.tracing`` is on.

- The call span continues the caller's W3C trace context (``traceparent`` / ``tracestate`` from
  gRPC metadata or HTTP headers, read by the front door into the request scope). It is named
  ``"{gen_ai.operation.name} {gen_ai.request.model}"`` as the conventions say, kind SERVER.
- Each upstream attempt is a CLIENT child span from connect until its response is closed (status,
  body sizes; a retried connect failure is an attempt of its own); the upstream request carries
  its ``traceparent`` so the provider (or a proxy) can join the trace.
- Attributes are the GenAI ones (operation, provider, models, usage, error.type) plus the
  runtime's cost and request id. Prompt and completion text enter a span only with
  ``capture_content`` on (:mod:`.content`: ``gen_ai.input.messages`` / ``gen_ai.output.messages``).
"""

from __future__ import annotations

from asyncio import CancelledError
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from . import content
from .metrics import PROVIDER_NAMES

_PROPAGATOR = TraceContextTextMapPropagator()


def otlp_exporter(endpoint: str, insecure: bool, timeout: float) -> SpanExporter:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint, insecure=insecure, timeout=timeout)


class Tracing:
    def __init__(self, service_name: str, exporter: SpanExporter, batch: bool = True) -> None:
        self.provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer("modelruntime")

    def start_call(self, record: Any, scope: Any, provider_name: str) -> Any:
        parent = None
        if scope is not None and scope.traceparent:
            carrier = {"traceparent": scope.traceparent}
            if scope.tracestate:
                carrier["tracestate"] = scope.tracestate
            parent = _PROPAGATOR.extract(carrier)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": record.operation,
            "gen_ai.provider.name": provider_name,
            "gen_ai.request.model": record.model,
            "modelruntime.model_type": record.model_type.value,
        }
        if record.stream:
            attributes["gen_ai.request.stream"] = True
        if scope is not None:
            attributes["modelruntime.request_id"] = scope.request_id
        return self.tracer.start_span(f"{record.operation} {record.model}", context=parent,
                                      kind=SpanKind.SERVER, attributes=attributes)

    @staticmethod
    def first_token(record: Any) -> None:
        record.span.add_event("gen_ai.first_token")
        record.span.set_attribute("gen_ai.response.time_to_first_chunk", record.time_to_first_token)

    @staticmethod
    def end_call(record: Any) -> None:
        span = record.span
        if record.response_model:
            span.set_attribute("gen_ai.response.model", record.response_model)
        if record.input_tokens is not None:
            span.set_attribute("gen_ai.usage.input_tokens", record.input_tokens)
        if record.output_tokens is not None:
            span.set_attribute("gen_ai.usage.output_tokens", record.output_tokens)
        if record.cost is not None:
            span.set_attribute("modelruntime.cost_usd", record.cost)
        span.set_attribute("modelruntime.upstream_attempts", record.attempts)
        span.set_attribute("modelruntime.status", record.status)
        if record.usage_estimated:
            span.set_attribute("modelruntime.usage_estimated", True)
        if record.finish_reason:
            span.set_attribute("gen_ai.response.finish_reasons", (record.finish_reason,))
        if record.capture:
            span.set_attributes(content.attributes(record))
        if record.status == "error":
            span.set_attribute("error.type", record.error_type)
            span.set_status(Status(StatusCode.ERROR, record.error_type))
        elif record.status == "cancelled":
            span.set_attribute("error.type", "cancelled")
            span.set_status(Status(StatusCode.ERROR, "cancelled by the caller"))
        span.end()

    def start_attempt(self, record: Any, method: str, url: str,
                      headers: Mapping[str, str] | None, retry: bool = False) -> tuple[Any, dict[str, str]]:
        parts = urlsplit(url)
        attributes: dict[str, Any] = {"http.request.method": method, "server.address": parts.hostname or ""}
        if parts.port:
            attributes["server.port"] = parts.port
        parent = None
        name = f"{method} upstream"
        if record is not None:
            parent = trace.set_span_in_context(record.span) if record.span is not None else None
            name = f"{record.operation} {record.model}"
            attributes.update({"gen_ai.operation.name": record.operation, "gen_ai.request.model": record.model,
                               "gen_ai.provider.name": PROVIDER_NAMES.get(record.provider, record.provider)})
        if retry:
            attributes["modelruntime.retry"] = True
        span = self.tracer.start_span(name, context=parent, kind=SpanKind.CLIENT, attributes=attributes)
        out = dict(headers or {})
        _PROPAGATOR.inject(out, context=trace.set_span_in_context(span))
        return span, out

    @staticmethod
    def end_attempt(span: Any, status: int | None, error: BaseException | None, sent: int, received: int) -> None:
        if status is not None:
            span.set_attribute("http.response.status_code", status)
            span.set_attribute("http.request.body.size", sent)
            span.set_attribute("http.response.body.size", received)
            if status >= 400:
                span.set_attribute("error.type", str(status))
                span.set_status(Status(StatusCode.ERROR))
        if error is not None:
            cancelled = isinstance(error, GeneratorExit | CancelledError)
            span.set_attribute("error.type", "cancelled" if cancelled else type(error).__name__)
            span.set_status(Status(StatusCode.ERROR))
        span.end()

    def shutdown(self) -> None:
        self.provider.shutdown()
