"""The metrics' own CPU per unary call, measured in-process: a figure a busy machine cannot blur.

Why beside the end-to-end rounds: on a shared 2-core machine the on/off throughput rounds swing
by tens of percent, far more than the 5 % they should settle. This replays, in one thread and
with CPU time (``time.process_time``), exactly the observer work one unary ``Generate`` causes —
the call record, the upstream attempt with its bytes, the call's end with usage and cost, and the
gRPC method's start and end with the request and response sizes — once with metrics on and once off (call log and tracing off on
both sides, as the log line is written either way), and reports the difference per call.
Divided by the server's CPU per call from the rounds, it estimates the metrics' share.
"""

from __future__ import annotations

import time

from engine.entities import ModelType
from engine.observe import CallRecord
from server.config import ObservabilityConfig
from server.observability import AttemptHook, Observability, RuntimeObserver
from server.observability.grpc import BoundMethod


class _Usage:
    prompt_tokens = 11
    completion_tokens = 7
    total_price = 0.000123


def _messages() -> tuple:
    from modelruntime.v1 import common_pb2
    from modelruntime.v1 import llm_service_pb2 as pb

    request = pb.GenerateRequest(target=common_pb2.ModelTarget(provider="openai", model="gpt-4o-mini"),
                                 messages=[pb.Message(role=pb.ROLE_USER, content=[pb.ContentPart(text="hello")])])
    return request, pb.GenerateResponse(model="gpt-4o-mini-2024-07-18")


REQUEST, RESPONSE = _messages()
REQUEST_BYTES, RESPONSE_BYTES = len(REQUEST.SerializeToString()), len(RESPONSE.SerializeToString())


def _one_call(observer: RuntimeObserver, hook: AttemptHook, method: BoundMethod | None, door: tuple) -> None:
    if method is not None:  # the front door counts the raw message lengths grpc hands over
        method.started.value += 1
        door[0].value += REQUEST_BYTES
    record = CallRecord("openai", "gpt-4o-mini", ModelType.LLM)
    observer.call_started(record)
    attempt = hook.attempt("POST", "http://127.0.0.1:8080/v1/chat/completions", None, False)
    attempt.end(200, None, 180, 420)
    record.set_usage(_Usage(), "gpt-4o-mini-2024-07-18")
    record.succeeded()
    record.duration = time.perf_counter() - record.started
    observer.call_ended(record)
    if method is not None:
        method.ended("OK", "", 0.001)
        door[1].value += RESPONSE_BYTES


def per_call_us(metrics: bool, calls: int = 50_000, repeats: int = 5) -> float:
    """Best of ``repeats`` runs: CPU µs per call of the observer work, metrics on or off."""
    obs = Observability(ObservabilityConfig(metrics=metrics, call_log=False), {"openai"})
    observer = RuntimeObserver(obs)
    hook = AttemptHook(obs)
    method = door = None
    if obs.metrics is not None:
        method = BoundMethod(obs.metrics, "/modelruntime.v1.LLMService/Generate",
                             ("unary", "modelruntime.v1.LLMService", "Generate"))
        door = obs.metrics.door_bytes["grpc"]
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(calls):
            _one_call(observer, hook, method, door or ())
        best = min(best, time.process_time() - start)
    return best / calls * 1e6


def measure() -> dict:
    on, off = per_call_us(True), per_call_us(False)
    return {"on_us": round(on, 2), "off_us": round(off, 2), "metrics_us": round(on - off, 2)}
