"""The server under test: a generated config, ``python -m server --config FILE`` as a subprocess,
readiness through the gRPC health service, RSS/CPU sampling from /proc, and a clean stop.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import grpc
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from .upstream import children, cpu_seconds, free_port, pinned, pss_bytes, rss_bytes

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python")
API_KEY = "sk-bench-0123456789abcdef"


def server_supports_workers(python: str) -> bool:
    """Hook for the lead's SO_REUSEPORT multi-process mode: detected from the server's --help."""
    try:
        out = subprocess.run([python, "-m", "server", "--help"], cwd=ROOT, capture_output=True,
                             text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--workers" in out


def http_endpoint_present() -> bool:
    return (ROOT / "server" / "http" / "app.py").exists()


@dataclass
class Server:
    upstream_base: str
    python: str = PYTHON
    cpus: set[int] | None = None
    workers: int = 1
    log_level: str = "INFO"
    metrics: bool = True  # observability.metrics (the metrics scenario turns it off for its "off" rounds)
    extra: dict = field(default_factory=dict)  # more config sections (the auth scenario's auth/storage)
    wrapper: list[str] = field(default_factory=list)  # run the server under this (the auth scenario: callgrind)
    ready_timeout: float = 60.0
    grpc_port: int = 0
    http_port: int = 0
    proc: subprocess.Popen | None = None
    config_path: Path | None = None
    log_path: Path | None = None
    _tmp: Path | None = None

    def config(self) -> dict:
        return {
            "grpc": {"host": "127.0.0.1", "port": self.grpc_port, "max_concurrent_rpcs": 4096,
                     "grace_seconds": 2, "workers": self.workers},
            # Request credentials: the doors scenario sends them per call on both doors.
            "http": {"enabled": True, "host": "127.0.0.1", "port": self.http_port, "allow_request_credentials": True},
            "egress": {
                "allowed_cidrs": ["127.0.0.1/32"],
                # 1,000 open streams hold 1,000 upstream HTTP/1.1 connections (default pool: 512).
                "max_connections": 2048,
            },
            "providers": {"openai": {"credentials": {"openai_api_key": API_KEY,
                                                     "openai_api_base": self.upstream_base}}},
            "observability": {"metrics": self.metrics},
            "log_level": self.log_level,
            **self.extra,
        }

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self) -> Server:
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="modelruntime-bench-sut-"))
        self.grpc_port, self.http_port = free_port(), free_port()
        self.config_path = self._tmp / "server.yaml"
        self.config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        self.log_path = self._tmp / "server.log"
        cmd = [*self.wrapper, self.python, "-m", "server", "--config", str(self.config_path)]
        if self.workers > 1:
            cmd += ["--workers", str(self.workers)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODEL_RUNTIME_")}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(pinned(cmd, self.cpus), cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready(self.ready_timeout)
        return self

    def _wait_ready(self, timeout: float = 60.0) -> None:
        end = time.monotonic() + timeout
        channel = grpc.insecure_channel(self.target)
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            while time.monotonic() < end:
                if self.proc is None or self.proc.poll() is not None:
                    raise SystemExit(f"bench: the server exited during startup:\n{self.log_tail()}")
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    time.sleep(0.1)
            raise SystemExit(f"bench: the server was not ready in {timeout:.0f}s:\n{self.log_tail()}")
        finally:
            channel.close()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except (OSError, AttributeError):
            return ""

    def pids(self) -> list[int]:
        if not self.proc:
            return []
        return [self.proc.pid, *children(self.proc.pid)]

    def rss(self) -> int:
        return sum(rss_bytes(p) for p in self.pids())

    def pss(self) -> int:
        """Summed PSS: the honest total for a multi-process server (RSS counts shared pages per process)."""
        return sum(pss_bytes(p) for p in self.pids())

    def cpu(self) -> float:
        return sum(cpu_seconds(p) for p in self.pids())

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


class RssSampler:
    """Samples a process set's RSS every ``interval`` seconds in a thread."""

    def __init__(self, read, interval: float = 0.5) -> None:
        self._read = read
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set():
            self.samples.append((time.monotonic() - start, self._read()))
            self._stop.wait(self.interval)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak(self) -> int:
        return max((v for _, v in self.samples), default=0)


def python_info(python: str) -> dict:
    code = "import sys, grpc; print(sys.version.split()[0]); print(grpc.__version__)"
    try:
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=30,
                             check=False).stdout.split()
        return {"python": out[0], "grpcio": out[1]}
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return {"python": sys.version.split()[0], "grpcio": grpc.__version__}


def _proc_stat() -> dict[int, tuple[int, int]]:
    """Per-CPU (busy, steal) ticks from /proc/stat."""
    out: dict[int, tuple[int, int]] = {}
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("cpu") and line[3:4].isdigit():
                name, *vals = line.split()
                v = [int(x) for x in vals] + [0] * 8
                # user nice system idle iowait irq softirq steal
                out[int(name[3:])] = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7], v[7])
    except OSError:
        pass
    return out


def cpu_snapshot(server: Server, nginx) -> dict:
    ch, me = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
    return {"t": time.monotonic(), "server": server.cpu(), "nginx": nginx.cpu(),
            "ours_other": ch.ru_utime + ch.ru_stime + me.ru_utime + me.ru_stime, "stat": _proc_stat()}


def foreign_cpu(a: dict, b: dict, sut_cpus: set[int] | None) -> dict:
    """CPU that processes other than ours used between two snapshots, as % of one core.

    ``foreign_pct``: all CPUs, minus the server, nginx, h2load and the harness itself.
    ``on_server_cores_pct``: busy time on the server's pinned cores minus the server's own CPU.
    ``steal_pct``: time the hypervisor took from this VM, all CPUs.
    """
    hz = os.sysconf("SC_CLK_TCK")
    wall = max(1e-6, b["t"] - a["t"])
    cpus = set(a["stat"]) & set(b["stat"])
    busy = sum(b["stat"][c][0] - a["stat"][c][0] for c in cpus) / hz
    steal = sum(b["stat"][c][1] - a["stat"][c][1] for c in cpus) / hz
    ours = sum(b[k] - a[k] for k in ("server", "nginx", "ours_other"))
    out = {"foreign_pct": round(max(0.0, busy - ours) / wall * 100, 1), "steal_pct": round(steal / wall * 100, 1)}
    if sut_cpus:
        on_sut = sum(b["stat"][c][0] - a["stat"][c][0] for c in cpus & sut_cpus) / hz
        out["on_server_cores_pct"] = round(max(0.0, on_sut - (b["server"] - a["server"])) / wall * 100, 1)
    return out
