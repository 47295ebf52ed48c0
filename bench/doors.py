"""The ``doors`` scenario: the two front doors side by side, with the gRPC floors, in one run.

Same upstream (nginx), same concurrency, same runtime process. Per leg, h2load runs a closed
loop and the server's CPU time in the measured window gives CPU per call — the figure a shared
2-core machine disturbs least (calls/s are reported too). Legs:

- ``grpc unary``: ``LLMService/Generate``; ``http unary``: ``POST /v1/chat/completions``;
- ``grpc stream``: ``StreamGenerate``; ``http stream``: the same with ``"stream": true`` (SSE);
- ``aio floor`` / ``sync floor``: bare echo servers (:mod:`bench.floors`, grpc.aio on uvloop and
  the synchronous ``grpc.server``) answering bytes of the real reply's size, unary and streamed,
  pinned where the server is. What the runtime spends above them is its own work.

The legs run in rounds, interleaved (each round runs every leg once), and each leg reports the
median over rounds, so a burst of foreign load hits one sample of every leg, not one leg.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import urllib.request
from dataclasses import dataclass

from . import clients as cl
from . import upstream as up
from .load import GRPC_HEADERS, grpc_frame
from .sut import API_KEY, ROOT
from .upstream import cpu_seconds, free_port, pinned


class Floor:
    """A bench.floors server process (``kind``: aio or sync; with ``upstream``, it also relays)."""

    def __init__(self, kind: str, cpus: set[int] | None, reply_bytes: int, chunks: int, chunk_bytes: int,
                 upstream: str = "") -> None:
        self.kind = kind
        self.port = free_port()
        self.proc = subprocess.Popen(
            pinned([sys.executable, "-m", "bench.floors", kind, str(self.port), str(reply_bytes), str(chunks),
                    str(chunk_bytes), *([upstream] if upstream else [])], cpus),
            cwd=ROOT, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"floor {kind} did not start")

    def url(self, method: str) -> str:
        return f"http://127.0.0.1:{self.port}{method}"

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class Leg:
    name: str
    url: str
    body: bytes
    headers: list[str]
    h1: bool
    expected_bytes: int
    proc: Floor | None = None  # what the CPU time is read from (None: the server)


def _credentials(base: str) -> str:
    return json.dumps({"openai_api_key": API_KEY, "openai_api_base": base}, separators=(",", ":"))


def _http(url: str, body: bytes, credentials: str) -> bytes:
    req = urllib.request.Request(url, data=body, method="POST", headers={
        "content-type": "application/json", "authorization": f"Bearer {API_KEY}",
        "x-provider-credentials": credentials})
    with urllib.request.urlopen(req, timeout=10) as resp:
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}")
        return resp.read()


async def scenario_doors(b) -> dict:
    """gRPC and HTTP front doors side by side (unary, stream) with bare grpc.aio/sync echo floors."""
    import asyncio

    c = b.settings.doors_concurrency
    rounds = max(1, b.settings.doors_rounds)
    unary = await cl.check_generate(b.server.target, b.nginx.base)
    stream_base = f"{b.nginx.base}/stream"
    stream = await cl.check_stream(b.server.target, stream_base, b.settings.stream_pieces)
    http_url = f"http://127.0.0.1:{b.server.http_port}/v1/chat/completions"
    http_body = json.dumps({"model": f"openai/{up.MODEL}", "messages": [{"role": "user", "content": cl.PROMPT}]}).encode()
    # Credentials travel with each request on both doors (gRPC: target.credentials; HTTP: the
    # X-Provider-Credentials header), so both doors do the same runtime work per call.
    unary_creds, stream_creds = _credentials(b.nginx.base), _credentials(stream_base)
    http_reply = await asyncio.to_thread(_http, http_url, http_body, unary_creds)
    if json.loads(http_reply)["choices"][0]["message"]["content"] != up.CHAT_CONTENT:
        raise RuntimeError("HTTP chat verification failed")
    stream_body = json.dumps({"model": f"openai/{up.MODEL}", "stream": True,
                              "messages": [{"role": "user", "content": cl.PROMPT}]}).encode()
    sse = await asyncio.to_thread(_http, http_url, stream_body, stream_creds)
    if sse.count(up.STREAM_PIECE.encode()) != b.settings.stream_pieces or not sse.endswith(b"data: [DONE]\n\n"):
        raise RuntimeError(f"HTTP stream verification failed: {sse[:200]!r}")

    chunks = stream["chunks"]
    floors = [Floor(kind, b.sut_cpus, unary["response_frame_bytes"], chunks,
                    stream["response_frame_bytes"] // chunks) for kind in ("aio", "sync")]
    legs = [
        Leg("grpc unary", b.grpc_url(cl.GENERATE), grpc_frame(cl.generate_request(b.nginx.base)), GRPC_HEADERS,
            False, unary["response_frame_bytes"]),
        Leg("http unary", http_url, http_body, [*cl.DIRECT_HEADERS, f"x-provider-credentials: {unary_creds}"],
            True, int(len(http_reply) * 0.9)),
        Leg("grpc stream", b.grpc_url(cl.STREAM_GENERATE), grpc_frame(cl.stream_request(stream_base)),
            GRPC_HEADERS, False, stream["response_frame_bytes"]),
        Leg("http stream", http_url, stream_body, [*cl.DIRECT_HEADERS, f"x-provider-credentials: {stream_creds}"],
            True, int(len(sse) * 0.9)),
    ]
    for f in floors:
        legs += [Leg(f"{f.kind} floor unary", f.url("/floor.Echo/Unary"), grpc_frame(cl.generate_request(b.nginx.base)),
                     GRPC_HEADERS, False, unary["response_frame_bytes"], f),
                 Leg(f"{f.kind} floor stream", f.url("/floor.Echo/Stream"),
                     grpc_frame(cl.stream_request(stream_base)), GRPC_HEADERS, False,
                     stream["response_frame_bytes"], f)]
    samples: dict[str, list[dict]] = {leg.name: [] for leg in legs}
    try:
        for r in range(rounds):
            order = legs if r % 2 == 0 else legs[::-1]
            for leg in order:
                point = await b.measure(f"doors {leg.name} c={c} #{r + 1}", leg.url, leg.body, leg.headers, c,
                                        sut=True, h1=leg.h1, expected_bytes=leg.expected_bytes,
                                        server=leg.proc)  # type: ignore[arg-type]
                samples[leg.name].append(point.to_dict())
    finally:
        for f in floors:
            f.stop()
    summary = {name: _median(points) for name, points in samples.items()}

    def ratio(a: str, z: str) -> float | None:
        x, y = summary[a]["cpu_ms_per_call"], summary[z]["cpu_ms_per_call"]
        return round(x / y, 3) if x and y else None

    out = {"status": "ok", "concurrency": c, "rounds": rounds, "stream_chunks": chunks, "legs": summary,
           "grpc_vs_http_cpu": {"unary": ratio("grpc unary", "http unary"),
                                "stream": ratio("grpc stream", "http stream")},
           "samples": samples}
    for kind in ("unary", "stream"):
        g = summary[f"grpc {kind}"]
        print(f"  doors {kind}: gRPC {g['cpu_ms_per_call']} ms CPU/call ({g['calls_per_s']} calls/s), HTTP "
              f"{summary[f'http {kind}']['cpu_ms_per_call']} ms; ratio {out['grpc_vs_http_cpu'][kind]}×; floors "
              f"aio {summary[f'aio floor {kind}']['cpu_ms_per_call']} / sync "
              f"{summary[f'sync floor {kind}']['cpu_ms_per_call']} ms", flush=True)
    return out


def _median(points: list[dict]) -> dict:
    cpu = [p["cpu_ms_per_req"] for p in points if p["cpu_ms_per_req"] and p["body_ok"] is not False]
    rps = [p["rps"] for p in points if p["rps"]]
    p50 = [p["latency_ms"]["p50"] for p in points if p["latency_ms"].get("p50")]
    return {"cpu_ms_per_call": round(statistics.median(cpu), 4) if cpu else None,
            "cpu_ms_samples": cpu,
            "calls_per_s": round(statistics.median(rps), 1) if rps else None,
            "p50_ms": round(statistics.median(p50), 3) if p50 else None,
            "errors": [p["error"] for p in points if p["error"]],
            "body_ok": all(p["body_ok"] is not False for p in points),
            "foreign_pct_max": max((p["interference"].get("foreign_pct", 0) for p in points), default=0)}
