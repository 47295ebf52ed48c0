"""What one layer costs on the happy path, measured inside one run: metrics on vs off (two fresh
servers side by side) and a route vs the same model named directly (one server)."""

from __future__ import annotations

import asyncio
import statistics
from typing import TYPE_CHECKING

from modelruntime.v1 import llm_service_pb2_grpc

from . import clients as cl
from . import hotpath
from . import upstream as up
from .load import GRPC_HEADERS, grpc_frame
from .sut import Server

if TYPE_CHECKING:
    from .scenarios import Bench


async def scenario_metrics(b: Bench) -> dict:
    """Unary Generate, metrics on (the default) vs off: two fresh servers side by side, alternating rounds."""
    c = max(b.settings.unary_levels)
    control = b.settings.metrics_control
    # Two fresh servers (same history) on the same pinned core(s), both up for the whole scenario,
    # so the sides differ only in observability.metrics. Each round measures both, in alternating
    # order (on→off, off→on), so drift and other tenants' load fall on both sides alike; medians
    # over rounds. --metrics-control runs the same with metrics off on both sides (an A/A run):
    # the gap it shows is the method's noise floor.
    servers = {on: Server(b.server.upstream_base, python=b.server.python, cpus=b.server.cpus,
                          workers=b.server.workers, log_level=b.server.log_level, metrics=on and not control)
               for on in (True, False)}
    rounds: list[dict] = []
    try:
        frames = {}
        for on, server in servers.items():
            await asyncio.to_thread(server.start)
            verify = await cl.check_generate(server.target, b.nginx.base)
            frames[on] = (grpc_frame(cl.generate_request(b.nginx.base)), verify["response_frame_bytes"])
        for i in range(b.settings.metrics_rounds):
            for on in ((True, False) if i % 2 == 0 else (False, True)):
                frame, expected = frames[on]
                side = ("A" if on else "B") if control else ("on" if on else "off")
                point = await b.measure(f"unary grpc c={c} metrics {side} #{i + 1}",
                                        f"http://{servers[on].target}{cl.GENERATE}", frame, GRPC_HEADERS, c,
                                        sut=True, expected_bytes=expected, server=servers[on])
                rounds.append({"round": i + 1, "metrics": on, **point.to_dict()})
    finally:
        for server in servers.values():
            await asyncio.to_thread(server.cleanup)
    cost = metrics_cost(rounds)
    hot = await asyncio.to_thread(hotpath.measure)
    # The CPU the server spends per call with metrics off (median of the rounds; a busy machine
    # inflates it, which makes this share look smaller: see the rounds' interference).
    base = cost["cpu_ms_off"]
    hot["share_pct"] = round(hot["metrics_us"] / (base * 1000) * 100, 2) if base else None
    print(f"  metrics hot path in-process: {hot['metrics_us']} µs CPU per call "
          f"({hot['on_us']} on, {hot['off_us']} off) = {hot['share_pct']} % of the server's CPU per call", flush=True)
    return {"status": "ok", "concurrency": c, "control": control, "rounds": rounds, **cost, "hotpath": hot}


def metrics_cost(rounds: list[dict]) -> dict:
    """Medians over rounds of throughput and server CPU per call, on vs off, and how far apart."""
    def median(key: str, on: bool) -> float | None:
        values = [r[key] for r in rounds if r["metrics"] is on and r.get(key)]
        return round(statistics.median(values), 4) if values else None

    rps_on, rps_off = median("rps", True), median("rps", False)
    cpu_on, cpu_off = median("cpu_ms_per_req", True), median("cpu_ms_per_req", False)
    # Per round (each pair measured back to back): the spread shows how noisy the machine was.
    pairs = [(a["rps"], b["rps"]) for a, b in zip(
        [r for r in rounds if r["metrics"]], [r for r in rounds if not r["metrics"]], strict=False) if b["rps"]]
    per_round = [round((off - on) / off * 100, 2) for on, off in pairs]
    out = {
        "rps_on": rps_on, "rps_off": rps_off, "cpu_ms_on": cpu_on, "cpu_ms_off": cpu_off,
        "cost_pct": round((rps_off - rps_on) / rps_off * 100, 2) if rps_on and rps_off else None,
        "cpu_cost_pct": round((cpu_on - cpu_off) / cpu_off * 100, 2) if cpu_on and cpu_off else None,
        "cost_pct_per_round": per_round,
    }
    print(f"  median of {len(pairs)} rounds: metrics on {out['rps_on']} req/s, off {out['rps_off']} req/s "
          f"({out['cost_pct']} % fewer); CPU/call on {out['cpu_ms_on']} ms, off {out['cpu_ms_off']} ms "
          f"({out['cpu_cost_pct']} % more); per round {per_round} (target ≤ 5 %)", flush=True)
    return out


async def scenario_routing(b: Bench) -> dict:
    """Unary Generate naming the route "bench" (one deployment) vs the same model as a target, in one
    server, rounds alternating; what routing costs on the happy path, as req/s and CPU per call."""
    from modelruntime.v1 import llm_service_pb2

    c = max(b.settings.unary_levels)
    verify = await cl.check_generate(b.server.target, b.nginx.base)
    direct_frame = grpc_frame(cl.generate_request(b.nginx.base))
    routed_request = llm_service_pb2.GenerateRequest(route="bench", messages=cl.generate_request("").messages)
    async with cl.channel(b.server.target) as ch:
        call = llm_service_pb2_grpc.LLMServiceStub(ch).Generate(routed_request, timeout=10)
        reply = await call
        trailers = dict(await call.trailing_metadata())
    if reply.message.content != up.CHAT_CONTENT or trailers.get("x-modelruntime-attempts") != "1":
        return {"status": "failed", "error": f"routed Generate: {reply.message.content!r}, {trailers}"}
    rounds = []
    for routed in (False, True, False, True, False, True):
        frame = grpc_frame(routed_request) if routed else direct_frame
        point = await b.measure(f"unary grpc c={c} {'route' if routed else 'target'}", b.grpc_url(cl.GENERATE),
                                frame, GRPC_HEADERS, c, sut=True, expected_bytes=verify["response_frame_bytes"])
        rounds.append({"routed": routed, **point.to_dict()})

    def mean(key: str, routed: bool) -> float:
        values = [r[key] for r in rounds if r["routed"] == routed and r.get(key)]
        return statistics.mean(values) if values else 0.0

    from .routing_cost import measure as engine_cost

    engine = await asyncio.to_thread(engine_cost)
    rps_target, rps_route = mean("rps", False), mean("rps", True)
    cpu_target, cpu_route = mean("cpu_ms_per_req", False), mean("cpu_ms_per_req", True)
    rps_cost = round((rps_target - rps_route) / rps_target * 100, 2) if rps_target else None
    cpu_cost = round((cpu_route - cpu_target) / cpu_target * 100, 2) if cpu_target else None
    print(f"  target {rps_target:.1f} req/s {cpu_target:.4f} ms CPU/call; route {rps_route:.1f} req/s "
          f"{cpu_route:.4f} ms CPU/call: {rps_cost} % fewer req/s, {cpu_cost} % more CPU per call (target < 5 %)",
          flush=True)
    added = engine["routing_us_per_call"]
    share = round(added / (cpu_target * 1000) * 100, 2) if cpu_target else None
    print(f"  routing layer alone (model call stubbed): {added} µs CPU per call = {share} % of the server's "
          f"{cpu_target:.4f} ms per unary call", flush=True)
    return {"status": "ok", "concurrency": c, "rounds": rounds, "engine": engine, "engine_share_pct": share,
            "rps_target": round(rps_target, 1),
            "rps_route": round(rps_route, 1), "cpu_ms_target": round(cpu_target, 4),
            "cpu_ms_route": round(cpu_route, 4), "rps_cost_pct": rps_cost, "cpu_cost_pct": cpu_cost}
