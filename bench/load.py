"""Load generation with Debian's h2load, and parsing of its output and per-request log.

gRPC over h2load: the request is a prepared length-prefixed message (1 byte compressed flag 0,
4-byte big-endian length, the serialized protobuf) POSTed with ``content-type: application/grpc``
and ``te: trailers``. h2load counts HTTP statuses only; a gRPC error is still HTTP 200 with a
``grpc-status`` trailer and usually no DATA. So every scenario checks one call with a real gRPC
client before loading, and each load point compares the DATA bytes received per 2xx response
with the size of a correct response (``body_ok``), which a trailers-only error cannot fake.

Direct-to-upstream baselines use the same tool over HTTP/1.1 (``--h1``), the protocol the
runtime itself speaks to a plain-http upstream.
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .upstream import pinned

GRPC_HEADERS = ["content-type: application/grpc", "te: trailers"]


def grpc_frame(message) -> bytes:
    """One length-prefixed gRPC message (uncompressed)."""
    payload = message.SerializeToString()
    return b"\x00" + len(payload).to_bytes(4, "big") + payload


@dataclass
class LoadPoint:
    """One h2load run."""

    label: str
    url: str
    protocol: str  # "h2c-grpc" or "http/1.1"
    concurrency: int
    connections: int
    streams_per_connection: int
    duration_s: float | None
    requests: int | None
    seconds: float = 0.0
    rps: float = 0.0
    done: int = 0
    succeeded: int = 0
    failed: int = 0
    errored: int = 0
    timeout: int = 0
    status_2xx: int = 0
    status_other: int = 0
    data_bytes: int = 0
    data_bytes_per_2xx: float = 0.0
    expected_bytes: int | None = None
    body_ok: bool | None = None
    latency_ms: dict[str, float] = field(default_factory=dict)
    sut_cpu_s: float | None = None
    upstream_cpu_s: float | None = None
    cpu_ms_per_req: float | None = None
    interference: dict = field(default_factory=dict)
    command: str = ""
    error: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


class H2Load:
    """Runs h2load pinned to the load-generator CPUs."""

    def __init__(self, cpus: set[int] | None, warmup_s: float = 2.0) -> None:
        self.binary = shutil.which("h2load") or "h2load"
        self.cpus = cpus
        self.warmup_s = warmup_s
        self.tmp = Path(tempfile.mkdtemp(prefix="modelruntime-bench-h2load-"))
        self._n = 0

    def body_file(self, name: str, data: bytes) -> Path:
        path = self.tmp / name
        path.write_bytes(data)
        return path

    def run(
        self,
        label: str,
        url: str,
        body: Path,
        headers: list[str],
        concurrency: int,
        *,
        h1: bool = False,
        duration_s: float | None = None,
        requests: int | None = None,
        expected_bytes: int | None = None,
        max_connections: int = 4,
        timeout_s: float | None = None,
        on_start=None,
    ) -> LoadPoint:
        """A closed-loop run at fixed concurrency for ``duration_s`` (or ``requests`` calls).

        gRPC: ``min(concurrency, max_connections)`` connections multiplexing the rest as
        concurrent streams, as a gRPC client would. HTTP/1.1: one connection per in-flight request.
        """
        if h1:
            conns, streams = concurrency, 1
        else:
            conns = max(1, min(concurrency, max_connections))
            streams = max(1, concurrency // conns)
        self._n += 1
        log = self.tmp / f"run{self._n}.log"
        cmd = [self.binary, "-t", "1", "-c", str(conns), "-m", str(streams), "-d", str(body)]
        for h in headers:
            cmd += ["-H", h]
        if h1:
            cmd.append("--h1")
        if duration_s is not None and self.warmup_s > 0:
            # A separate, discarded warm-up run: h2load's own --warm-up-time still counts the
            # warm-up's DATA bytes in its totals, which would blur the per-response size check.
            try:
                subprocess.run(pinned([*cmd, "-D", f"{self.warmup_s:g}", url], self.cpus), capture_output=True,
                               timeout=self.warmup_s + 60, check=False)
            except subprocess.TimeoutExpired:
                pass
        cmd += ["-D", f"{duration_s:g}"] if duration_s is not None else ["-n", str(requests)]
        cmd.append(f"--log-file={log}")
        point = LoadPoint(label, url, "http/1.1" if h1 else "h2c-grpc", conns * streams, conns, streams,
                          duration_s, requests, expected_bytes=expected_bytes)
        point.command = " ".join(cmd + [url])
        if on_start is not None:
            on_start()
        limit = timeout_s or (duration_s + 60 if duration_s else max(3600.0, (requests or 0) / 50))
        started = time.monotonic()
        try:
            proc = subprocess.run(pinned([*cmd, url], self.cpus), capture_output=True, text=True, timeout=limit,
                                  check=False)
        except subprocess.TimeoutExpired:
            point.error = f"h2load did not finish within {limit:.0f}s"
            return point
        point.seconds = time.monotonic() - started
        out = proc.stdout + proc.stderr
        parse_output(out, point)
        point.latency_ms = latency_from_log(log)
        log.unlink(missing_ok=True)
        if proc.returncode != 0 and not point.done:
            point.error = f"h2load exited {proc.returncode}: {out.strip()[-400:]}"
        if point.status_2xx:
            point.data_bytes_per_2xx = point.data_bytes / point.status_2xx
            if expected_bytes:
                # Every correct response carries at least the expected payload; allow 2% slack for
                # h2load counting padding/partial responses at the end of the window.
                point.body_ok = point.data_bytes_per_2xx >= 0.98 * expected_bytes
        # done vs 2xx may differ by the few requests cut at the end of the window; real failures
        # show up as non-2xx statuses, failed, errored or timed-out requests.
        bad = point.status_other + point.failed + point.errored + point.timeout
        if bad:
            point.error = point.error or (f"{bad} of {point.done} requests failed (non-2xx {point.status_other}, "
                                          f"failed {point.failed}, errored {point.errored}, timeout {point.timeout})")
        return point

    def cleanup(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


_FINISHED = re.compile(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s")
_REQUESTS = re.compile(
    r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
    r"(\d+) errored, (\d+) timeout"
)
_STATUS = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")
_TRAFFIC = re.compile(r"traffic: .*?, .*? \((\d+)\) data")


def parse_output(text: str, point: LoadPoint) -> None:
    m = _FINISHED.search(text)
    if m:
        point.rps = float(m.group(3))
    m = _REQUESTS.search(text)
    if m:
        point.done, point.succeeded, point.failed, point.errored, point.timeout = (
            int(m.group(i)) for i in (3, 4, 5, 6, 7)
        )
    m = _STATUS.search(text)
    if m:
        point.status_2xx = int(m.group(1))
        point.status_other = sum(int(m.group(i)) for i in (2, 3, 4))
    m = _TRAFFIC.search(text)
    if m:
        point.data_bytes = int(m.group(1))


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    values = sorted(values)
    n = len(values)

    def pct(p: float) -> float:
        return values[min(n - 1, max(0, round(p / 100 * n + 0.5) - 1))]

    return {"n": n, "min": values[0], "p50": pct(50), "p90": pct(90), "p99": pct(99), "p99.9": pct(99.9),
            "max": values[-1], "mean": statistics.fmean(values)}


def latency_from_log(path: Path) -> dict[str, float]:
    """Per-request latency (ms) from h2load's --log-file (start µs, status, duration µs)."""
    values: list[float] = []
    try:
        with open(path) as fh:
            for line in fh:
                parts = line.split("\t")
                if len(parts) >= 3 and parts[1].startswith("2"):
                    values.append(int(parts[2]) / 1000.0)
    except OSError:
        return {}
    return percentiles(values)
