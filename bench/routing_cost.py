"""Routing's own CPU per call, without the network: ``ModelRuntime.generate`` naming a route vs a
target, with the model call itself stubbed, rounds interleaved, in this process.

Why next to the h2load points: on a shared, busy machine the server's req/s and CPU per call move
by more than routing costs; this isolates what the routing layer adds (µs per call), to be read
against the server's CPU per unary call.
"""

from __future__ import annotations

import asyncio
import time

CALLS = 20_000
ROUNDS = 8


async def _measure() -> dict:
    from engine.adapter import LLMRequest
    from engine.routing import parse_routes
    from engine.runtime import ModelRuntime, Target
    from providers import builtin_registry

    runtime = ModelRuntime(builtin_registry([]), None)
    credentials = {"openai_api_key": "sk-bench"}
    runtime.router.replace(parse_routes({"bench": {"deployments": [
        {"provider": "openai", "model": "gpt-4o-mini", "credentials": credentials}]}}))
    result = object()

    async def model_call(target, request, deadline, overrides=None):  # the upstream call, stubbed
        return result

    runtime._generate = model_call  # type: ignore[method-assign]
    request = LLMRequest(messages=[], parameters={})
    samples: dict[str, list[float]] = {"target": [], "route": []}
    for r in range(ROUNDS):
        for name in ("target", "route") if r % 2 == 0 else ("route", "target"):
            started = time.process_time()
            for _ in range(CALLS):
                target = (Target("", "", {}, "bench") if name == "route"
                          else Target("openai", "gpt-4o-mini", credentials))
                await runtime.generate(target, request)
            samples[name].append((time.process_time() - started) / CALLS * 1e6)
    best = {k: min(v) for k, v in samples.items()}
    return {"us_per_call_target": round(best["target"], 2), "us_per_call_route": round(best["route"], 2),
            "routing_us_per_call": round(best["route"] - best["target"], 2),
            "samples_us": {k: [round(x, 2) for x in v] for k, v in samples.items()}}


def measure() -> dict:
    return asyncio.run(_measure())
