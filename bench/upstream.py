"""The fixed-cost upstreams: Debian's nginx serving canned OpenAI responses, and a tiny
asyncio TCP upstream that records when connections close (for cancellation latency).

nginx layout (all under one temporary prefix the harness writes and deletes):

    POST /v1/chat/completions          canned chat.completion JSON
    POST /v1/embeddings                canned embeddings JSON (base64 float32 vectors)
    POST /stream/v1/chat/completions   canned SSE: chat.completion.chunk events, usage, [DONE]
    POST /slow/v1/chat/completions     the same shape, rate-limited so it stays open for minutes

The runtime appends /v1 to ``openai_api_base``, so a scenario picks its response by base URL:
``http://127.0.0.1:PORT`` (unary, embeddings), ``.../stream`` or ``.../slow``. nginx refuses POST
on static files with 405; ``error_page 405 =200 $uri`` re-serves the file as a 200, the usual trick.

Run ``python -m bench.upstream cancel`` for the cancellation upstream: it prints one JSON line
per event (listening, open, closed) with CLOCK_MONOTONIC times, comparable across processes.
"""

from __future__ import annotations

import array
import asyncio
import base64
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODEL = "gpt-4o-mini"
EMBED_MODEL = "text-embedding-3-small"
CHAT_CONTENT = "Hello! This is a canned benchmark reply from the fixed-cost upstream."
CHAT_USAGE = {"prompt_tokens": 9, "completion_tokens": 14, "total_tokens": 23}
STREAM_PIECE = "tok "  # one content delta per chunk
EMBED_DIMS = 1536
EMBED_TOKENS = 8


# ----------------------------------------------------------------------------- tools


def ensure_tools(tools: dict[str, str]) -> None:
    """Install Debian packages for missing binaries ({binary: package}); we run as root."""
    missing = {pkg for binary, pkg in tools.items() if not find_binary(binary)}
    if not missing:
        return
    print(f"[bench] installing {' '.join(sorted(missing))} (apt-get)", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)
    install = [*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends"]
    if subprocess.run([*install, *sorted(missing)], env=env, stdout=subprocess.DEVNULL, check=False).returncode:
        # nginx-light is gone from newer Debian releases: the plain package works the same here.
        fallback = sorted({"nginx" if p == "nginx-light" else p for p in missing})
        subprocess.run([*install, *fallback], check=True, env=env, stdout=subprocess.DEVNULL)
    still = [b for b in tools if not find_binary(b)]
    if still:
        raise SystemExit(f"bench: still missing after apt-get: {', '.join(still)}")


def find_binary(name: str) -> str | None:
    return shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.access(p, os.X_OK)), None
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(cmd: list[str], cpus: set[int] | None) -> list[str]:
    """``cmd`` run through taskset on ``cpus`` (None: as is). Children of the harness inherit its
    own pinning, so only the server, which sits on other CPUs, needs this."""
    taskset = shutil.which("taskset")
    if not cpus or not taskset:
        return cmd
    return [taskset, "-c", ",".join(str(c) for c in sorted(cpus)), *cmd]


def rss_bytes(pid: int) -> int:
    """Resident set size of one process (VmRSS), 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def pss_bytes(pid: int) -> int:
    """Proportional set size (shared pages split between sharers), 0 when unavailable."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


# ----------------------------------------------------------------------------- canned bodies


def chat_completion() -> bytes:
    return json.dumps({
        "id": "chatcmpl-bench0001", "object": "chat.completion", "created": 1700000000,
        "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_bench",
        "choices": [{"index": 0, "logprobs": None, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": CHAT_CONTENT, "refusal": None}}],
        "usage": {**CHAT_USAGE, "prompt_tokens_details": {"cached_tokens": 0},
                  "completion_tokens_details": {"reasoning_tokens": 0}},
    }, separators=(",", ":")).encode()


def _chunk(delta: dict, finish: str | None = None, usage: dict | None = None, choices: bool = True) -> bytes:
    body: dict = {"id": "chatcmpl-bench0002", "object": "chat.completion.chunk", "created": 1700000000,
                  "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_bench",
                  "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
                  if choices else []}
    if usage is not None:
        body["usage"] = usage
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


def sse_head() -> bytes:
    return _chunk({"role": "assistant", "content": "", "refusal": None})


def sse_piece() -> bytes:
    return _chunk({"content": STREAM_PIECE})


def sse_tail(pieces: int) -> bytes:
    usage = {"prompt_tokens": 9, "completion_tokens": pieces, "total_tokens": 9 + pieces}
    return _chunk({}, "stop") + _chunk({}, usage=usage, choices=False) + b"data: [DONE]\n\n"


def sse_stream(pieces: int) -> bytes:
    return sse_head() + sse_piece() * pieces + sse_tail(pieces)


def embedding_vector() -> list[float]:
    raw = [math.sin(i * 0.37) + 0.5 for i in range(EMBED_DIMS)]
    norm = math.sqrt(sum(v * v for v in raw))
    return [v / norm for v in raw]


def embeddings(batch: int) -> bytes:
    vec = array.array("f", embedding_vector())
    if sys.byteorder != "little":
        vec.byteswap()
    encoded = base64.b64encode(vec.tobytes()).decode()
    return json.dumps({
        "object": "list", "model": EMBED_MODEL,
        "data": [{"object": "embedding", "index": i, "embedding": encoded} for i in range(batch)],
        "usage": {"prompt_tokens": EMBED_TOKENS * batch, "total_tokens": EMBED_TOKENS * batch},
    }, separators=(",", ":")).encode()


# ----------------------------------------------------------------------------- nginx

_NGINX_CONF = """\
worker_processes 1;
worker_rlimit_nofile 20000;
daemon off;
master_process on;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 16384; multi_accept on; }}
http {{
    access_log off;
    sendfile on;
    tcp_nodelay on;
    keepalive_timeout 120s;
    keepalive_requests 100000000;
    client_body_buffer_size 1m;
    client_max_body_size 16m;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    types {{ }}
    etag off;
    server_tokens off;
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        root {prefix}/www;
        error_page 405 =200 $uri;
        location /v1/ {{ default_type application/json; }}
        location /stream/ {{ default_type text/event-stream; }}
        location /slow/ {{
            default_type text/event-stream;
            sendfile off;
            limit_rate_after {slow_after};
            limit_rate {slow_rate};
        }}
    }}
}}
"""


class Nginx:
    """nginx with a generated config on a random free port, started and stopped by us."""

    def __init__(self, stream_pieces: int, embed_batch: int, cpus: set[int] | None = None) -> None:
        self.stream_pieces = stream_pieces
        self.embed_batch = embed_batch
        self.cpus = cpus
        self.port = 0
        self.prefix = Path(tempfile.mkdtemp(prefix="modelruntime-bench-nginx-"))
        self.proc: subprocess.Popen | None = None
        self.bodies: dict[str, bytes] = {}

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _write(self) -> None:
        os.chmod(self.prefix, 0o755)  # workers run as nobody when we are root
        slow_head = sse_head() + sse_piece()
        # ~3 minutes of pieces at 60 B/s: far longer than the open-streams scenario holds them.
        slow = slow_head + sse_piece() * 64 + sse_tail(65)
        self.bodies = {
            "v1/chat/completions": chat_completion(),
            "v1/embeddings": embeddings(self.embed_batch),
            "stream/v1/chat/completions": sse_stream(self.stream_pieces),
            "slow/v1/chat/completions": slow,
        }
        for rel, body in self.bodies.items():
            path = self.prefix / "www" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)
        for d in ("tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"):
            (self.prefix / d).mkdir(parents=True, exist_ok=True)
        for root, dirs, files in os.walk(self.prefix):
            for name in dirs:
                os.chmod(os.path.join(root, name), 0o755)
            for name in files:
                os.chmod(os.path.join(root, name), 0o644)
        conf = _NGINX_CONF.format(prefix=self.prefix, port=self.port, slow_after=len(slow_head), slow_rate=60)
        (self.prefix / "nginx.conf").write_text(conf)

    def start(self) -> Nginx:
        binary = find_binary("nginx")
        if not binary:
            raise SystemExit("bench: nginx is not installed")
        for _ in range(5):
            self.port = free_port()
            self._write()
            self.proc = subprocess.Popen(
                pinned([binary, "-p", str(self.prefix), "-c", str(self.prefix / "nginx.conf"),
                        "-e", str(self.prefix / "error.log")], self.cpus),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )
            if _wait_port(self.port, self.proc):
                return self
            err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
            self.proc.wait()
            if "Address already in use" not in err:
                raise SystemExit(f"bench: nginx failed to start: {err.strip()}")
        raise SystemExit("bench: nginx could not get a free port")

    def worker_pids(self) -> list[int]:
        return children(self.proc.pid) if self.proc else []

    def rss(self) -> int:
        """RSS of master + workers."""
        if not self.proc:
            return 0
        return rss_bytes(self.proc.pid) + sum(rss_bytes(p) for p in self.worker_pids())

    def cpu(self) -> float:
        if not self.proc:
            return 0.0
        return cpu_seconds(self.proc.pid) + sum(cpu_seconds(p) for p in self.worker_pids())

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful; TERM below if it lingers
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                self.proc.wait(5)
        shutil.rmtree(self.prefix, ignore_errors=True)


def _wait_port(port: int, proc: subprocess.Popen, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


# ----------------------------------------------------------------------------- cancel upstream


class CancelUpstream:
    """Harness side of the close-recording upstream (a subprocess of ``python -m bench.upstream``)."""

    def __init__(self, cpus: set[int] | None = None) -> None:
        self.cpus = cpus
        self.port = 0
        self.proc: asyncio.subprocess.Process | None = None
        self.events: asyncio.Queue[dict] = asyncio.Queue()
        self._reader: asyncio.Task | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> CancelUpstream:
        self.proc = await asyncio.create_subprocess_exec(
            *pinned([sys.executable, "-m", "bench.upstream", "cancel"], self.cpus),
            stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL,
            cwd=str(Path(__file__).resolve().parent.parent),
        )
        assert self.proc.stdout is not None
        first = json.loads(await asyncio.wait_for(self.proc.stdout.readline(), 15))
        self.port = int(first["port"])
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.proc and self.proc.stdout
        async for line in self.proc.stdout:
            try:
                await self.events.put(json.loads(line))
            except ValueError:
                continue

    async def next_event(self, kind: str, timeout: float = 5.0) -> dict:
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no '{kind}' event from the cancel upstream")
            event = await asyncio.wait_for(self.events.get(), left)
            if event.get("event") == kind:
                return event

    def drain(self) -> None:
        while not self.events.empty():
            self.events.get_nowait()

    async def stop(self) -> None:
        if self.proc and self.proc.returncode is None:
            self.proc.terminate()
            await self.proc.wait()
        if self._reader:
            self._reader.cancel()


async def _cancel_upstream_main() -> None:
    """Serve an endless SSE stream per request; print open/closed events with monotonic times."""
    counter = 0
    out = sys.stdout

    def emit(**event) -> None:
        out.write(json.dumps(event) + "\n")
        out.flush()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal counter
        counter += 1
        conn = counter
        emit(event="open", id=conn, t=time.monotonic())
        closed = asyncio.Event()

        async def watch() -> None:
            try:
                while await reader.read(65536):
                    pass
            except OSError:
                pass
            if not closed.is_set():
                closed.set()
                emit(event="closed", id=conn, t=time.monotonic())

        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError, ValueError):
            writer.close()
            return
        watcher = asyncio.create_task(watch())
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        try:
            for event in (sse_head(), sse_piece()):
                writer.write(b"%x\r\n%s\r\n" % (len(event), event))
            await writer.drain()
            emit(event="first", id=conn, t=time.monotonic())
            while not closed.is_set():  # keep the stream alive until the peer goes away
                try:
                    await asyncio.wait_for(closed.wait(), 0.05)
                except TimeoutError:
                    event = sse_piece()
                    writer.write(b"%x\r\n%s\r\n" % (len(event), event))
                    await writer.drain()
        except OSError:
            pass
        if not closed.is_set():
            closed.set()
            emit(event="closed", id=conn, t=time.monotonic())
        watcher.cancel()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    emit(event="listening", port=server.sockets[0].getsockname()[1])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    if sys.argv[1:] == ["cancel"]:
        asyncio.run(_cancel_upstream_main())
    else:
        raise SystemExit("usage: python -m bench.upstream cancel")
