"""A mock of one OpenAI-compatible provider, speaking the dialect described by a
:class:`~tests.mocks.compat_dialects.Dialect`.

It reuses OpenAIMock's request handlers (chat, completions, embeddings, audio, moderations)
and its scenario queue, and changes what differs between providers:

- URL layout: the path prefix (``/openai/v1``, ``/api/v1``, ``/inference/v1``,
  ``/api/paas/v4``), Azure's ``/openai/deployments/{deployment}/...?api-version=``;
- authentication: Bearer keys, Azure ``api-key`` or an Entra Bearer token, Zhipu raw keys or
  HS256 JWTs (checked: signature, millisecond ``exp``), optional keys on self-hosted servers;
- error bodies (OpenAI, OpenRouter numeric codes, Mistral, ``{"detail"}``, Zhipu business
  codes, Azure, NVIDIA problem+json);
- streams: where usage goes (``choices[0].usage``, ``x_groq.usage``, the last chunk, nowhere),
  ``: OPENROUTER PROCESSING`` comments, in-stream errors in the provider's shape, whole tool
  calls with 9-character ids (Mistral), Azure's empty first chunk with prompt_filter_results;
- extra endpoints: Jina-style ``/rerank``, NVIDIA ``/retrieval/nvidia/reranking``, Xinference
  ``GET /models/{uid}`` with ``model_ability``, Mistral moderations, provider TTS voices;
- native endpoints beside the compatible API (:mod:`.compat_native`): DashScope's rerank and
  Qwen-TTS, MiniMax's embeddings.

The end of the module is the test harness shared by the compatible-provider tests: a pool of
running mocks, the ``pool``/``upstream`` fixtures that point a provider's YAML URLs at its
mock, and what a request in each dialect must look like.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import string
import time
import uuid
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.helpers import point_options, target

from .compat_dialects import DIALECTS, ENTRA_TOKEN, Dialect, error_body, with_type
from .compat_native import RERANK_PATH, TTS_PATH, DashScopeNative, minimax_embeddings
from .openai_chat import chat_completions, completions
from .openai_common import ApiError, Ctx, approx_tokens, new_id
from .openai_media import embeddings, encode_audio, moderations, pcm_for, send_chunked, speech, transcriptions
from .openai_mock import OpenAIMock
from .openai_scenarios import NONE, RESPONSE_EFFECTS, Scenario, status
from .sse import SSEWriter

_PASSTHROUGH_EFFECTS = ("truncate_after", "hang", "slow_stream", "slow_first_byte", "stream_style")


def mistral_id(seed: str) -> str:
    """Mistral's tool-call ids: exactly 9 characters of [a-zA-Z0-9]."""
    alphabet = string.ascii_letters + string.digits
    digest = hashlib.sha256(seed.encode()).digest()
    return "".join(alphabet[b % len(alphabet)] for b in digest[:9])


def _check_mistral_ids(messages: Any) -> None:
    """Mistral's 400 for a tool-call id of another shape, in a call or in a tool result."""
    for i, m in enumerate(messages if isinstance(messages, list) else ()):
        ids = [c.get("id") for c in m.get("tool_calls") or ()] + (
            [m["tool_call_id"]] if "tool_call_id" in m else [])
        for call_id in ids:
            if not (isinstance(call_id, str) and re.fullmatch(r"[a-zA-Z0-9]{9}", call_id)):
                raise ApiError(400, f"Tool call id was {call_id} but must be a-z, A-Z, 0-9, with a length of 9.",
                               param=f"messages[{i}]")


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class DialectCtx(Ctx):
    """A request context whose errors and streams follow the provider's dialect."""

    @property
    def dialect(self) -> Dialect:
        return self.mock.dialect  # type: ignore[attr-defined]

    async def error(self, err: ApiError) -> None:
        body = error_body(self.dialect.errors, err.status, err.message, err.code)
        status = 200 if self.dialect.errors_in_body else err.status
        await self.resp.send(status, {**self.base_headers(), **err.headers}, json.dumps(body).encode())

    async def send_json(self, obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        if isinstance(obj, dict):
            obj = {**obj, **self.dialect.envelope}
            if self.dialect.usage == "none" and "choices" in obj:
                obj.pop("usage", None)
        await super().send_json(obj, status, headers)

    def _usage_chunk(self, chunks: list[Any]) -> dict[str, Any] | None:
        for chunk in chunks:
            if isinstance(chunk, dict) and chunk.get("choices") == [] and chunk.get("usage"):
                chunks.remove(chunk)
                return chunk["usage"]
        return None

    def _reshape(self, chunks: list[Any]) -> list[Any]:
        d = self.dialect
        chunks = list(chunks)
        usage = self._usage_chunk(chunks) if d.usage != "openai" else None
        if d.usage != "openai":
            for chunk in chunks:
                if isinstance(chunk, dict):
                    chunk.pop("usage", None)
        finish = next((c for c in reversed(chunks) if isinstance(c, dict) and c.get("choices")
                       and c["choices"][0].get("finish_reason")), None)
        if usage and finish is not None:
            if d.usage == "choices":  # Moonshot
                finish["choices"][0]["usage"] = usage
            elif d.usage == "x_groq":  # Groq
                finish["x_groq"] = {"id": self.request_id, "usage": usage}
            elif d.usage == "last_chunk":  # together.ai, Xinference
                finish["usage"] = usage
        if d.usage == "x_groq" and chunks and isinstance(chunks[0], dict):
            chunks[0].setdefault("x_groq", {"id": self.request_id})
        if d.final_full_message and finish is not None:  # MiniMax repeats the whole text at the end
            text = "".join(c["choices"][0].get("delta", {}).get("content") or "" for c in chunks
                           if isinstance(c, dict) and c.get("choices"))
            finish["choices"][0]["message"] = {"role": "assistant", "content": text}
        if d.envelope:
            chunks = [{**c, **d.envelope} if isinstance(c, dict) else c for c in chunks]
        if d.whole_tool_calls:
            chunks = self._whole_tool_calls(chunks)
        if d.prompt_filter_first:  # Azure
            chunks.insert(0, {"choices": [], "created": 0, "id": "", "model": "", "object": "",
                              "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {
                                  k: {"filtered": False, "severity": "safe"}
                                  for k in ("hate", "self_harm", "sexual", "violence")}}]})
        return chunks

    def _whole_tool_calls(self, chunks: list[Any]) -> list[Any]:
        """Mistral sends each tool call whole, in one delta, with a 9-character id."""
        calls: dict[int, dict[str, Any]] = {}
        first: dict[str, Any] | None = None
        out: list[Any] = []
        for chunk in chunks:
            choice = chunk["choices"][0] if isinstance(chunk, dict) and chunk.get("choices") else None
            fragments = (choice or {}).get("delta", {}).get("tool_calls")
            if not fragments:
                out.append(chunk)
                continue
            for frag in fragments:
                call = calls.setdefault(frag["index"], {"id": "", "name": "", "arguments": ""})
                call["id"] = call["id"] or mistral_id(frag.get("id") or str(frag["index"]))
                call["name"] = call["name"] or frag.get("function", {}).get("name", "")
                call["arguments"] += frag.get("function", {}).get("arguments", "")
            if first is None:
                first = chunk
                out.append(chunk)
        if first is not None:
            first["choices"][0]["delta"] = {"tool_calls": [
                {"id": c["id"], "function": {"name": c["name"], "arguments": c["arguments"]}, "index": i}
                for i, c in sorted(calls.items())]}
        return out

    async def stream(self, chunks: list[Any], done: bool = True) -> None:
        chunks = self._reshape(chunks)
        d = self.dialect
        err = self.sc.get("stream_error_after")
        if any(e in self.sc for e in _PASSTHROUGH_EFFECTS) or (not d.comments and err is None):
            await super().stream(chunks, done)
            return
        headers = self.base_headers("text/event-stream; charset=utf-8")
        await self.resp.start(200, headers)
        sse = SSEWriter(self.resp, self.style())
        for i, chunk in enumerate([*chunks, None]):
            for comment in d.comments:
                await sse.comment(comment)
            if err is not None and i == err["n"]:
                await sse.event(d.stream_error(err["message"], err["code"], self.request_id))
                await sse.close()
                return
            if chunk is None:
                break
            await sse.event(chunk)
        if done:
            await sse.event("[DONE]")
        await sse.close()


class DialectMock(OpenAIMock):
    """OpenAIMock speaking ``dialect``. ``api_keys``: accepted keys (Zhipu: ``id.secret``);
    ``entra_tokens``: Azure bearer tokens; ``require_key``: self-hosted servers started with a key."""

    def __init__(self, dialect: Dialect, api_keys: tuple[str, ...] = (), entra_tokens: tuple[str, ...] = (),
                 require_key: bool = True) -> None:
        super().__init__(api_keys=api_keys, models=dialect.models(), prefix=dialect.prefix,
                         embeddings_default_format="float")
        self.dialect = dialect
        self.entra_tokens = set(entra_tokens)
        self.require_key = require_key
        self.native = DashScopeNative(self) if dialect.native == "dashscope" else None
        self.reasoned_calls: set[str] = set()  # tool-call ids the mock answered with reasoning

    # ------------------------------------------------------------------ scenarios in the dialect
    def rate_limited(self, retry_after: float = 2) -> Scenario:
        body = error_body(self.dialect.errors, 429, self.dialect.rate_limit_message, "rate_limit")
        return status(429, body=body, headers={"retry-after": str(retry_after)})

    def out_of_credits(self) -> Scenario:
        return status(402, body=error_body(self.dialect.errors, 402, "Insufficient credits", "insufficient_quota"))

    # ------------------------------------------------------------------ routing
    def _split(self, req: Any) -> tuple[str, str | None]:
        """(sub-path under the prefix, Azure deployment or None)."""
        path = req.path
        if self.dialect.deployments:
            m = re.fullmatch(r"/openai/deployments/([^/]+)(/.*)", path)
            if m is None:
                return "", None
            return m.group(2).rstrip("/"), m.group(1)
        if not path.startswith(self.prefix + "/"):
            return "", None
        return path[len(self.prefix):].rstrip("/"), None

    async def _handle(self, req: Any, resp: Any) -> None:
        if self.native is not None and self.native.handles(req.path):
            await self.native.handle(req, resp)
            return
        ctx = DialectCtx(self, req, resp, NONE, "req_" + uuid.uuid4().hex)
        sub, deployment = self._split(req)
        route = self._route(req.method, sub)
        if route is None:
            await ctx.error(ApiError(404, f"Invalid URL ({req.method} {req.path})"))
            return
        ctx.sc = self._take(req, sub)
        if any(e in ctx.sc for e in RESPONSE_EFFECTS):
            await self._respond_with_scenario(ctx)
            return
        planned = ctx.sc.get("reply") or {}
        if planned.get("reasoning_content"):  # calls answered with reasoning (scripted ids)
            self.reasoned_calls.update(c["id"] for c in planned.get("tool_calls") or () if c.get("id"))
        try:
            self._dialect_auth(req)
            if self.dialect.deployments:
                if not req.query_one("api-version"):
                    raise ApiError(404, "Resource not found", code="404")
                if deployment not in self.models:
                    raise ApiError(404, "The API deployment for this resource does not exist.",
                                   code="DeploymentNotFound")
            if isinstance(req.json, dict):
                ctx.req = self._prepared(req, deployment)
            await route(ctx)
        except ApiError as err:
            if not resp.started:
                await ctx.error(err)

    def _route(self, method: str, sub: str):
        d = self.dialect
        if method == "GET" and sub == "/models":
            return self._list_models
        if method == "GET" and sub.startswith("/models/"):
            return self._model_info
        if method != "POST":
            return None
        table = {d.chat_path: chat_completions, "/completions": completions,
                 "/embeddings": minimax_embeddings if d.embedding_style == "minimax" else self._embeddings,
                 "/audio/transcriptions": transcriptions,
                 "/audio/speech": self._speech,
                 "/moderations": self._mistral_moderations if d.moderation == "mistral" else moderations}
        if d.rerank_path:
            table[d.rerank_path] = self._rerank
        return table.get(sub)

    def _prepared(self, req: Any, deployment: str | None) -> Any:
        """The request the shared handlers see: the dialect's rules checked, usage forced on
        for providers that always report it, the deployment as the model (Azure)."""
        body = dict(req.json)
        for name in self.dialect.forbidden_fields:
            if name in body:
                raise ApiError(422, f"Extra inputs are not permitted: body.{name}", code="extra_forbidden")
        if self.dialect.whole_tool_calls:  # Mistral: only its own 9-character ids in the history
            _check_mistral_ids(body.get("messages"))
        if deployment is not None:
            body["model"] = deployment
        thinking = (body.get("thinking") or {}).get("type", "enabled")
        if self.dialect.reasoning_history and thinking != "disabled" and body.get("tools"):
            for i, m in enumerate(body.get("messages") or ()):
                reasoned = {c.get("id") for c in m.get("tool_calls") or ()} & self.reasoned_calls
                if m.get("role") == "assistant" and reasoned and not m.get("reasoning_content"):
                    raise ApiError(400, f"Missing `reasoning_content` field in the assistant message at message "
                                   f"index {i}. In thinking mode the reasoning_content of a turn with tool calls "
                                   "must be passed back to the API.")
        if body.get("stream") and self.dialect.usage in ("choices", "x_groq", "last_chunk"):
            body["stream_options"] = {"include_usage": True}
        return replace(req, json=body)

    # ------------------------------------------------------------------ auth
    def _dialect_auth(self, req: Any) -> None:
        d = self.dialect
        fail = ApiError(401, d.auth_message, code=d.auth_code)
        if d.auth == "none":  # self-hosted demo servers ignore credentials
            return
        if d.auth == "azure":
            if req.headers.get("api-key") in self.api_keys:
                return
            scheme, _, token = (req.headers.get("authorization") or "").partition(" ")
            if scheme.lower() == "bearer" and token in self.entra_tokens:
                return
            raise fail
        scheme, _, key = (req.headers.get("authorization") or "").partition(" ")
        key = key.strip()
        if not key:
            if d.auth == "optional" and not self.require_key:
                return
            raise ApiError(401, d.auth_message, code=d.missing_auth_code or d.auth_code)
        if scheme.lower() != "bearer":
            raise fail
        if key in self.api_keys:
            return
        if d.auth == "zhipu" and key.count(".") == 2:
            self._check_zhipu_jwt(key)
            return
        raise fail

    def _check_zhipu_jwt(self, token: str) -> None:
        head, payload, signature = token.split(".")
        try:
            header = json.loads(_b64url_decode(head))
            claims = json.loads(_b64url_decode(payload))
        except ValueError:
            raise ApiError(401, self.dialect.auth_message, code="1002") from None
        secret = next((k.split(".", 1)[1] for k in self.api_keys if k.split(".", 1)[0] == claims.get("api_key")), None)
        expected = hmac.new((secret or "").encode(), f"{head}.{payload}".encode(), hashlib.sha256).digest()
        if header.get("alg") != "HS256" or secret is None or not hmac.compare_digest(expected, _b64url_decode(signature)):
            raise ApiError(401, self.dialect.auth_message, code="1004")
        now_ms = time.time() * 1000
        if not isinstance(claims.get("exp"), int) or claims["exp"] < now_ms or claims["exp"] > now_ms + 3600_000:
            raise ApiError(401, "Authorization Token已过期", code="1003")  # also catches exp in seconds

    # ------------------------------------------------------------------ extra routes
    async def _list_models(self, ctx: Ctx) -> None:
        items = [self._model_obj(m) for m in self.models.values()]
        if self.dialect.models_list_bare:  # together.ai: a bare list, each item with its type
            kinds = {"completion": "language", "transcription": "audio"}
            await ctx.send_json([dict(item, type=kinds.get(m.kind, m.kind))
                                 for item, m in zip(items, self.models.values())])
            return
        await ctx.send_json({"object": "list", "data": items})

    async def _model_info(self, ctx: Ctx) -> None:
        uid = ctx.req.path.rsplit("/", 1)[-1]
        info = self.dialect.model_info.get(uid)
        if info is None:
            raise ApiError(404, f"Model not found in the model list, uid: {uid}")
        await ctx.send_json({"id": uid, "object": "model", **info})

    async def _embeddings(self, ctx: Ctx) -> None:
        body = ctx.req.json
        if self.dialect.embedding_input_type and body.get("input_type") not in ("query", "passage"):
            raise ApiError(400, "'input_type' parameter is required for asymmetric models", code="input_type")
        limit = self.dialect.max_embedding_inputs
        if limit and isinstance(body.get("input"), list) and len(body["input"]) > limit:
            raise ApiError(400, f"batch size is invalid, it should not be larger than {limit}.: input.contents")
        await embeddings(ctx)

    async def _speech(self, ctx: Ctx) -> None:
        body = ctx.req.json
        voices = self.dialect.voices
        if voices is None:
            await speech(ctx)
            return
        model = self.lookup_model(body.get("model") or "")
        if body.get("voice") not in voices:
            raise ApiError(400, f"voice '{body.get('voice')}' is not available for {model.id}", code="invalid_voice")
        audio = encode_audio(pcm_for(str(body.get("input") or "")), body.get("response_format") or "mp3")
        await send_chunked(ctx, audio, "audio/mpeg")

    async def _rerank(self, ctx: Ctx) -> None:
        body = ctx.req.json
        model = self.lookup_model(body.get("model") or "")
        if model.kind != "rerank":
            raise ApiError(400, f"{model.id} is not a rerank model")
        nvidia = self.dialect.rerank_style == "nvidia"
        query = (body.get("query") or {}).get("text", "") if nvidia else str(body.get("query") or "")
        docs = [p.get("text", "") for p in body.get("passages") or []] if nvidia else list(body.get("documents") or [])
        if not query or not docs:
            raise ApiError(400, "query and documents are required")
        words = set(query.lower().split())
        scores = [len(words & set(doc.lower().split())) / max(len(words), 1) for doc in docs]
        order = sorted(range(len(docs)), key=lambda i: -scores[i])
        if nvidia:  # unbounded logits, negative for weak matches
            await ctx.send_json({"rankings": [{"index": i, "logit": round(8 * scores[i] - 4, 4)} for i in order]})
            return
        top_n = body.get("top_n") or len(docs)
        results = [{"index": i, "relevance_score": round(scores[i], 6), "document": {"text": docs[i]}}
                   for i in order[:top_n]]
        await ctx.send_json({"id": new_id("rerank-"), "results": results,
                             "usage": {"total_tokens": sum(approx_tokens(d) for d in docs) + approx_tokens(query)}})

    async def _mistral_moderations(self, ctx: Ctx) -> None:
        body = ctx.req.json
        self.lookup_model(body.get("model") or "")
        inputs = body.get("input")
        inputs = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(inputs, list) or not inputs:
            raise ApiError(422, "input is required")
        triggers = {"kill": "violence_and_threats", "bomb": "dangerous_and_criminal_content",
                    "hate": "hate_and_discrimination"}
        names = ("sexual", "hate_and_discrimination", "violence_and_threats", "dangerous_and_criminal_content",
                 "selfharm", "health", "financial", "law", "pii")
        results = []
        for text in inputs:
            hit = {cat for word, cat in triggers.items() if word in str(text).lower().split()}
            results.append({"categories": {n: n in hit for n in names},
                            "category_scores": {n: (0.98 if n in hit else 0.0012) for n in names}})
        await ctx.send_json({"id": uuid.uuid4().hex, "model": body["model"], "results": results})


# ---------------------------------------------------------------------------------------- test harness


class Pool:
    """One running mock per provider for the whole module (started on first use)."""

    def __init__(self) -> None:
        self.mocks: dict[str, DialectMock] = {}

    async def get(self, name: str) -> DialectMock:
        if name not in self.mocks:
            d = DIALECTS[name]
            self.mocks[name] = await DialectMock(d, api_keys=(d.key,), entra_tokens=(ENTRA_TOKEN,)).start()
        mock = self.mocks[name]
        mock.pending.clear()
        return mock


@pytest.fixture(scope="module")
async def pool():
    p = Pool()
    yield p
    for mock in p.mocks.values():
        await mock.stop()


def _rehost(url: str, origin: str) -> str:
    parts = urlsplit(url)
    return origin + parts.path + (f"?{parts.query}" if parts.query else "")


def rewritten_options(options, origin: str) -> dict:
    """The URL-valued runtime options with their scheme and host replaced by the mock's."""
    out: dict = {}
    for key in ("base_url", "rerank_url"):
        if getattr(options, key, None):
            out[key] = _rehost(getattr(options, key), origin)
    choice = getattr(options, "base_url_by_credential", None)
    if choice is not None:
        out["base_url_by_credential"] = choice.model_copy(
            update={"values": {k: _rehost(v, origin) for k, v in choice.values.items()}})
    return out


@pytest.fixture
def upstream(pool, grpc_server, monkeypatch):
    async def get(name: str) -> DialectMock:
        mock = await pool.get(name)
        adapter = grpc_server.runtime.registry.adapter(name)
        for each in (adapter, *adapter.composed.values()):  # composed protocols have their own URLs
            point_options(monkeypatch, each, **rewritten_options(each.options, mock.url))
        return mock
    return get


def tgt(d: Dialect, mock: DialectMock, model_type: str = "llm", key: str | None = None, model: str | None = None):
    return target(d.provider, model or with_type(model_type, d), d.credentials(mock.url, key, model_type))


def wire_model(d: Dialect, model_type: str = "llm") -> str:
    creds = (d.customizable or {}).get(model_type, {})
    return (creds.get(d.model_var) if d.model_var else None) or with_type(model_type, d)


def path_of(d: Dialect, sub: str, model_type: str = "llm") -> str:
    if d.native == "dashscope" and model_type in ("rerank", "tts"):  # not in compatible mode
        return RERANK_PATH if model_type == "rerank" else TTS_PATH
    if sub == "/chat/completions":
        sub = d.chat_path
    if d.deployments:
        return f"/openai/deployments/{with_type(model_type, d)}{sub}"
    return d.prefix + sub


def assert_authenticated(d: Dialect, request) -> None:
    if d.auth == "none":
        assert "authorization" not in request.headers and "api-key" not in request.headers
    elif d.auth == "azure":
        assert request.headers["api-key"] == d.key and request.query["api-version"] == ["2024-10-21"]
    elif d.auth == "zhipu":  # an id.secret key goes out as a signed JWT, never raw
        token = request.headers["authorization"].removeprefix("Bearer ")
        assert token.count(".") == 2 and d.key not in token
    else:
        assert request.headers["authorization"] == f"Bearer {d.key}"
