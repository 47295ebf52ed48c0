"""Small measuring clients: gRPC requests and checks (grpc.aio), and a raw asyncio HTTP/1.1
client for the direct-to-upstream side of the same measurements (TTFT, open streams, cancel).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass

import grpc
from google.protobuf import struct_pb2
from modelruntime.v1 import common_pb2, llm_service_pb2, llm_service_pb2_grpc
from modelruntime.v1 import text_embedding_service_pb2 as emb_pb
from modelruntime.v1 import text_embedding_service_pb2_grpc as emb_grpc

from . import upstream as up
from .sut import API_KEY

PROMPT = "hello"
GENERATE = "/modelruntime.v1.LLMService/Generate"
STREAM_GENERATE = "/modelruntime.v1.LLMService/StreamGenerate"
EMBED = "/modelruntime.v1.TextEmbeddingService/Embed"


def target(base: str, model: str = up.MODEL) -> common_pb2.ModelTarget:
    creds = struct_pb2.Struct()
    creds.update({"openai_api_key": API_KEY, "openai_api_base": base})
    return common_pb2.ModelTarget(provider="openai", model=model, credentials=creds)


def _messages() -> list[llm_service_pb2.Message]:
    return [llm_service_pb2.Message(role=llm_service_pb2.ROLE_USER,
                                    content=[llm_service_pb2.ContentPart(text=PROMPT)])]


def generate_request(base: str) -> llm_service_pb2.GenerateRequest:
    return llm_service_pb2.GenerateRequest(target=target(base), messages=_messages())


def stream_request(base: str) -> llm_service_pb2.StreamGenerateRequest:
    return llm_service_pb2.StreamGenerateRequest(target=target(base), messages=_messages())


def embed_request(base: str, batch: int) -> emb_pb.EmbedRequest:
    return emb_pb.EmbedRequest(target=target(base, up.EMBED_MODEL),
                               texts=[f"benchmark text number {i}" for i in range(batch)])


# The bodies the runtime itself sends upstream for those requests (the direct baseline's request).
def direct_chat_body(stream: bool = False) -> bytes:
    body: dict = {"model": up.MODEL, "messages": [{"role": "user", "content": PROMPT}]}
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
    return json.dumps(body).encode()


def direct_embed_body(batch: int) -> bytes:
    return json.dumps({"model": up.EMBED_MODEL, "encoding_format": "base64",
                       "input": [f"benchmark text number {i}" for i in range(batch)]}).encode()


DIRECT_HEADERS = ["content-type: application/json", f"authorization: Bearer {API_KEY}"]


def channel(addr: str, own_connection: bool = False) -> grpc.aio.Channel:
    options = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]
    if own_connection:
        options.append(("grpc.use_local_subchannel_pool", 1))
    return grpc.aio.insecure_channel(addr, options=options)


def frame_len(message) -> int:
    return 5 + message.ByteSize()


# ----------------------------------------------------------------------------- correctness checks


class CheckFailed(Exception):
    pass


async def check_generate(addr: str, base: str, metadata: tuple = ()) -> dict:
    async with channel(addr) as ch:
        reply = await llm_service_pb2_grpc.LLMServiceStub(ch).Generate(generate_request(base), timeout=10,
                                                                       metadata=metadata or None)
    problems = []
    if reply.message.content != up.CHAT_CONTENT:
        problems.append(f"content {reply.message.content!r}")
    if reply.finish_reason != llm_service_pb2.FINISH_REASON_STOP:
        problems.append(f"finish_reason {reply.finish_reason}")
    if reply.usage.total_tokens != up.CHAT_USAGE["total_tokens"]:
        problems.append(f"usage.total_tokens {reply.usage.total_tokens}")
    if problems:
        raise CheckFailed("Generate returned " + ", ".join(problems))
    return {"grpc_status": "OK", "response_frame_bytes": frame_len(reply)}


async def check_stream(addr: str, base: str, pieces: int) -> dict:
    async with channel(addr) as ch:
        chunks = [c async for c in llm_service_pb2_grpc.LLMServiceStub(ch).StreamGenerate(
            stream_request(base), timeout=10)]
    text = "".join(c.delta.content for c in chunks)
    problems = []
    if text != up.STREAM_PIECE * pieces:
        problems.append(f"content of {len(text)} chars, expected {len(up.STREAM_PIECE) * pieces}")
    last = chunks[-1] if chunks else None
    if last is None or last.usage.completion_tokens != pieces:
        problems.append("no usage with the upstream's completion_tokens on the final chunk")
    if not any(c.finish_reason == llm_service_pb2.FINISH_REASON_STOP for c in chunks):
        problems.append("no FINISH_REASON_STOP")
    if problems:
        raise CheckFailed("StreamGenerate returned " + ", ".join(problems))
    return {"grpc_status": "OK", "chunks": len(chunks), "response_frame_bytes": sum(frame_len(c) for c in chunks)}


async def check_embed(addr: str, base: str, batch: int) -> dict:
    async with channel(addr) as ch:
        reply = await emb_grpc.TextEmbeddingServiceStub(ch).Embed(embed_request(base, batch), timeout=10)
    expected = up.embedding_vector()
    problems = []
    if len(reply.embeddings) != batch:
        problems.append(f"{len(reply.embeddings)} vectors for {batch} texts")
    elif any(len(e.values) != up.EMBED_DIMS for e in reply.embeddings):
        problems.append("vectors of the wrong size")
    elif max(abs(a - b) for a, b in zip(reply.embeddings[0].values, expected)) > 1e-5:
        problems.append("vector values differ from the canned ones")
    if problems:
        raise CheckFailed("Embed returned " + ", ".join(problems))
    return {"grpc_status": "OK", "response_frame_bytes": frame_len(reply)}


# ----------------------------------------------------------------------------- streaming timings


@dataclass
class StreamTiming:
    ttft_ms: float
    total_ms: float
    chunks: int
    gaps_ms: list[float]


async def grpc_stream_timings(addr: str, base: str, count: int, max_s: float) -> list[StreamTiming]:
    """Sequential StreamGenerate calls (c=1): time to first chunk, total, gaps between chunks."""
    out: list[StreamTiming] = []
    end = time.perf_counter() + max_s
    async with channel(addr) as ch:
        stub = llm_service_pb2_grpc.LLMServiceStub(ch)
        request = stream_request(base)
        for _ in range(count):
            if time.perf_counter() > end:
                break
            t0 = time.perf_counter()
            stamps = []
            async for _chunk in stub.StreamGenerate(request, timeout=10):
                stamps.append(time.perf_counter())
            out.append(StreamTiming((stamps[0] - t0) * 1e3, (stamps[-1] - t0) * 1e3, len(stamps),
                                    [(b - a) * 1e3 for a, b in itertools.pairwise(stamps)]))
    return out


class RawHTTP:
    """A keep-alive HTTP/1.1 connection that POSTs and reads a Content-Length or chunked body."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> RawHTTP:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def send(self, path: str, body: bytes) -> None:
        assert self.writer
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
                f"Authorization: Bearer {API_KEY}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        self.writer.write(head + body)
        await self.writer.drain()

    async def read_head(self) -> tuple[int, dict[str, str]]:
        assert self.reader
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        return status, headers

    async def first_data(self) -> bytes:
        """Read until the first SSE ``data:`` line has arrived (TTFT on the direct path)."""
        assert self.reader
        buf = b""
        while b"data:" not in buf or b"\n\n" not in buf:
            chunk = await self.reader.read(65536)
            if not chunk:
                raise ConnectionError("closed before the first event")
            buf += chunk
        return buf

    def close(self) -> None:
        if self.writer:
            self.writer.close()


async def direct_stream_timings(base_host: str, port: int, path: str, count: int, max_s: float) -> list[StreamTiming]:
    """The same sequential streams straight to nginx: time to first ``data:`` and to the end."""
    out: list[StreamTiming] = []
    body = direct_chat_body(stream=True)
    conn = await RawHTTP(base_host, port).connect()
    end = time.perf_counter() + max_s
    try:
        for _ in range(count):
            if time.perf_counter() > end:
                break
            t0 = time.perf_counter()
            await conn.send(path, body)
            _status, headers = await conn.read_head()
            length = int(headers.get("content-length", "0"))
            assert conn.reader
            got = await conn.reader.read(length)
            t1 = time.perf_counter()
            while len(got) < length:
                got += await conn.reader.read(length - len(got))
            t2 = time.perf_counter()
            out.append(StreamTiming((t1 - t0) * 1e3, (t2 - t0) * 1e3, got.count(b"data:"), []))
    finally:
        conn.close()
    return out
