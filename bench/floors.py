"""The floors of the gRPC front door: bare servers with nothing of the runtime in them.

``python -m bench.floors aio|sync PORT REPLY_BYTES CHUNKS CHUNK_BYTES [UPSTREAM_URL]`` serves
generic (bytes in, bytes out) methods on 127.0.0.1:PORT and prints ``ready`` once it listens:

- ``/floor.Echo/Unary`` answers every request with REPLY_BYTES bytes (the size of a real
  ``GenerateResponse``), so the write costs what the real reply's write costs;
- ``/floor.Echo/Stream`` answers with CHUNKS messages of CHUNK_BYTES bytes (a real stream's shape);
- ``/floor.Echo/Relay`` (with UPSTREAM_URL): before answering as ``Unary`` does, POSTs the direct
  chat request to UPSTREAM_URL with aiohttp (the runtime's egress client) on uvloop and reads the
  reply — the least any gateway that calls an upstream can do per call.

``aio``: ``grpc.aio`` on uvloop, the relay awaited on the server's loop. ``sync``: the synchronous
``grpc.server`` with a thread pool, the relay handed to a uvloop thread with
``run_coroutine_threadsafe`` (how the runtime's default ``grpc.mode: threads`` serves). The doors
scenario runs the echo floors beside the runtime in the same run; the unary scenario runs the relay
floors at one caller: what the runtime spends above these figures is its own work, not grpc's.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable, Coroutine
from concurrent import futures
from typing import Any

import grpc

UNARY = "/floor.Echo/Unary"
STREAM = "/floor.Echo/Stream"
RELAY = "/floor.Echo/Relay"
_CHAT = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}'


def _options() -> list[tuple[str, int]]:
    return [("grpc.so_reuseport", 0), ("grpc.max_concurrent_streams", 1000)]


def _relay(upstream: str, reply: bytes) -> tuple[Callable[[], Coroutine[Any, Any, None]], Callable[[], Coroutine[Any, Any, bytes]]]:
    """(open, relay): open makes the aiohttp session on the running loop; relay does one POST."""
    import aiohttp

    state: dict[str, aiohttp.ClientSession] = {}
    headers = {"content-type": "application/json", "authorization": "Bearer bench"}

    async def open_session() -> None:
        state["session"] = aiohttp.ClientSession()

    async def relay() -> bytes:
        async with state["session"].post(upstream, data=_CHAT, headers=headers) as resp:
            await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"upstream answered {resp.status}")
        return reply

    return open_session, relay


def serve_aio(port: int, reply: bytes, chunk: bytes, chunks: int, upstream: str) -> None:
    import uvloop

    async def unary(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return reply

    async def stream(request: bytes, context: grpc.aio.ServicerContext):
        for _ in range(chunks):
            yield chunk

    methods = {"Unary": grpc.unary_unary_rpc_method_handler(unary),
               "Stream": grpc.unary_stream_rpc_method_handler(stream)}
    open_session = None
    if upstream:
        open_session, relay = _relay(upstream, reply)

        async def relayed(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            return await relay()

        methods["Relay"] = grpc.unary_unary_rpc_method_handler(relayed)

    async def main() -> None:
        if open_session is not None:
            await open_session()
        server = grpc.aio.server(options=_options())
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("floor.Echo", methods),))
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        print("ready", flush=True)
        await server.wait_for_termination()

    uvloop.run(main())


def serve_sync(port: int, reply: bytes, chunk: bytes, chunks: int, upstream: str) -> None:
    def unary(request: bytes, context: grpc.ServicerContext) -> bytes:
        return reply

    def stream(request: bytes, context: grpc.ServicerContext):
        for _ in range(chunks):
            yield chunk

    methods = {"Unary": grpc.unary_unary_rpc_method_handler(unary),
               "Stream": grpc.unary_stream_rpc_method_handler(stream)}
    if upstream:
        import uvloop

        loop = uvloop.new_event_loop()
        threading.Thread(target=loop.run_forever, daemon=True).start()
        open_session, relay = _relay(upstream, reply)
        asyncio.run_coroutine_threadsafe(open_session(), loop).result()

        def relayed(request: bytes, context: grpc.ServicerContext) -> bytes:
            return asyncio.run_coroutine_threadsafe(relay(), loop).result()

        methods["Relay"] = grpc.unary_unary_rpc_method_handler(relayed)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), options=_options())
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("floor.Echo", methods),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print("ready", flush=True)
    server.wait_for_termination()


def main(argv: list[str]) -> None:
    kind, port, reply_bytes, chunks, chunk_bytes = argv[0], *(int(a) for a in argv[1:5])
    upstream = argv[5] if len(argv) > 5 else ""
    # Payload bytes of the gRPC frames (the 5-byte frame header is grpc's own).
    reply, chunk = b"r" * max(0, reply_bytes - 5), b"c" * max(0, chunk_bytes - 5)
    {"aio": serve_aio, "sync": serve_sync}[kind](port, reply, chunk, chunks, upstream)


if __name__ == "__main__":
    main(sys.argv[1:])
