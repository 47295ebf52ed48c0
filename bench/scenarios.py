"""The scenarios. Each one checks a real gRPC call first, then measures the server and the same
request sent straight to the upstream, in the same run, with the same tool and settings.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from modelruntime.v1 import llm_service_pb2_grpc

from . import clients as cl
from . import floors
from . import upstream as up
from .auth_scenario import scenario_auth
from .doors import scenario_doors
from .layer_costs import scenario_metrics, scenario_routing
from .load import GRPC_HEADERS, H2Load, LoadPoint, grpc_frame, percentiles
from .sut import RssSampler, Server, cpu_snapshot, foreign_cpu, http_endpoint_present

NOISY_PCT = 10.0  # foreign CPU (% of one core) above which a point is flagged as disturbed


@dataclass
class Settings:
    duration: float = 10.0
    warmup: float = 2.0
    unary_levels: tuple[int, ...] = (1, 16, 64)
    stream_levels: tuple[int, ...] = (16, 64)
    embed_levels: tuple[int, ...] = (16,)
    http_levels: tuple[int, ...] = (16,)
    stream_pieces: int = 20
    embed_batch: int = 8
    open_streams: int = 1000
    soak_calls: int = 500_000
    soak_max_s: float | None = 600.0  # None: run exactly soak_calls
    soak_concurrency: int = 64
    cancel_samples: int = 30
    ttft_samples: int = 300
    pin: bool = True
    workers: int = 1
    profile: bool = False
    doors_concurrency: int = 16
    doors_rounds: int = 3
    metrics_rounds: int = 6
    metrics_control: bool = False  # the metrics scenario with metrics off on both sides (A/A)
    results_dir: Path = Path("bench/results")


@dataclass
class Bench:
    settings: Settings
    nginx: up.Nginx
    server: Server
    h2: H2Load
    sut_cpus: set[int] | None
    load_cpus: set[int] | None
    notes: list[str] = field(default_factory=list)
    profile: dict | None = None

    async def restart_server(self) -> None:
        await asyncio.to_thread(self.server.stop)
        await asyncio.to_thread(self.server.start)

    def grpc_url(self, method: str) -> str:
        return f"http://{self.server.target}{method}"

    async def measure(self, label: str, url: str, body: bytes, headers: list[str], concurrency: int, *,
                      sut: bool, expected_bytes: int | None, requests: int | None = None,
                      h1: bool | None = None, profile: bool = False, server: Server | None = None) -> LoadPoint:
        """One h2load point with the CPU time the server (``server``, default the bench's) and nginx
        spent in the measured window."""
        server = server or self.server
        path = self.h2.body_file(f"{label.replace(' ', '_').replace('=', '')}.bin", body)
        duration = None if requests else self.settings.duration
        warm = 0.0 if requests else self.h2.warmup_s
        marks: dict[str, dict] = {}

        def snap() -> None:  # called by H2Load.run after its warm-up run, before the measured one
            marks["start"] = cpu_snapshot(server, self.nginx)

        profiler = _start_profiler(server.proc.pid, self.settings, warm) if profile else None
        point = await asyncio.to_thread(
            self.h2.run, label, url, path, headers, concurrency, h1=(not sut) if h1 is None else h1,
            duration_s=duration,
            requests=requests, expected_bytes=expected_bytes, on_start=snap)
        after = cpu_snapshot(server, self.nginx)
        if profiler is not None:
            self.profile = await asyncio.to_thread(_finish_profiler, *profiler)
        start = marks["start"]
        point.sut_cpu_s = round(after["server"] - start["server"], 3) if sut else None
        point.upstream_cpu_s = round(after["nginx"] - start["nginx"], 3)
        point.interference = foreign_cpu(start, after, self.sut_cpus)
        measured = point.rps * (duration or point.seconds) if point.rps else point.done
        spent = point.sut_cpu_s if sut else point.upstream_cpu_s
        if measured and spent is not None:
            point.cpu_ms_per_req = round(spent * 1000 / measured, 4)
        print(f"  {label:<28} {point.rps:>10.1f} req/s  p50 {point.latency_ms.get('p50', 0):8.3f} ms  "
              f"p99 {point.latency_ms.get('p99', 0):8.3f} ms  2xx {point.status_2xx}"
              + (f"  [{point.error}]" if point.error else "")
              + ("" if point.body_ok in (None, True) else "  [DATA too small: gRPC errors?]")
              + (f"  [other processes used {point.interference['foreign_pct']:.0f}% of a core]"
                 if point.interference.get("foreign_pct", 0) >= NOISY_PCT else ""), flush=True)
        return point


# ----------------------------------------------------------------------------- unary, embeddings, http


async def scenario_unary(b: Bench) -> dict:
    """Unary Generate at each concurrency level vs POST /v1/chat/completions on nginx."""
    verify = await cl.check_generate(b.server.target, b.nginx.base)
    frame = grpc_frame(cl.generate_request(b.nginx.base))
    direct_len = len(b.nginx.bodies["v1/chat/completions"])
    points = []
    for c in b.settings.unary_levels:
        server = await b.measure(f"unary grpc c={c}", b.grpc_url(cl.GENERATE), frame, GRPC_HEADERS, c,
                                 sut=True, expected_bytes=verify["response_frame_bytes"])
        direct = await b.measure(f"unary direct c={c}", f"{b.nginx.base}/v1/chat/completions",
                                 cl.direct_chat_body(), cl.DIRECT_HEADERS, c, sut=False, expected_bytes=direct_len)
        points.append({"concurrency": c, "server": server.to_dict(), "direct": direct.to_dict()})
    relay_floors = await _relay_floors(b, frame, verify["response_frame_bytes"]) if 1 in b.settings.unary_levels else {}
    verify["after_load"] = (await cl.check_generate(b.server.target, b.nginx.base))["grpc_status"]
    if b.settings.profile:  # an extra, separate point: py-spy slows the server it samples
        c = max(b.settings.unary_levels)
        profiled = await b.measure(f"unary grpc c={c} (py-spy)", b.grpc_url(cl.GENERATE), frame, GRPC_HEADERS,
                                   c, sut=True, expected_bytes=verify["response_frame_bytes"], profile=True)
        if b.profile is not None:
            b.profile.update(label=profiled.label, rps_while_profiled=profiled.rps)
    return {"status": "ok", "verify": verify, "points": points, "relay_floors_c1": relay_floors}


async def _relay_floors(b: Bench, frame: bytes, reply_bytes: int) -> dict:
    """At one caller, bare grpc servers that make the same upstream call (:mod:`bench.floors` Relay).

    What a server that does nothing but receive the call, POST once to the same nginx with aiohttp
    and answer takes at one caller on this machine: the part of the added latency no runtime work
    explains (grpc.aio on uvloop, and the sync server bridged to a uvloop thread as the runtime is).
    """
    from .doors import Floor

    out = {}
    for kind in ("aio", "sync"):
        floor = Floor(kind, b.sut_cpus, reply_bytes, 1, 5, f"{b.nginx.base}/v1/chat/completions")
        try:
            point = await b.measure(f"unary {kind} relay floor c=1", floor.url(floors.RELAY), frame, GRPC_HEADERS, 1,
                                    sut=True, expected_bytes=reply_bytes, server=floor)  # type: ignore[arg-type]
        finally:
            floor.stop()
        out[kind] = {"p50_ms": point.latency_ms.get("p50"), "cpu_ms_per_req": point.cpu_ms_per_req,
                     "rps": point.rps, "error": point.error}
    return out


async def scenario_embeddings(b: Bench) -> dict:
    """Embed (a batch of texts) vs POST /v1/embeddings on nginx."""
    batch = b.settings.embed_batch
    verify = await cl.check_embed(b.server.target, b.nginx.base, batch)
    frame = grpc_frame(cl.embed_request(b.nginx.base, batch))
    points = []
    for c in b.settings.embed_levels:
        server = await b.measure(f"embed grpc c={c}", b.grpc_url(cl.EMBED), frame, GRPC_HEADERS, c,
                                 sut=True, expected_bytes=verify["response_frame_bytes"])
        direct = await b.measure(f"embed direct c={c}", f"{b.nginx.base}/v1/embeddings",
                                 cl.direct_embed_body(batch), cl.DIRECT_HEADERS, c, sut=False,
                                 expected_bytes=len(b.nginx.bodies["v1/embeddings"]))
        points.append({"concurrency": c, "server": server.to_dict(), "direct": direct.to_dict()})
    return {"status": "ok", "verify": verify, "batch": batch, "dims": up.EMBED_DIMS, "points": points}


def _http_post(url: str, body: bytes) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method="POST", headers={
        "content-type": "application/json", "authorization": f"Bearer {cl.API_KEY}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError as exc:
        return 0, str(exc).encode()


async def scenario_http(b: Bench) -> dict:
    """The OpenAI-compatible HTTP endpoint (server/http), when it exists, vs nginx."""
    if not http_endpoint_present():
        return {"status": "skipped", "reason": "endpoint not present (server/http/app.py does not exist)"}
    url = f"http://127.0.0.1:{b.server.http_port}/v1/chat/completions"
    tried = []
    for model in (up.MODEL, f"openai/{up.MODEL}"):
        body = json.dumps({"model": model, "messages": [{"role": "user", "content": cl.PROMPT}]}).encode()
        status, raw = await asyncio.to_thread(_http_post, url, body)
        try:
            content = json.loads(raw)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            content = None
        tried.append(f"model={model}: HTTP {status} {raw[:160]!r}")
        if status == 200 and content == up.CHAT_CONTENT:
            break
    else:
        return {"status": "failed", "reason": "verification call failed: " + "; ".join(tried)}
    points = []
    for c in b.settings.http_levels:
        server = await b.measure(f"http chat c={c}", url, body, cl.DIRECT_HEADERS, c, sut=True, h1=True,
                                 expected_bytes=int(len(raw) * 0.9))
        direct = await b.measure(f"http direct c={c}", f"{b.nginx.base}/v1/chat/completions",
                                 cl.direct_chat_body(), cl.DIRECT_HEADERS, c, sut=False,
                                 expected_bytes=len(b.nginx.bodies["v1/chat/completions"]))
        points.append({"concurrency": c, "server": server.to_dict(), "direct": direct.to_dict()})
    return {"status": "ok", "verify": {"http_status": 200, "model": model}, "points": points}


# ----------------------------------------------------------------------------- streaming


async def scenario_stream(b: Bench) -> dict:
    """StreamGenerate: streams/s (h2load), time to first chunk and chunk gaps (grpc.aio)."""
    pieces = b.settings.stream_pieces
    base = f"{b.nginx.base}/stream"
    verify = await cl.check_stream(b.server.target, base, pieces)
    frame = grpc_frame(cl.stream_request(base))
    points = []
    for c in b.settings.stream_levels:
        server = await b.measure(f"stream grpc c={c}", b.grpc_url(cl.STREAM_GENERATE), frame, GRPC_HEADERS, c,
                                 sut=True, expected_bytes=verify["response_frame_bytes"])
        direct = await b.measure(f"stream direct c={c}", f"{base}/v1/chat/completions",
                                 cl.direct_chat_body(stream=True), cl.DIRECT_HEADERS, c, sut=False,
                                 expected_bytes=len(b.nginx.bodies["stream/v1/chat/completions"]))
        points.append({"concurrency": c, "server": server.to_dict(), "direct": direct.to_dict(),
                       "chunks_per_s": round(server.rps * verify["chunks"], 1),
                       "direct_events_per_s": round(direct.rps * (pieces + 4), 1)})
    # Time to first chunk and gaps between chunks: sequential streams from a grpc.aio client.
    timings = await cl.grpc_stream_timings(b.server.target, base, b.settings.ttft_samples, 20)
    direct = await cl.direct_stream_timings("127.0.0.1", b.nginx.port, "/stream/v1/chat/completions",
                                            b.settings.ttft_samples, 20)
    gaps = [g for t in timings for g in t.gaps_ms]
    tt, dt = percentiles([t.ttft_ms for t in timings]), percentiles([t.ttft_ms for t in direct])
    print(f"  time to first chunk (c=1, {tt.get('n', 0)} streams): p50 {tt.get('p50', 0):.3f} ms "
          f"(direct p50 {dt.get('p50', 0):.3f} ms)", flush=True)
    return {
        "status": "ok", "verify": verify, "pieces": pieces, "points": points,
        "ttft_ms": tt,
        "stream_total_ms": percentiles([t.total_ms for t in timings]),
        "inter_chunk_gap_ms": percentiles(gaps),
        "per_stream_chunks_per_s": round(statistics.median(
            t.chunks / (t.total_ms / 1e3) for t in timings), 1) if timings else None,
        "direct_ttft_ms": dt,
        "direct_stream_total_ms": percentiles([t.total_ms for t in direct]),
    }


async def scenario_open_streams(b: Bench) -> dict:
    """Server RSS while 1,000 streams are held open on a slow upstream (fresh server)."""
    n = b.settings.open_streams
    await b.restart_server()
    base = f"{b.nginx.base}/slow"
    # Warm up on the fresh server so lazily loaded code is in the idle figure, not the delta.
    await cl.check_generate(b.server.target, b.nginx.base)
    await cl.check_stream(b.server.target, f"{b.nginx.base}/stream", b.settings.stream_pieces)
    await asyncio.sleep(1)
    idle = b.server.rss()
    nchannels = max(1, min(16, n // 100))
    channels = [cl.channel(b.server.target, own_connection=True) for _ in range(nchannels)]
    request = cl.stream_request(base)
    calls = []
    opened = 0
    errors: dict[str, int] = {}

    async def open_one(i: int) -> None:
        nonlocal opened
        call = llm_service_pb2_grpc.LLMServiceStub(channels[i % nchannels]).StreamGenerate(request, timeout=600)
        calls.append(call)
        try:
            first = await call.read()
            if hasattr(first, "delta"):  # a chunk, not grpc.aio.EOF
                opened += 1
        except Exception as exc:  # noqa: BLE001 - counted and reported
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1

    print(f"  opening {n:,} streams over {nchannels} connections (idle RSS {_mb(idle)} MB)", flush=True)
    t0 = time.perf_counter()
    with RssSampler(b.server.rss, 0.25) as sampler:
        tasks = [asyncio.create_task(open_one(i)) for i in range(n)]
        await asyncio.wait(tasks, timeout=120)
        open_s = time.perf_counter() - t0
        await asyncio.sleep(3)  # hold them open
        holding, holding_pss = b.server.rss(), b.server.pss()
        alive_open = sum(1 for c in calls if not c.done())
        for c in calls:
            c.cancel()
        for t in tasks:
            t.cancel()
        await asyncio.sleep(3)
    after = b.server.rss()
    print(f"  {opened:,} open in {open_s:.1f} s; RSS holding {_mb(holding)} MB, peak {_mb(sampler.peak)} MB, "
          f"after release {_mb(after)} MB", flush=True)
    for ch in channels:
        await ch.close()

    # Direct: the same number of slow SSE responses held open on nginx by a raw client.
    ng_idle = b.nginx.rss()
    conns: list[cl.RawHTTP] = []
    direct_opened = 0

    async def open_direct() -> None:
        nonlocal direct_opened
        try:
            conn = await cl.RawHTTP("127.0.0.1", b.nginx.port).connect()
            conns.append(conn)
            await conn.send("/slow/v1/chat/completions", cl.direct_chat_body(stream=True))
            await conn.first_data()
            direct_opened += 1
        except (OSError, ConnectionError, asyncio.IncompleteReadError):
            pass

    await asyncio.wait([asyncio.create_task(open_direct()) for _ in range(n)], timeout=60)
    await asyncio.sleep(1)
    ng_holding = b.nginx.rss()
    for conn in conns:
        conn.close()
    await asyncio.sleep(0.5)
    print(f"  direct: nginx held {direct_opened:,} streams at {_mb(ng_holding)} MB (idle {_mb(ng_idle)} MB)",
          flush=True)
    return {
        "status": "ok" if opened == n else "partial",
        "requested": n, "opened": opened, "still_open_when_measured": alive_open, "errors": errors,
        "open_seconds": round(open_s, 2), "server_channels": nchannels,
        "rss_idle_mb": _mb(idle), "rss_holding_mb": _mb(holding), "rss_peak_mb": _mb(sampler.peak),
        "rss_after_release_mb": _mb(after), "pss_holding_mb": _mb(holding_pss),
        "server_processes": len(b.server.pids()), "rss_per_stream_kb": round((holding - idle) / max(1, opened) / 1024, 1),
        "direct": {"opened": direct_opened, "nginx_rss_idle_mb": _mb(ng_idle),
                   "nginx_rss_holding_mb": _mb(ng_holding)},
    }


# ----------------------------------------------------------------------------- soak


async def scenario_soak(b: Bench) -> dict:
    """RSS growth over N unary calls after a warm-up (fresh server)."""
    requested, c = b.settings.soak_calls, b.settings.soak_concurrency
    await b.restart_server()
    verify = await cl.check_generate(b.server.target, b.nginx.base)
    frame = grpc_frame(cl.generate_request(b.nginx.base))
    # Warm-up for a fixed time; its rate also sizes the soak when a time cap applies.
    saved, b.h2.warmup_s = b.h2.warmup_s, 0.0
    try:
        warm = await b.measure("soak warm-up", b.grpc_url(cl.GENERATE), frame, GRPC_HEADERS, c, sut=True,
                               expected_bytes=verify["response_frame_bytes"])
    finally:
        b.h2.warmup_s = saved
    calls = requested
    if b.settings.soak_max_s and warm.rps:
        calls = min(requested, max(1000, int(warm.rps * b.settings.soak_max_s) // 1000 * 1000))
    capped = calls < requested
    print(f"  soak: {calls:,} calls at c={c} after {warm.done:,} warm-up calls ({warm.rps:.0f} req/s)"
          + (f"; capped from {requested:,} to fit ~{b.settings.soak_max_s:.0f} s "
             "(BENCH_SOAK_CALLS=500000 runs them all)" if capped else ""), flush=True)
    await asyncio.sleep(1)
    start_rss = b.server.rss()
    with RssSampler(b.server.rss, 1.0) as sampler:
        point = await b.measure("soak grpc", b.grpc_url(cl.GENERATE), frame, GRPC_HEADERS, c, sut=True,
                                expected_bytes=verify["response_frame_bytes"], requests=calls)
    await asyncio.sleep(1)
    end_rss = b.server.rss()
    after = await cl.check_generate(b.server.target, b.nginx.base)

    ng_start = b.nginx.rss()
    direct = await b.measure("soak direct", f"{b.nginx.base}/v1/chat/completions", cl.direct_chat_body(),
                             cl.DIRECT_HEADERS, c, sut=False,
                             expected_bytes=len(b.nginx.bodies["v1/chat/completions"]), requests=calls)
    ng_end = b.nginx.rss()
    return {
        "status": "ok", "verify": verify, "after_soak": after["grpc_status"],
        "calls_requested": requested, "calls_planned": calls, "capped_by_time": capped,
        "soak_max_s": b.settings.soak_max_s, "warmup_rps": warm.rps,
        "calls_done": point.done, "calls_2xx": point.status_2xx, "warmup_calls": warm.done,
        "rss_start_mb": _mb(start_rss), "rss_end_mb": _mb(end_rss), "rss_peak_mb": _mb(sampler.peak),
        "rss_growth_pct": round((end_rss - start_rss) / start_rss * 100, 2) if start_rss else None,
        "rss_growth_second_half_pct": _second_half_growth(sampler.samples),
        "rss_samples_mb": [[round(t, 1), _mb(v)] for t, v in sampler.samples[:: max(1, len(sampler.samples) // 60)]],
        "server": point.to_dict(),
        "direct": direct.to_dict(), "nginx_rss_start_mb": _mb(ng_start), "nginx_rss_end_mb": _mb(ng_end),
        "nginx_rss_growth_pct": round((ng_end - ng_start) / ng_start * 100, 2) if ng_start else None,
    }


# ----------------------------------------------------------------------------- cancellation


async def scenario_cancel(b: Bench) -> dict:
    """Client cancel of a stream → upstream connection closed, timed by the upstream."""
    upstream = await up.CancelUpstream(b.load_cpus).start()
    try:
        request = cl.stream_request(upstream.base)
        samples: list[float] = []
        failures: list[str] = []
        async with cl.channel(b.server.target) as ch:
            stub = llm_service_pb2_grpc.LLMServiceStub(ch)
            for i in range(b.settings.cancel_samples + 1):  # the first one is a warm-up and check
                upstream.drain()
                call = stub.StreamGenerate(request, timeout=30)
                try:
                    first = await asyncio.wait_for(call.read(), 10)
                    if not hasattr(first, "delta"):
                        raise cl.CheckFailed(f"stream ended before its first chunk: {first!r}")
                    opened = await upstream.next_event("open", 5)
                    t0 = time.monotonic()
                    call.cancel()
                    while True:
                        closed = await upstream.next_event("closed", 5)
                        if closed["id"] == opened["id"]:
                            break
                    if i:
                        samples.append((closed["t"] - t0) * 1e3)
                except (TimeoutError, cl.CheckFailed) as exc:
                    call.cancel()
                    if i == 0:
                        raise cl.CheckFailed(f"cancel upstream check failed: {exc}") from None
                    failures.append(str(exc) or type(exc).__name__)
        direct: list[float] = []
        for _ in range(b.settings.cancel_samples):
            upstream.drain()
            conn = await cl.RawHTTP("127.0.0.1", upstream.port).connect()
            await conn.send("/v1/chat/completions", cl.direct_chat_body(stream=True))
            await conn.first_data()
            opened = await upstream.next_event("open", 5)
            t0 = time.monotonic()
            conn.close()
            while (closed := await upstream.next_event("closed", 5))["id"] != opened["id"]:
                pass
            direct.append((closed["t"] - t0) * 1e3)
    finally:
        await upstream.stop()
    sp, dp = percentiles(samples), percentiles(direct)
    print(f"  cancel → upstream close: p50 {sp.get('p50', 0):.3f} ms, max {sp.get('max', 0):.3f} ms over "
          f"{len(samples)} (direct p50 {dp.get('p50', 0):.3f} ms); not closed: {len(failures)}", flush=True)
    return {"status": "ok" if not failures else "partial", "samples": len(samples),
            "not_closed_within_5s": len(failures), "failures": failures[:5],
            "cancel_to_upstream_close_ms": percentiles(samples),
            "direct_close_ms": percentiles(direct)}


def _second_half_growth(samples: list[tuple[float, int]]) -> float | None:
    """Growth from the middle of the soak to its end (medians of 10% windows): a leak keeps
    growing here, a one-off warm-up step does not."""
    values = [v for _, v in samples]
    if len(values) < 20:
        return None
    w = max(1, len(values) // 10)
    mid = statistics.median(values[len(values) // 2 - w // 2: len(values) // 2 + w // 2 + 1])
    end = statistics.median(values[-w:])
    return round((end - mid) / mid * 100, 2) if mid else None


def _mb(value: int) -> float:
    return round(value / 1e6, 1)


# ----------------------------------------------------------------------------- profiling (optional)


def _start_profiler(pid: int, settings: Settings, delay: float):
    import shutil
    import subprocess
    import sys

    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "py-spy"], check=False)
    if not Path(spy).exists():
        return None
    out = settings.results_dir / "profile-unary.txt"
    svg = settings.results_dir / "profile-unary.svg"
    seconds = max(1, int(settings.duration / 2))
    # Two halves of the window: raw collapsed stacks for the summary, then a flame graph SVG.
    # Python frames only: --native costs the server ~70% of its throughput here. Time spent in
    # grpc's Cython/C core shows up as self time of asyncio's Handle._run / task steps.
    rec = f"{spy} record -p {pid} -d {seconds} -r 100 --function"
    cmd = f"sleep {delay:g}; {rec} -f raw -o {out} >/dev/null 2>&1; {rec} -o {svg} >/dev/null 2>&1"
    return subprocess.Popen(["sh", "-c", cmd]), out


def _finish_profiler(proc, out: Path) -> dict:
    """Summarise py-spy's collapsed stacks over the event-loop thread's samples.

    py-spy cannot tell idle threads apart here (grpc's poller and the default executor show as
    busy while they wait), so the summary counts only stacks under the loop's run_forever.
    """
    proc.wait()
    try:
        lines = out.read_text().splitlines()
    except OSError:
        return {"error": "py-spy produced no output (ptrace not permitted?)"}
    self_t: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = loop = 0
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        if not any("run_forever" in f for f in frames):
            continue
        loop += n
        self_t[frames[-1]] = self_t.get(frames[-1], 0) + n
        for f in set(frames):
            incl[f] = incl.get(f, 0) + n

    def top(d: dict[str, int], skip: tuple[str, ...] = ()) -> list[list]:
        items = [(k, v) for k, v in d.items() if not k.startswith(skip)]
        return [[k, round(v / max(1, loop) * 100, 1)] for k, v in sorted(items, key=lambda kv: -kv[1])[:25]]

    generic = ("<module>", "_run_module_as_main", "_run_code", "main ", "run (asyncio", "Runner.run",
               "BaseEventLoop.run", "BaseEventLoop._run_once")
    return {"samples": total, "event_loop_samples": loop, "raw": str(out),
            "top_self_pct": top(self_t), "top_inclusive_pct": top(incl, generic)}


SCENARIOS: dict[str, Callable[[Bench], Awaitable[dict]]] = {
    "doors": scenario_doors,
    "unary": scenario_unary,
    "metrics": scenario_metrics,
    "routing": scenario_routing,
    "auth": scenario_auth,
    "stream": scenario_stream,
    "embeddings": scenario_embeddings,
    "http": scenario_http,
    "open_streams": scenario_open_streams,
    "cancel": scenario_cancel,
    "soak": scenario_soak,
}
