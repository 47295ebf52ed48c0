"""The server under test: a generated config, ``python -m server --config FILE`` as a subprocess,
readiness through the gRPC health service, RSS/CPU sampling from /proc, and a clean stop.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from .upstream import affinity, children, cpu_seconds, free_port, rss_bytes

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "sk-bench-0123456789abcdef"


def server_supports_workers(python: str) -> bool:
    """Hook for the lead's SO_REUSEPORT multi-process mode: detected from the server's --help."""
    try:
        out = subprocess.run([python, "-m", "server", "--help"], cwd=ROOT, capture_output=True,
                             text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--workers" in out


def http_endpoint_present() -> bool:
    return (ROOT / "server" / "http" / "app.py").exists()


@dataclass
class Server:
    upstream_base: str
    python: str = str(ROOT / ".venv" / "bin" / "python")
    cpus: set[int] | None = None
    workers: int = 1
    log_level: str = "INFO"
    grpc_port: int = 0
    http_port: int = 0
    proc: subprocess.Popen | None = None
    config_path: Path | None = None
    log_path: Path | None = None
    _tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="modelruntime-bench-sut-")))

    def config(self) -> dict:
        return {
            "grpc": {"host": "127.0.0.1", "port": self.grpc_port, "max_concurrent_rpcs": 4096,
                     "grace_seconds": 2},
            "http": {"enabled": True, "host": "127.0.0.1", "port": self.http_port},
            "egress": {
                "allowed_cidrs": ["127.0.0.1/32"],
                # 1,000 open streams hold 1,000 upstream HTTP/1.1 connections (default pool: 512).
                "max_connections": 2048,
            },
            "providers": {"openai": {"credentials": {"openai_api_key": API_KEY,
                                                     "openai_api_base": self.upstream_base}}},
            "log_level": self.log_level,
        }

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self) -> Server:
        self.grpc_port, self.http_port = free_port(), free_port()
        self.config_path = self._tmp / "server.yaml"
        self.config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        self.log_path = self._tmp / "server.log"
        cmd = [self.python, "-m", "server", "--config", str(self.config_path)]
        if self.workers > 1:
            cmd += ["--workers", str(self.workers)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODEL_RUNTIME_")}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, preexec_fn=affinity(self.cpus),
                                         start_new_session=True)
        self._wait_ready()
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
        for p in self._tmp.glob("*"):
            p.unlink(missing_ok=True)
        try:
            self._tmp.rmdir()
        except OSError:
            pass


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

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak(self) -> int:
        return max((v for _, v in self.samples), default=0)


async def wait_until(predicate, timeout: float, interval: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        await asyncio.sleep(interval)
    return predicate()


def python_info(python: str) -> dict:
    code = "import sys, grpc; print(sys.version.split()[0]); print(grpc.__version__)"
    try:
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=30).stdout.split()
        return {"python": out[0], "grpcio": out[1]}
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return {"python": sys.version.split()[0], "grpcio": grpc.__version__}
