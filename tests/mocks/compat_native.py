"""Native endpoints that two OpenAI-compatible providers serve beside their compatible API, for
:class:`~tests.mocks.compat_mock.DialectMock` (providers.md B12, B15 and Part C).

DashScope (``Dialect.native == "dashscope"``), under ``/api/v1/services/``:

- ``rerank/text-rerank/text-rerank``: ``{"model", "input": {"query", "documents"}, "parameters":
  {"top_n", "return_documents"}}`` → ``{"output": {"results": [{"index", "relevance_score",
  "document"?}]}, "usage": {"total_tokens"}, "request_id"}``, results sorted by score;
- ``aigc/multimodal-generation/generation`` (Qwen-TTS): ``{"model", "input": {"text", "voice"}}``.
  With ``X-DashScope-SSE: enable`` it streams ``id:N`` / ``event:result`` / ``:HTTP_STATUS/200`` /
  ``data:{...}`` events (no space after the colons, each event split across two writes, no
  ``[DONE]``) whose ``output.audio.data`` is base64 of 24 kHz PCM, ending with
  ``finish_reason:"stop"`` and the URL of the whole file; without it, one JSON reply naming
  ``output.audio.url``, a WAV file served by ``GET /oss/...``.
- Errors ``{"code", "message", "request_id"}``: 401 ``InvalidApiKey``, 400 ``InvalidParameter``
  (unknown model or voice, empty or too long input, more than 500 documents), 429
  ``Throttling.RateQuota`` (scenario :func:`dashscope_error`), and ``event:error`` mid-stream
  (scenario ``stream_error_after(n, message, code=...)``).

MiniMax (``Dialect.embedding_style == "minimax"``): ``POST /v1/embeddings[?GroupId=]``
``{"model": "embo-01", "texts", "type": "db"|"query"}`` → ``{"vectors", "total_tokens",
"base_resp": {"status_code": 0, "status_msg": "success"}}``; every error is HTTP 200 with
``base_resp.status_code`` 2013 (bad parameters) and ``vectors: null``.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from functools import cache
from typing import TYPE_CHECKING, Any

from engine.entities import ModelType
from engine.loader import load_provider
from providers import DEFINITIONS

from .openai_common import Ctx, approx_tokens
from .openai_media import SAMPLE_RATE, encode_audio, expected_embedding, pcm_for
from .openai_scenarios import RESPONSE_EFFECTS, status

if TYPE_CHECKING:
    from .compat_mock import DialectMock

SERVICES = "/api/v1/services"
RERANK_PATH = SERVICES + "/rerank/text-rerank/text-rerank"
TTS_PATH = SERVICES + "/aigc/multimodal-generation/generation"
MAX_DOCUMENTS = 500
MAX_TTS_CHARS = 600
PCM_EVENT_BYTES = SAMPLE_RATE * 2 // 10  # 0.1 s of audio per event


class DashScopeError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def dashscope_error(status_code: int, code: str, message: str, path: str | None = None) -> Any:
    """Scenario: the next matching request gets this DashScope error object."""
    return status(status_code, body={"code": code, "message": message, "request_id": str(uuid.uuid4())},
                  path=path)


def throttled(path: str | None = None) -> Any:
    return dashscope_error(429, "Throttling.RateQuota", "Requests rate limit exceeded, please try again later.",
                           path=path)


def overlap_scores(query: str, docs: list[str]) -> list[float]:
    """The mocks' relevance: the share of the query's words a document contains."""
    words = set(query.lower().split())
    return [len(words & set(doc.lower().split())) / max(len(words), 1) for doc in docs]


def billed_chars(text: str) -> int:
    """Qwen3-TTS counts a CJK character as two."""
    return sum(2 if "\u2e80" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af" else 1 for ch in text)


@cache
def tts_voices(provider: str) -> dict[str, frozenset[str]]:
    schema = load_provider(DEFINITIONS / provider)
    return {m.model: frozenset(str(v["mode"]) for v in m.model_properties.get("voices") or ())
            for m in schema.models.get(ModelType.TTS, [])}


def _event(n: int, obj: dict[str, Any], event: str = "result", status_code: int = 200) -> bytes:
    data = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return f"id:{n}\nevent:{event}\n:HTTP_STATUS/{status_code}\ndata:{data}\n\n".encode()


class DashScopeNative:
    """DashScope's native API on the tongyi DialectMock (same keys, same scenario queue)."""

    def __init__(self, mock: DialectMock) -> None:
        self.mock = mock
        self.files: dict[str, bytes] = {}  # OSS object path → WAV bytes of unstreamed replies

    @staticmethod
    def handles(path: str) -> bool:
        return path.startswith((SERVICES + "/", "/oss/"))

    async def handle(self, req: Any, resp: Any) -> None:
        mock = self.mock
        ctx = Ctx(mock, req, resp, mock._take(req, req.path), str(uuid.uuid4()))
        if req.method == "GET" and req.path.startswith("/oss/"):  # signed object URLs: no key
            wav = self.files.get(req.path)
            await resp.send(200 if wav else 404, {"content-type": "audio/wav" if wav else "application/xml"},
                            wav or b"<Error><Code>NoSuchKey</Code></Error>")
            return
        if any(e in ctx.sc for e in RESPONSE_EFFECTS):
            await mock._respond_with_scenario(ctx)
            return
        route = {RERANK_PATH: self._rerank, TTS_PATH: self._tts}.get(req.path) if req.method == "POST" else None
        try:
            if route is None:
                raise DashScopeError(404, "InvalidURL", f"Invalid URL ({req.method} {req.path})")
            self._auth(req)
            body = req.json
            if not isinstance(body, dict) or not isinstance(body.get("input"), dict):
                raise DashScopeError(400, "InvalidParameter", "Required body invalid, please check the request body.")
            await route(ctx, body)
        except DashScopeError as err:
            if not resp.started:
                await self._error(ctx, err)

    def _auth(self, req: Any) -> None:
        scheme, _, key = (req.headers.get("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or key.strip() not in self.mock.api_keys:
            raise DashScopeError(401, "InvalidApiKey", "Invalid API-key provided.")

    def _model(self, body: dict[str, Any], kind: str) -> str:
        model = str(body.get("model") or "")
        info = self.mock.models.get(model)
        if info is None or info.kind != kind:
            raise DashScopeError(400, "InvalidParameter", "Model not exist.")
        return model

    async def _error(self, ctx: Ctx, err: DashScopeError) -> None:
        body = {"code": err.code, "message": err.message, "request_id": ctx.request_id}
        await ctx.resp.send(err.status, {"content-type": "application/json"}, json.dumps(body).encode())

    async def _reply(self, ctx: Ctx, obj: dict[str, Any]) -> None:
        await ctx.resp.send(200, {"content-type": "application/json", "x-dashscope-request-id": ctx.request_id},
                            json.dumps({**obj, "request_id": ctx.request_id}).encode())

    # ------------------------------------------------------------------ rerank
    async def _rerank(self, ctx: Ctx, body: dict[str, Any]) -> None:
        self._model(body, "rerank")
        query, docs = body["input"].get("query"), body["input"].get("documents")
        if not isinstance(query, str) or not query:
            raise DashScopeError(400, "InvalidParameter", "query must not be empty")
        if not isinstance(docs, list) or not docs or not all(isinstance(d, str) for d in docs):
            raise DashScopeError(400, "InvalidParameter", "documents must be a non-empty list of strings")
        if len(docs) > MAX_DOCUMENTS:
            raise DashScopeError(400, "InvalidParameter", f"The number of documents exceeds {MAX_DOCUMENTS}.")
        params = body.get("parameters") or {}
        top_n = params.get("top_n") or len(docs)
        if not isinstance(top_n, int) or top_n < 1:
            raise DashScopeError(400, "InvalidParameter", "top_n must be a positive integer")
        scores = overlap_scores(query, docs)
        order = sorted(range(len(docs)), key=lambda i: -scores[i])[:top_n]
        results = []
        for i in order:
            item: dict[str, Any] = {"index": i, "relevance_score": round(scores[i], 6)}
            if params.get("return_documents"):
                item["document"] = {"text": docs[i]}
            results.append(item)
        tokens = approx_tokens(query) * len(docs) + sum(approx_tokens(d) for d in docs)
        await self._reply(ctx, {"output": {"results": results}, "usage": {"total_tokens": tokens}})

    # ------------------------------------------------------------------ Qwen-TTS
    async def _tts(self, ctx: Ctx, body: dict[str, Any]) -> None:
        model = self._model(body, "tts")
        text, voice = body["input"].get("text"), body["input"].get("voice")
        if not isinstance(text, str) or not text or billed_chars(text) > MAX_TTS_CHARS:
            raise DashScopeError(400, "InvalidParameter", f"Range of input length should be [1, {MAX_TTS_CHARS}]")
        if voice not in tts_voices(self.mock.dialect.provider).get(model, frozenset()):
            raise DashScopeError(400, "InvalidParameter", f"Voice '{voice}' is not supported by {model}.")
        pcm = pcm_for(text)
        audio_id = "audio_" + uuid.uuid4().hex
        expires = int(time.time()) + 86400
        obj_path = f"/oss/{uuid.uuid4().hex}/{audio_id}.wav"
        self.files[obj_path] = encode_audio(pcm, "wav")
        url = f"{self.mock.url}{obj_path}?Expires={expires}&OSSAccessKeyId=LTAI-mock&Signature=mock%3D"
        usage = {"characters": billed_chars(text)}
        sse = (ctx.req.headers.get("x-dashscope-sse") or "").lower() == "enable" or \
            "text/event-stream" in (ctx.req.headers.get("accept") or "")
        final = {"output": {"finish_reason": "stop",
                            "audio": {"data": "", "url": url, "id": audio_id, "expires_at": expires}},
                 "usage": usage}
        if not sse:
            await self._reply(ctx, final)
            return
        await ctx.resp.start(200, {"content-type": "text/event-stream;charset=UTF-8",
                                   "x-dashscope-request-id": ctx.request_id})
        err = ctx.sc.get("stream_error_after")
        pieces = [pcm[i:i + PCM_EVENT_BYTES] for i in range(0, len(pcm), PCM_EVENT_BYTES)]
        for n, piece in enumerate(pieces, start=1):
            if err is not None and n > err["n"]:
                error = {"code": err["code"], "message": err["message"], "request_id": ctx.request_id}
                await ctx.resp.write(_event(n, error, "error", 400))
                await ctx.resp.end()
                return
            event = _event(n, {"output": {"finish_reason": "null", "audio": {
                "data": base64.b64encode(piece).decode(), "id": audio_id, "expires_at": expires}},
                "usage": usage, "request_id": ctx.request_id})
            cut = len(event) // 2  # inside the base64: the client must reassemble the event
            await ctx.resp.write(event[:cut])
            await ctx.resp.write(event[cut:])
        await ctx.resp.write(_event(len(pieces) + 1, {**final, "request_id": ctx.request_id}))
        await ctx.resp.end()


# ---------------------------------------------------------------------------------------------- MiniMax


async def minimax_embeddings(ctx: Ctx) -> None:
    """MiniMax's embeddings: every failure is HTTP 200 with a base_resp code."""
    body = ctx.req.json

    async def fail(message: str) -> None:
        await ctx.resp.send(200, {"content-type": "application/json"}, json.dumps({
            "vectors": None, "total_tokens": 0, "base_resp": {"status_code": 2013, "status_msg": message}}).encode())

    info = ctx.mock.models.get(str(body.get("model") or ""))
    if info is None or info.kind != "embedding":
        await fail(f"invalid params, unknown model '{body.get('model')}'")
        return
    texts = body.get("texts")
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t for t in texts):
        await fail("invalid params, texts must be a non-empty list of strings")
        return
    if body.get("type") not in ("db", "query"):
        await fail("invalid params, type must be db or query")
        return
    await ctx.resp.send(200, {"content-type": "application/json", "trace-id": ctx.request_id}, json.dumps({
        "vectors": [expected_embedding(t, info.dimensions or 16) for t in texts],
        "total_tokens": sum(approx_tokens(t) for t in texts),
        "base_resp": {"status_code": 0, "status_msg": "success"},
    }).encode())
