"""Shared pieces of the OpenAI mock: the model table, API errors, and a per-request context that
sends JSON and SSE replies with the scenario modifiers applied."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .httpserver import Request, Response
from .openai_scenarios import Scenario
from .sse import SSEWriter, StreamStyle, encode_event, encode_json

if TYPE_CHECKING:
    from .openai_mock import OpenAIMock


@dataclass(frozen=True)
class ModelInfo:
    id: str
    kind: str  # chat | completion | embedding | transcription | tts | moderation
    owned_by: str = "system"
    created: int = 1_700_000_000
    snapshot: str | None = None  # what replies report as "model" (real API answers with a snapshot)
    dimensions: int | None = None  # embeddings: default (and maximum) dimensions
    reasoning: bool = False  # o-series: rejects max_tokens, reports reasoning tokens


DEFAULT_MODELS: tuple[ModelInfo, ...] = (
    ModelInfo("gpt-4o", "chat", snapshot="gpt-4o-2024-08-06", created=1715367049),
    ModelInfo("gpt-4o-mini", "chat", snapshot="gpt-4o-mini-2024-07-18", created=1721172741),
    ModelInfo("gpt-4.1", "chat", snapshot="gpt-4.1-2025-04-14", created=1744316542),
    ModelInfo("gpt-4.1-mini", "chat", snapshot="gpt-4.1-mini-2025-04-14", created=1744318173),
    ModelInfo("gpt-3.5-turbo", "chat", owned_by="openai", snapshot="gpt-3.5-turbo-0125", created=1677610602),
    ModelInfo("o3-mini", "chat", snapshot="o3-mini-2025-01-31", created=1737146383, reasoning=True),
    ModelInfo("o1", "chat", snapshot="o1-2024-12-17", created=1734375816, reasoning=True),
    ModelInfo("gpt-3.5-turbo-instruct", "completion", created=1692901427),
    ModelInfo("davinci-002", "completion", created=1692634301),
    ModelInfo("babbage-002", "completion", created=1692634615),
    ModelInfo("text-embedding-3-small", "embedding", created=1705948997, dimensions=1536),
    ModelInfo("text-embedding-3-large", "embedding", created=1705953180, dimensions=3072),
    ModelInfo("text-embedding-ada-002", "embedding", owned_by="openai-internal", created=1671217299,
              dimensions=1536),
    ModelInfo("whisper-1", "transcription", owned_by="openai-internal", created=1677532384),
    ModelInfo("gpt-4o-transcribe", "transcription", created=1742068463),
    ModelInfo("gpt-4o-mini-transcribe", "transcription", created=1742068596),
    ModelInfo("tts-1", "tts", owned_by="openai-internal", created=1681940951),
    ModelInfo("tts-1-hd", "tts", created=1699046015),
    ModelInfo("gpt-4o-mini-tts", "tts", created=1742403959),
    ModelInfo("omni-moderation-latest", "moderation", snapshot="omni-moderation-2024-09-26", created=1731689265),
    ModelInfo("text-moderation-latest", "moderation", snapshot="text-moderation-007", created=1721246000),
)


class ApiError(Exception):
    """Raised by route handlers; rendered as OpenAI's {"error": {...}} body."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers or {}


def error_body(message: str, type: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def html_page(code: int, reason: str) -> str:
    return (f"<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n"
            f"<center><h1>{code} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")


def approx_tokens(text: str) -> int:
    """The mock's tokenizer: one token per 4 characters, rounded up."""
    return math.ceil(len(text) / 4) if text else 0


def new_id(prefix: str, n: int = 29) -> str:
    return prefix + (uuid.uuid4().hex + uuid.uuid4().hex)[:n]


@dataclass
class Ctx:
    """One request being served."""

    mock: OpenAIMock
    req: Request
    resp: Response
    sc: Scenario
    request_id: str

    # ------------------------------------------------------------------ headers
    def base_headers(self, content_type: str | None = "application/json") -> dict[str, str]:
        m = self.mock
        h: dict[str, str] = {}
        if content_type:
            h["content-type"] = content_type
        h["x-request-id"] = self.request_id
        h["openai-version"] = "2020-10-01"
        h["openai-processing-ms"] = "7"
        h["openai-organization"] = self.req.headers.get("openai-organization") or m.organization or "user-mock"
        if "openai-project" in self.req.headers:
            h["openai-project"] = self.req.headers["openai-project"]
        h["access-control-expose-headers"] = "X-Request-ID"
        h.update({
            "x-ratelimit-limit-requests": "10000",
            "x-ratelimit-remaining-requests": "9999",
            "x-ratelimit-reset-requests": "6ms",
            "x-ratelimit-limit-tokens": "30000000",
            "x-ratelimit-remaining-tokens": "29999000",
            "x-ratelimit-reset-tokens": "2ms",
        })
        return h

    # ------------------------------------------------------------------ plain replies
    async def error(self, err: ApiError) -> None:
        await self.resp.send(err.status, {**self.base_headers(), **err.headers},
                             encode_json(error_body(err.message, err.type, err.param, err.code)))

    async def send_json(self, obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        await self.send_body(encode_json(obj), status, "application/json", headers)

    async def send_body(self, body: bytes, status: int = 200, content_type: str | None = "application/json",
                        headers: dict[str, str] | None = None) -> None:
        """A Content-Length reply, with slow_first_byte / hang / truncate_after applied."""
        h = {**self.base_headers(content_type), **(headers or {})}
        if await self._before_headers():
            return
        if (hg := self.sc.get("hang")) is not None:
            if hg["send_headers"]:
                await self.resp.start(status, h)
            await self.resp.wait_disconnected(hg["max_seconds"])
            await self.resp.abort()
            return
        if (tr := self.sc.get("truncate_after")) is not None:
            await self.resp.send_truncated(status, h, body, len(body) // 2, rst=tr["rst"])
            return
        await self.resp.send(status, h, body)

    async def _before_headers(self) -> bool:
        sfb = self.sc.get("slow_first_byte")
        return bool(sfb is not None and not sfb["headers_first"] and await self.resp.wait_disconnected(sfb["seconds"]))

    # ------------------------------------------------------------------ streams
    def style(self) -> StreamStyle:
        st = self.sc.get("stream_style")
        return st["style"] if st is not None else self.mock.stream_style

    async def stream(self, chunks: list[Any], done: bool = True) -> None:
        """Send `chunks` as `data:` events (then [DONE]) with the stream scenario effects applied."""
        sc = self.sc
        h = self.base_headers("text/event-stream; charset=utf-8")
        h["cache-control"] = "no-cache, must-revalidate"
        if await self._before_headers():
            return
        await self.resp.start(200, h)
        sse = SSEWriter(self.resp, self.style())
        sfb = sc.get("slow_first_byte")
        if sfb is not None and sfb["headers_first"]:
            await asyncio.sleep(sfb["seconds"])
        if (hg := sc.get("hang")) is not None:
            await self.resp.wait_disconnected(hg["max_seconds"])
            await self.resp.abort()
            return
        err, trunc = sc.get("stream_error_after"), sc.get("truncate_after")
        interval = (sc.get("slow_stream") or {}).get("interval", 0.0)
        for i, chunk in enumerate([*chunks, None]):
            if err is not None and i == err["n"]:
                await sse.event({"error": {"message": err["message"], "type": err["type"],
                                           "param": None, "code": err["code"]}})
                if err["done"]:
                    await sse.event("[DONE]")
                await sse.close()
                return
            if trunc is not None and i == trunc["n"]:
                await sse.flush()
                if trunc["mid_line"]:
                    nxt = encode_event(chunk if chunk is not None else "[DONE]", sse.style)
                    await sse.raw(nxt[: max(len(nxt) // 2, 8)])
                if trunc["clean_eof"]:
                    await self.resp.end()
                else:
                    await self.resp.abort(rst=trunc["rst"])
                return
            if chunk is None:
                break
            await sse.event(chunk)
            if interval:
                await sse.flush()
                await asyncio.sleep(interval)
        if done:
            await sse.event("[DONE]")
        await sse.close()


def now() -> int:
    return int(time.time())
