"""Debian's nginx as the gRPC load balancer in front of server processes, for tests.

The config is the shipped example (``deploy/nginx/model-runtime.conf``) with the replicas'
host names and ports replaced by the test's, inside a minimal main config under a temporary
prefix, so the test proves the file operators copy.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import time
from pathlib import Path

ROOT = Path(__file__).parents[1]
EXAMPLE = ROOT / "deploy" / "nginx" / "model-runtime.conf"


def find_nginx() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/sbin/nginx") if os.access(p, os.X_OK)), None)


def render(prefix: Path, grpc_port: int, http_port: int, replicas: list[tuple[int, int]]) -> str:
    text = EXAMPLE.read_text()
    for i, (replica_grpc, replica_http) in enumerate(replicas, 1):
        text = text.replace(f"runtime-{i}:50051", f"127.0.0.1:{replica_grpc}")
        text = text.replace(f"runtime-{i}:8080", f"127.0.0.1:{replica_http}")
    text = text.replace("listen 50051 http2;", f"listen 127.0.0.1:{grpc_port} http2;")
    text = text.replace("listen 8080;", f"listen 127.0.0.1:{http_port};")
    temp = "\n".join(f"    {kind}_temp_path {prefix}/{kind};" for kind in
                     ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return (f"worker_processes 1;\ndaemon off;\npid {prefix}/nginx.pid;\nerror_log {prefix}/error.log warn;\n"
            f"events {{ worker_connections 4096; }}\nhttp {{\n    access_log off;\n{temp}\n{text}\n}}\n")


class Nginx:
    def __init__(self, prefix: Path, grpc_port: int, http_port: int, replicas: list[tuple[int, int]]) -> None:
        self.prefix = prefix
        self.grpc_port = grpc_port
        self.http_port = http_port
        self.replicas = replicas
        self.proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Nginx:  # noqa: PYI034
        binary = find_nginx()
        assert binary is not None, "nginx is not installed (apt-get install -y nginx)"
        self.prefix.mkdir(parents=True, exist_ok=True)
        conf = self.prefix / "nginx.conf"
        conf.write_text(render(self.prefix, self.grpc_port, self.http_port, self.replicas))
        self.proc = await asyncio.create_subprocess_exec(
            binary, "-p", str(self.prefix), "-e", str(self.prefix / "error.log"), "-c", str(conf),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.returncode is not None:
                err = await self.proc.stderr.read() if self.proc.stderr else b""
                raise AssertionError(f"nginx exited: {err.decode(errors='replace')}")
            try:
                with socket.create_connection(("127.0.0.1", self.grpc_port), timeout=0.2):
                    return self
            except OSError:
                await asyncio.sleep(0.05)
        raise AssertionError("nginx did not start listening")

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
