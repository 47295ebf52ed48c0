"""A real ``python -m server`` process for tests that need signals, rlimits or a separate loop."""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import socket
import sys
import time
from pathlib import Path

import grpc
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def grpc_health(port: int, timeout: float = 1.0) -> int:
    """The overall health status (raises AioRpcError when the server does not answer)."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
        return reply.status


class ServerProcess:
    """``async with ServerProcess(tmp_path, {...config...}) as server:`` — started and healthy."""

    def __init__(self, tmp_path: Path, config: dict, nofile: tuple[int, int] | None = None,
                 env: dict | None = None) -> None:
        self.grpc_port, self.http_port = free_port(), free_port()
        config = {**config}
        config["grpc"] = {"host": "127.0.0.1", "port": self.grpc_port, **config.get("grpc", {})}
        config["http"] = {"host": "127.0.0.1", "port": self.http_port, **config.get("http", {})}
        self.path = tmp_path / "config.yaml"
        self.path.write_text(yaml.safe_dump(config))
        self.nofile = nofile
        self.env = {**os.environ, **(env or {})}
        self.proc: asyncio.subprocess.Process | None = None
        self._err = bytearray()
        self._reader: asyncio.Task | None = None

    @property
    def stderr(self) -> str:
        return self._err.decode(errors="replace")

    async def _collect(self) -> None:  # keep the pipe drained: a full pipe would block the server
        assert self.proc is not None and self.proc.stderr is not None
        while chunk := await self.proc.stderr.read(65536):
            self._err += chunk

    def _limit(self) -> None:  # runs in the child before exec
        if self.nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, self.nofile)

    async def __aenter__(self) -> ServerProcess:  # noqa: PYI034
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "server", "--config", str(self.path), cwd=str(ROOT), env=self.env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, preexec_fn=self._limit)
        self._reader = asyncio.create_task(self._collect())
        deadline = time.monotonic() + 60  # a bound on start-up, generous for a loaded machine
        while time.monotonic() < deadline:
            if self.proc.returncode is not None:
                await self._reader
                raise AssertionError(f"server exited: {self.stderr}")
            try:
                if await grpc_health(self.grpc_port, 0.5) == health_pb2.HealthCheckResponse.SERVING:
                    return self
            except grpc.aio.AioRpcError:
                await asyncio.sleep(0.1)
        raise AssertionError("server did not become healthy")

    async def terminate(self, timeout: float = 15) -> tuple[int, float]:
        """SIGTERM; (exit code, seconds from the signal to exit). Collects stderr."""
        assert self.proc is not None
        start = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        elapsed = time.monotonic() - start
        await asyncio.wait_for(self._reader, 5)
        return code, elapsed

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 5)
