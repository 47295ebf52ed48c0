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

Hot path: the families are :mod:`.families`' own (an update is an addition, not a locked call
through prometheus_client's wrappers), and the children one call touches are bound once per label
combination, so recording a call's end is one dict lookup and a few additions.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from prometheus_client import CollectorRegistry

from .families import Families, Family

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
GRPC_LABELS = ("grpc_type", "grpc_service", "grpc_method")
OTHER, UNKNOWN = "_other", "_unknown"

# OpenTelemetry's well-known gen_ai.provider.name values for the providers that have one.
PROVIDER_NAMES = {
    "google": "gcp.gemini", "vertex_ai": "gcp.vertex_ai", "bedrock": "aws.bedrock",
    "mistralai": "mistral_ai", "azure_openai": "azure.ai.openai", "x": "x_ai",
}


class _Bounded:
    """The first ``limit`` distinct names keep their value; later ones (and long ones) are ``_other``."""

    __slots__ = ("limit", "seen")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen: dict[str, str] = {}

    def __call__(self, name: str) -> str:
        value = self.seen.get(name)
        if value is None:
            value = name if len(self.seen) < self.limit and len(name) <= 128 else OTHER
            if len(self.seen) < 4 * self.limit:
                self.seen[name] = value
        return value


class Labels:
    """Bounded label values."""

    def __init__(self, providers: set[str], max_models: int, max_callers: int = 0) -> None:
        self.providers = providers
        self.max_callers = max_callers
        self.model = _Bounded(max_models)
        self.caller = _Bounded(max_callers)

    def provider(self, name: str) -> str:
        if name in self.providers:
            return PROVIDER_NAMES.get(name, name)
        return UNKNOWN


class _Call:
    """The children one call's end touches, bound once per (GenAI labels, error type), each on its
    first use (a series appears only once something was observed in it)."""

    __slots__ = ("cancelled", "cost", "duration", "genai", "input", "metrics", "output", "tpot")

    def __init__(self, m: Metrics, genai: tuple[str, str, str, str], error_type: str) -> None:
        self.metrics, self.genai = m, genai
        self.duration = m.duration.labels(*genai, error_type)
        self.input: Any = None
        self.output: Any = None
        self.tpot: Any = None
        self.cost: Any = None
        self.cancelled: Any = None

    def tokens(self, kind: str) -> Any:
        child = self.metrics.tokens.labels(*self.genai, kind)
        setattr(self, kind, child)
        return child


class Metrics:
    """Every metric of one server, in its own registry (``/metrics`` serves exactly this one)."""

    def __init__(self, labels: Labels) -> None:
        self.labels = labels
        f = Families()
        self.registry = CollectorRegistry(auto_describe=True)
        self.duration = f.add(
            "histogram", "gen_ai_client_operation_duration", "GenAI operation duration (gen_ai.client.operation.duration).",
            [*GENAI, "error_type"], unit="seconds", buckets=DURATION_BUCKETS)
        self.tokens = f.add(
            "histogram", "gen_ai_client_token_usage", "Tokens used per operation, by gen_ai.token.type (input, output).",
            [*GENAI, "gen_ai_token_type"], buckets=TOKEN_BUCKETS)
        self.ttft = f.add(
            "histogram", "gen_ai_server_time_to_first_token",
            "Time to the first streamed chunk (gen_ai.server.time_to_first_token).",
            GENAI, unit="seconds", buckets=TTFT_BUCKETS)
        self.tpot = f.add(
            "histogram", "gen_ai_server_time_per_output_token",
            "Time per output token after the first (gen_ai.server.time_per_output_token).",
            GENAI, unit="seconds", buckets=TPOT_BUCKETS)
        counter = partial(f.add, "counter")
        self.cost = counter("modelruntime_cost_usd", "Cost in USD from the models' pricing.", [PROVIDER, REQUEST_MODEL])
        self.requests = counter(
            "modelruntime_requests", "Requests by front door (grpc, http), method or route, status and "
            "Dify error class.", ["front_door", "method", "code", "error_class"])
        self.attempts = counter("modelruntime_upstream_attempts", "Upstream HTTP attempts by provider and "
                                "HTTP status (or connect_error / timeout).", [PROVIDER, "status"])
        self.retries = counter("modelruntime_upstream_retries", "Upstream attempts that retried a connection "
                               "never established (egress.retries).", [PROVIDER])
        self.in_flight = f.add("gauge", "modelruntime_calls_in_flight", "Model calls in progress.", [OP])
        self.streams = f.add("gauge", "modelruntime_streams_open", "Streamed model calls in progress.", [OP])
        self.cancelled = counter("modelruntime_calls_cancelled", "Model calls the caller cancelled.", [OP, PROVIDER])
        self.bytes_in = counter("modelruntime_received_bytes", "Request bytes received from callers.", ["front_door"])
        self.bytes_out = counter("modelruntime_sent_bytes", "Response bytes sent to callers.", ["front_door"])
        self.upstream_out = counter("modelruntime_upstream_sent_bytes", "Request body bytes sent to providers.",
                                    [PROVIDER])
        self.upstream_in = counter("modelruntime_upstream_received_bytes", "Response body bytes received from "
                                   "providers (after decompression).", [PROVIDER])
        self.grpc_started = counter("grpc_server_started", "RPCs started on the server.", GRPC_LABELS)
        self.grpc_handled = counter("grpc_server_handled", "RPCs completed on the server, by code.",
                                    [*GRPC_LABELS, "grpc_code"])
        self.grpc_seconds = f.add("histogram", "grpc_server_handling", "RPC handling time on the server.",
                                  GRPC_LABELS, unit="seconds", buckets=GRPC_BUCKETS)
        self.callers: tuple[Family, Family, Family] | None = None
        if labels.max_callers:  # observability.caller_key_labels
            self.callers = (
                counter("modelruntime_caller_calls", "Model calls per caller key (its name) and outcome.",
                        ["caller_key", OP, "outcome"]),
                counter("modelruntime_caller_tokens", "Tokens per caller key.", ["caller_key", "gen_ai_token_type"]),
                counter("modelruntime_caller_cost_usd", "Cost in USD per caller key.", ["caller_key"]))
        self.registry.register(f)
        self.door_bytes = {door: (self.bytes_in.labels(door), self.bytes_out.labels(door)) for door in ("grpc", "http")}
        self._calls: dict[tuple[str, str, str, str, str], _Call] = {}
        self._ops: dict[str, tuple[Any, Any]] = {}
        self._attempts: dict[tuple[str, str], tuple[Any, Any, Any]] = {}

    # ---- recording (called by the observer and the front doors) ---------------------------

    def _op(self, op: str) -> tuple[Any, Any]:
        pair = self._ops.get(op)
        if pair is None:
            pair = self._ops[op] = (self.in_flight.labels(op), self.streams.labels(op))
        return pair

    def call_started(self, op: str, stream: bool) -> None:
        in_flight, streams = self._op(op)
        in_flight.value += 1
        if stream:
            streams.value += 1

    def first_token(self, record: Any) -> None:
        self.ttft.labels(*self._genai(record)).observe(record.time_to_first_token)

    def call_ended(self, record: Any) -> None:
        in_flight, streams = self._op(record.operation)
        in_flight.value -= 1
        if record.stream:
            streams.value -= 1
        key = (record.operation, record.provider, record.model, record.response_model, record.error_type)
        bound = self._calls.get(key)
        if bound is None:
            bound = _Call(self, self._genai(record), record.error_type)
            if len(self._calls) < 10_000:  # label values are bounded; the keys (raw names) may not be
                self._calls[key] = bound
        bound.duration.observe(record.duration)
        if record.input_tokens is not None:
            (bound.input or bound.tokens("input")).observe(record.input_tokens)
        output = record.output_tokens
        if output is not None:
            (bound.output or bound.tokens("output")).observe(output)
            ttft = record.time_to_first_token
            if ttft is not None and output > 1:
                if bound.tpot is None:
                    bound.tpot = self.tpot.labels(*bound.genai)
                bound.tpot.observe((record.duration - ttft) / (output - 1))
        if record.cost:
            if bound.cost is None:
                bound.cost = self.cost.labels(bound.genai[1], bound.genai[2])
            bound.cost.value += record.cost
        if record.status == "cancelled":
            if bound.cancelled is None:
                bound.cancelled = self.cancelled.labels(bound.genai[0], bound.genai[1])
            bound.cancelled.value += 1

    def _genai(self, record: Any) -> tuple[str, str, str, str]:
        labels = self.labels
        return (record.operation, labels.provider(record.provider), labels.model(record.model),
                labels.model(record.response_model) if record.response_model else "")

    def caller(self, name: str, record: Any) -> None:
        assert self.callers is not None
        calls, tokens, cost = self.callers
        key = self.labels.caller(name)
        calls.labels(key, record.operation, record.status).inc()
        if record.input_tokens:
            tokens.labels(key, "input").inc(record.input_tokens)
        if record.output_tokens:
            tokens.labels(key, "output").inc(record.output_tokens)
        if record.cost:
            cost.labels(key).inc(record.cost)

    def retry(self, provider: str) -> None:
        self.retries.labels(self.labels.provider(provider)).inc()

    def attempt(self, provider: str, status: str, sent: int, received: int) -> None:
        bound = self._attempts.get((provider, status))
        if bound is None:
            name = self.labels.provider(provider)
            bound = (self.attempts.labels(name, status), self.upstream_out.labels(name),
                     self.upstream_in.labels(name))
            if len(self._attempts) < 10_000:
                self._attempts[(provider, status)] = bound
        bound[0].value += 1
        if sent:
            bound[1].value += sent
        if received:
            bound[2].value += received
