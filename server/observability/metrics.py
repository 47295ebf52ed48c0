"""Prometheus metrics: the OpenTelemetry GenAI conventions, the runtime's own, gRPC server metrics.

Why prometheus_client and these names: operators scrape ``/metrics`` and expect the GenAI
conventions (``gen_ai.client.operation.duration`` ...). Names follow the conventions' own
Prometheus mapping: dots become underscores, the unit ``s`` becomes the suffix ``_seconds``, an
annotation unit such as ``{token}`` adds no suffix, counters end in ``_total``; attribute names
map the same way (``gen_ai.operation.name`` → ``gen_ai_operation_name``). Buckets are the
conventions' advice. The gRPC server metrics use the names of go-grpc-prometheus, which
existing dashboards already know.

Label cardinality stays bounded: the provider label only takes providers the registry knows
(else ``_unknown``), model labels take the first ``max_model_labels`` distinct names and then
``_other`` (customizable models are caller-named), error labels are class names.

Hot path: each label combination's children are cached in a plain dict, so recording a call
is a handful of dict lookups and ``observe``/``inc`` calls (a few µs).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
# The conventions give no advice for these two; these span 1 ms .. 80 s / 10 µs .. 2.5 s.
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                20.0, 40.0, 80.0)
TPOT_BUCKETS = (0.00001, 0.0001, 0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75,
                1.0, 2.5)
GRPC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

OP, PROVIDER, REQUEST_MODEL, RESPONSE_MODEL = (
    "gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "gen_ai_response_model")
GENAI = (OP, PROVIDER, REQUEST_MODEL, RESPONSE_MODEL)
OTHER, UNKNOWN = "_other", "_unknown"

# OpenTelemetry's well-known gen_ai.provider.name values for the providers that have one.
PROVIDER_NAMES = {
    "google": "gcp.gemini", "vertex_ai": "gcp.vertex_ai", "bedrock": "aws.bedrock",
    "mistralai": "mistral_ai", "azure_openai": "azure.ai.openai", "x": "x_ai",
}


class Labels:
    """Bounded label values."""

    def __init__(self, providers: set[str], max_models: int, max_callers: int = 0) -> None:
        self.providers = providers
        self.max_models = max_models
        self._models: dict[str, str] = {}
        self.max_callers = max_callers
        self._callers: dict[str, str] = {}

    def caller(self, name: str) -> str:
        value = self._callers.get(name)
        if value is None:
            value = name if len(self._callers) < self.max_callers and len(name) <= 128 else OTHER
            if len(self._callers) < 4 * self.max_callers:
                self._callers[name] = value
        return value

    def provider(self, name: str) -> str:
        if name in self.providers:
            return PROVIDER_NAMES.get(name, name)
        return UNKNOWN

    def model(self, name: str) -> str:
        value = self._models.get(name)
        if value is None:
            value = name if len(self._models) < self.max_models and len(name) <= 128 else OTHER
            if len(self._models) < 4 * self.max_models:
                self._models[name] = value
        return value


class Metrics:
    """Every metric of one server, in its own registry (``/metrics`` serves exactly this one)."""

    def __init__(self, labels: Labels) -> None:
        self.labels = labels
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.duration = Histogram(
            "gen_ai_client_operation_duration", "GenAI operation duration (gen_ai.client.operation.duration).",
            [*GENAI, "error_type"], unit="seconds", buckets=DURATION_BUCKETS, registry=r)
        self.tokens = Histogram(
            "gen_ai_client_token_usage", "Tokens used per operation, by gen_ai.token.type (input, output).",
            [*GENAI, "gen_ai_token_type"], buckets=TOKEN_BUCKETS, registry=r)
        self.ttft = Histogram(
            "gen_ai_server_time_to_first_token", "Time to the first streamed chunk (gen_ai.server.time_to_first_token).",
            list(GENAI), unit="seconds", buckets=TTFT_BUCKETS, registry=r)
        self.tpot = Histogram(
            "gen_ai_server_time_per_output_token",
            "Time per output token after the first (gen_ai.server.time_per_output_token).",
            list(GENAI), unit="seconds", buckets=TPOT_BUCKETS, registry=r)
        self.cost = Counter("modelruntime_cost_usd", "Cost in USD from the models' pricing.",
                            [PROVIDER, REQUEST_MODEL], registry=r)
        self.requests = Counter(
            "modelruntime_requests", "Requests by front door (grpc, http), method or route, status and "
            "Dify error class.", ["front_door", "method", "code", "error_class"], registry=r)
        self.attempts = Counter("modelruntime_upstream_attempts", "Upstream HTTP attempts by provider and "
                                "HTTP status (or connect_error / timeout).", [PROVIDER, "status"], registry=r)
        self.retries = Counter("modelruntime_upstream_retries", "Upstream attempts that retried a connection "
                               "never established (egress.retries).", [PROVIDER], registry=r)
        self.in_flight = Gauge("modelruntime_calls_in_flight", "Model calls in progress.", [OP], registry=r)
        self.streams = Gauge("modelruntime_streams_open", "Streamed model calls in progress.", [OP], registry=r)
        self.cancelled = Counter("modelruntime_calls_cancelled", "Model calls the caller cancelled.",
                                 [OP, PROVIDER], registry=r)
        self.bytes_in = Counter("modelruntime_received_bytes", "Request bytes received from callers.",
                                ["front_door"], registry=r)
        self.bytes_out = Counter("modelruntime_sent_bytes", "Response bytes sent to callers.",
                                 ["front_door"], registry=r)
        self.upstream_out = Counter("modelruntime_upstream_sent_bytes", "Request body bytes sent to providers.",
                                    [PROVIDER], registry=r)
        self.upstream_in = Counter("modelruntime_upstream_received_bytes", "Response body bytes received from "
                                   "providers (after decompression).", [PROVIDER], registry=r)
        self.grpc_started = Counter("grpc_server_started", "RPCs started on the server.",
                                    ["grpc_type", "grpc_service", "grpc_method"], registry=r)
        self.grpc_handled = Counter("grpc_server_handled", "RPCs completed on the server, by code.",
                                    ["grpc_type", "grpc_service", "grpc_method", "grpc_code"], registry=r)
        self.grpc_seconds = Histogram("grpc_server_handling", "RPC handling time on the server.",
                                      ["grpc_type", "grpc_service", "grpc_method"], unit="seconds",
                                      buckets=GRPC_BUCKETS, registry=r)
        self.callers: tuple[Any, Any, Any] | None = None
        if labels.max_callers:  # observability.caller_key_labels
            self.callers = (
                Counter("modelruntime_caller_calls", "Model calls per caller key (its name) and outcome.",
                        ["caller_key", OP, "outcome"], registry=r),
                Counter("modelruntime_caller_tokens", "Tokens per caller key.", ["caller_key", "gen_ai_token_type"],
                        registry=r),
                Counter("modelruntime_caller_cost_usd", "Cost in USD per caller key.", ["caller_key"], registry=r))
        self._cache: dict[tuple, Any] = {}
        for door in ("grpc", "http"):
            self.bytes_in.labels(door)
            self.bytes_out.labels(door)

    def child(self, metric: Any, *values: str) -> Any:
        key = (id(metric), *values)
        child = self._cache.get(key)
        if child is None:
            child = self._cache[key] = metric.labels(*values)
        return child

    # ---- recording (called by the observer and the front doors) ---------------------------

    def call_started(self, op: str, stream: bool) -> None:
        self.child(self.in_flight, op).inc()
        if stream:
            self.child(self.streams, op).inc()

    def first_token(self, record: Any) -> None:
        self.child(self.ttft, *self._genai(record)).observe(record.time_to_first_token)

    def call_ended(self, record: Any) -> None:
        op = record.operation
        self.child(self.in_flight, op).dec()
        if record.stream:
            self.child(self.streams, op).dec()
        genai = self._genai(record)
        self.child(self.duration, *genai, record.error_type).observe(record.duration)
        if record.input_tokens is not None:
            self.child(self.tokens, *genai, "input").observe(record.input_tokens)
        if record.output_tokens is not None:
            self.child(self.tokens, *genai, "output").observe(record.output_tokens)
            ttft = record.time_to_first_token
            if ttft is not None and record.output_tokens > 1:
                self.child(self.tpot, *genai).observe((record.duration - ttft) / (record.output_tokens - 1))
        if record.cost:
            self.child(self.cost, genai[1], genai[2]).inc(record.cost)
        if record.status == "cancelled":
            self.child(self.cancelled, op, genai[1]).inc()

    def _genai(self, record: Any) -> tuple[str, str, str, str]:
        labels = self.labels
        return (record.operation, labels.provider(record.provider), labels.model(record.model),
                labels.model(record.response_model) if record.response_model else "")

    def caller(self, name: str, record: Any) -> None:
        assert self.callers is not None
        calls, tokens, cost = self.callers
        key = self.labels.caller(name)
        self.child(calls, key, record.operation, record.status).inc()
        if record.input_tokens:
            self.child(tokens, key, "input").inc(record.input_tokens)
        if record.output_tokens:
            self.child(tokens, key, "output").inc(record.output_tokens)
        if record.cost:
            self.child(cost, key).inc(record.cost)

    def retry(self, provider: str) -> None:
        self.child(self.retries, self.labels.provider(provider)).inc()

    def attempt(self, provider: str, status: str, sent: int, received: int) -> None:
        name = self.labels.provider(provider)
        self.child(self.attempts, name, status).inc()
        if sent:
            self.child(self.upstream_out, name).inc(sent)
        if received:
            self.child(self.upstream_in, name).inc(received)
