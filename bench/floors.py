"""The floors of the gRPC front door: two bare echo servers with nothing of the runtime in them.

``python -m bench.floors aio|sync PORT REPLY_BYTES CHUNKS CHUNK_BYTES`` serves two generic
(bytes in, bytes out) methods on 127.0.0.1:PORT and prints ``ready`` once it listens:

- ``/floor.Echo/Unary`` answers every request with REPLY_BYTES bytes (the size of a real
  ``GenerateResponse``), so the write costs what the real reply's write costs;
- ``/floor.Echo/Stream`` answers with CHUNKS messages of CHUNK_BYTES bytes (a real stream's shape).

``aio``: ``grpc.aio`` on uvloop, the way the runtime serves. ``sync``: the synchronous
``grpc.server`` with a thread pool. The doors scenario runs both beside the runtime in the same
run: what the runtime spends per call above these figures is its own work, not grpc's.
"""

from __future__ import annotations

import sys
from concurrent import futures

import grpc

UNARY = "/floor.Echo/Unary"
STREAM = "/floor.Echo/Stream"


def _options() -> list[tuple[str, int]]:
    return [("grpc.so_reuseport", 0), ("grpc.max_concurrent_streams", 1000)]


def serve_aio(port: int, reply: bytes, chunk: bytes, chunks: int) -> None:

    import uvloop

    async def unary(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return reply

    async def stream(request: bytes, context: grpc.aio.ServicerContext):
        for _ in range(chunks):
            yield chunk

    handler = grpc.method_handlers_generic_handler("floor.Echo", {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Stream": grpc.unary_stream_rpc_method_handler(stream),
    })

    async def main() -> None:
        server = grpc.aio.server(options=_options())
        server.add_generic_rpc_handlers((handler,))
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        print("ready", flush=True)
        await server.wait_for_termination()

    uvloop.run(main())


def serve_sync(port: int, reply: bytes, chunk: bytes, chunks: int) -> None:
    def unary(request: bytes, context: grpc.ServicerContext) -> bytes:
        return reply

    def stream(request: bytes, context: grpc.ServicerContext):
        for _ in range(chunks):
            yield chunk

    handler = grpc.method_handlers_generic_handler("floor.Echo", {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Stream": grpc.unary_stream_rpc_method_handler(stream),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), options=_options())
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print("ready", flush=True)
    server.wait_for_termination()


def main(argv: list[str]) -> None:
    kind, port, reply_bytes, chunks, chunk_bytes = argv[0], *(int(a) for a in argv[1:5])
    # Payload bytes of the gRPC frames (the 5-byte frame header is grpc's own).
    reply, chunk = b"r" * max(0, reply_bytes - 5), b"c" * max(0, chunk_bytes - 5)
    {"aio": serve_aio, "sync": serve_sync}[kind](port, reply, chunk, chunks)


if __name__ == "__main__":
    main(sys.argv[1:])
