"""A faithful mock of Google's Gemini API (generativelanguage v1beta) on the raw HTTP/1.1 server.

    async with GeminiMock(api_keys=["AIza-test"]) as mock:
        creds = {"google_api_key": "AIza-test", "google_base_url": mock.url + "/v1beta"}
        mock.enqueue(rate_limit("2s"), method="generateContent")
        ...
        assert mock.requests[-1].json["contents"][0]["role"] == "user"

Routes (under /v1beta): POST models/{m}:generateContent, :streamGenerateContent (``?alt=sse``
for SSE; without it a JSON array), :countTokens, :embedContent, :batchEmbedContents; GET
models, models/{m}. Auth: ``x-goog-api-key`` (or ``?key=``, which the mock accepts and
records so tests can prove it was never used). A missing key is 403 PERMISSION_DENIED, a
wrong one 400 INVALID_ARGUMENT with ErrorInfo reason API_KEY_INVALID, as Google answers.

SSE streams are data-only with CRLF separators and no [DONE]; every event repeats
``usageMetadata`` (running totals) and only the last carries ``finishReason``. Function calls
arrive whole (two in one candidate with 2+ tools) with object args and no id; Gemini 3 models
attach a ``thoughtSignature`` and demand it back. Reply rules: gemini_replies.

Scenarios (``mock.enqueue(...)``, FIFO, each taken by the next request whose method
matches): blocked_prompt, finish (SAFETY with no parts, MALFORMED_FUNCTION_CALL, ...),
rate_limit (429 RESOURCE_EXHAUSTED + RetryInfo), status (any Google error), truncate_after,
stream_error_after, hang.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterable
from typing import Any

from .gemini_replies import (
    DEFAULT_MODELS,
    TASK_TYPES,
    ApiError,
    ModelInfo,
    Reply,
    candidate_parts,
    check_generate,
    check_signatures,
    count_tokens,
    expected_args,
    expected_embedding,
    invalid,
    make_reply,
    prompt_tokens,
)
from .httpserver import MockServer, Request, Response, ServerMock
from .openai_scenarios import NONE, Scenario
from .sse import SSEWriter, StreamStyle

__all__ = ["ApiError", "GeminiMock", "ModelInfo", "Scenario", "blocked_prompt", "count_tokens", "expected_args",
           "expected_embedding", "finish", "hang", "rate_limit", "status", "stream_error_after", "truncate_after"]

GEMINI_STYLE = StreamStyle(crlf=True, split=True, coalesce=True)
_RESPONSE_EFFECTS = ("rate_limit", "status", "hang")


def _one(name: str, method: str | None, **params: Any) -> Scenario:
    return Scenario({name: params}, f":{method}" if method else None)


def blocked_prompt(reason: str = "SAFETY", method: str | None = None) -> Scenario:
    """No candidates, only ``promptFeedback.blockReason`` (and prompt usage)."""
    return _one("blocked", method, reason=reason)


def finish(reason: str = "SAFETY", method: str | None = None) -> Scenario:
    """A candidate with this finishReason and no parts (SAFETY carries blocked safetyRatings,
    MALFORMED_FUNCTION_CALL a finishMessage)."""
    return _one("finish", method, reason=reason)


def rate_limit(retry_delay: str | None = "2s", retry_after_header: str | None = None,
               method: str | None = None) -> Scenario:
    """429 RESOURCE_EXHAUSTED with QuotaFailure, Help and RetryInfo(retryDelay) details."""
    return _one("rate_limit", method, retry_delay=retry_delay, header=retry_after_header)


def status(code: int, grpc_status: str, message: str, details: list[dict[str, Any]] | None = None,
           method: str | None = None) -> Scenario:
    return _one("status", method, code=code, status=grpc_status, message=message, details=details or [])


def truncate_after(n_events: int, mid_event: bool = False, method: str | None = None) -> Scenario:
    """Stop after n events without a finishReason: a clean end of the body, or (mid_event)
    half of the next event and then the connection closes."""
    return _one("truncate_after", method, n=n_events, mid_event=mid_event)


def stream_error_after(n_events: int, code: int = 503, grpc_status: str = "UNAVAILABLE",
                       message: str = "The model is overloaded. Please try again later.",
                       method: str | None = None) -> Scenario:
    """After n events, ``data: {"error": {...}}`` under the 200, then the stream ends."""
    return _one("stream_error_after", method, n=n_events, code=code, status=grpc_status, message=message)


def hang(send_headers: bool = True, max_seconds: float = 60.0, method: str | None = None) -> Scenario:
    """Send the 200 headers (or nothing) and then nothing until the client goes away."""
    return _one("hang", method, send_headers=send_headers, max_seconds=max_seconds)


class GeminiMock(ServerMock):
    """Gemini API mock. api_keys: accepted keys (None: any non-empty key)."""

    def __init__(self, api_keys: Iterable[str] | None = ("AIza-test",), models: Iterable[ModelInfo] = DEFAULT_MODELS,
                 prefix: str = "/v1beta", stream_style: StreamStyle = GEMINI_STYLE,
                 reply_template: str = "Echo: {text}", thought_signature: str = "c2lnbmF0dXJlLW1vY2s="):
        self.api_keys = set(api_keys) if api_keys is not None else None
        self.models = {m.name: m for m in models}
        self.prefix = prefix.rstrip("/")
        self.stream_style = stream_style
        self.reply_template = reply_template
        self.thought_signature = thought_signature
        self.server = MockServer(self._handle)
        self.pending: list[Scenario] = []
        self.replies: list[Reply] = []  # what each generate call answered (for expected usage)
        self.cached_tokens = 0  # reported as usageMetadata.cachedContentTokenCount (implicit cache hits)

    @property
    def base_url(self) -> str:
        return self.server.url + self.prefix

    def expected_reply(self, text: str) -> str:
        return self.reply_template.format(text=text)

    def enqueue(self, *scenarios: Scenario, method: str | None = None, times: int = 1) -> None:
        """Queue scenarios; ``method`` (e.g. "streamGenerateContent") restricts which requests take them."""
        for _ in range(times):
            for sc in scenarios:
                self.pending.append(sc.on(f":{method}") if method else sc)

    def clear(self) -> None:
        self.pending.clear()
        self.replies.clear()
        self.server.reset()

    def _take(self, sub: str) -> Scenario:
        for i, sc in enumerate(self.pending):
            if sc.matches(sub):
                del self.pending[i]
                return sc
        return NONE

    # ------------------------------------------------------------------ plumbing
    @staticmethod
    def _headers(content_type: str = "application/json; charset=UTF-8") -> dict[str, str]:
        return {"content-type": content_type, "vary": "Origin, X-Origin, Referer", "server": "scaffolding on HTTPServer2",
                "x-content-type-options": "nosniff", "server-timing": "gfet4t7; dur=12"}

    async def _send_json(self, resp: Response, body: Any, status_code: int = 200,
                         headers: dict[str, str] | None = None) -> None:
        await resp.send(status_code, {**self._headers(), **(headers or {})}, json.dumps(body, indent=2))

    async def _error(self, resp: Response, err: ApiError) -> None:
        await self._send_json(resp, err.body(), err.code, err.headers)

    def _check_auth(self, req: Request) -> None:
        key = req.headers.get("x-goog-api-key") or req.query_one("key")
        if not key:
            raise ApiError(403, "Method doesn't allow unregistered callers (callers without established identity). "
                                "Please use API Key or other form of API consumer identity to call this API.",
                           "PERMISSION_DENIED")
        if self.api_keys is not None and key not in self.api_keys:
            raise ApiError(400, "API key not valid. Please pass a valid API key.", "INVALID_ARGUMENT", [
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                 "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}},
                {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US",
                 "message": "API key not valid. Please pass a valid API key."}])

    def _model(self, name: str, method: str) -> ModelInfo:
        info = self.models.get(name)
        if info is None or (method in ("generateContent", "streamGenerateContent") and info.embedding_dims) or (
                method in ("embedContent", "batchEmbedContents") and not info.embedding_dims):
            raise ApiError(404, f"models/{name} is not found for API version v1beta, or is not supported for {method}. "
                                "Call ListModels to see the list of available models and their supported methods.",
                           "NOT_FOUND")
        return info

    def _model_obj(self, m: ModelInfo) -> dict[str, Any]:
        methods = ["embedContent", "batchEmbedContents", "countTokens"] if m.embedding_dims else [
            "generateContent", "countTokens", "createCachedContent", "batchGenerateContent"]
        return {"name": f"models/{m.name}", "version": "001", "displayName": m.name,
                "inputTokenLimit": m.input_limit, "outputTokenLimit": m.output_limit,
                "supportedGenerationMethods": methods, "thinking": m.thinking}

    # ------------------------------------------------------------------ routing
    async def _handle(self, req: Request, resp: Response) -> None:
        path = req.path
        if not path.startswith(self.prefix + "/"):
            await self._error(resp, ApiError(404, f"Invalid URL {req.method} {path}", "NOT_FOUND"))
            return
        sub = path[len(self.prefix):]
        model, _, method = sub.removeprefix("/models/").partition(":")
        sc = self._take(sub)
        try:
            if any(e in sc for e in _RESPONSE_EFFECTS):
                await self._respond_with_scenario(req, resp, sc)
                return
            self._check_auth(req)
            if req.method == "GET" and sub in ("/models", "/models/"):
                await self._send_json(resp, {"models": [self._model_obj(m) for m in self.models.values()]})
                return
            if req.method == "GET" and sub.startswith("/models/") and not method:
                await self._send_json(resp, self._model_obj(self._model(model, "get")))
                return
            route = {"generateContent": self._generate, "streamGenerateContent": self._generate,
                     "countTokens": self._count_tokens, "embedContent": self._embed_one,
                     "batchEmbedContents": self._embed_batch}.get(method)
            if req.method != "POST" or route is None or not sub.startswith("/models/"):
                raise ApiError(404, f"Invalid URL {req.method} {path}", "NOT_FOUND")
            info = self._model(model, method)
            if not isinstance(req.json, dict):
                raise invalid("Invalid JSON payload received. Unexpected token.")
            await route(req, resp, info, method, sc)
        except ApiError as err:
            if not resp.started:
                await self._error(resp, err)

    async def _respond_with_scenario(self, req: Request, resp: Response, sc: Scenario) -> None:
        if (rl := sc.get("rate_limit")) is not None:
            details: list[dict[str, Any]] = [
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
                    "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                    "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                    "quotaDimensions": {"location": "global", "model": "gemini-2.5-flash"}, "quotaValue": "10"}]},
                {"@type": "type.googleapis.com/google.rpc.Help", "links": [
                    {"description": "Learn more about Gemini API quotas",
                     "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]}]
            if rl["retry_delay"] is not None:
                details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": rl["retry_delay"]})
            headers = {"retry-after": rl["header"]} if rl["header"] else {}
            await self._error(resp, ApiError(429, "You exceeded your current quota, please check your plan and "
                                                  "billing details.", "RESOURCE_EXHAUSTED", details, headers))
        elif (st := sc.get("status")) is not None:
            await self._error(resp, ApiError(st["code"], st["message"], st["status"], st["details"]))
        elif (hg := sc.get("hang")) is not None:
            if hg["send_headers"]:
                await resp.start(200, self._headers("text/event-stream"))
            await resp.wait_disconnected(hg["max_seconds"])
            await resp.abort()

    # ------------------------------------------------------------------ generate
    def _events(self, body: dict[str, Any], info: ModelInfo, sc: Scenario, stream: bool) -> list[dict[str, Any]]:
        response_id = uuid.uuid4().hex[:22]
        base = {"modelVersion": info.name, "responseId": response_id}
        if (bl := sc.get("blocked")) is not None:
            tokens = prompt_tokens(body)
            return [{"promptFeedback": {"blockReason": bl["reason"], "safetyRatings": [
                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}]},
                "usageMetadata": {"promptTokenCount": tokens, "totalTokenCount": tokens}, **base}]
        if (fin := sc.get("finish")) is not None:
            tokens = prompt_tokens(body)
            candidate: dict[str, Any] = {"finishReason": fin["reason"], "index": 0}
            if fin["reason"] == "SAFETY":
                candidate["safetyRatings"] = [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH",
                                               "blocked": True}]
            elif fin["reason"] == "MALFORMED_FUNCTION_CALL":
                candidate["content"] = {}
                candidate["finishMessage"] = "Malformed function call: print(default_api.get_weather(city='Paris'"
            return [{"candidates": [candidate],
                     "usageMetadata": {"promptTokenCount": tokens, "totalTokenCount": tokens}, **base}]
        signature = self.thought_signature if info.name.startswith("gemini-3") else None
        reply = make_reply(body, info, self.reply_template, signature)
        self.replies.append(reply)
        parts = candidate_parts(reply)
        if not stream:
            return [{"candidates": [{"content": {"parts": parts, "role": "model"}, "finishReason": reply.finish,
                                     "index": 0}], "usageMetadata": reply.usage(), **base}]
        groups: list[list[dict[str, Any]]] = []
        if reply.thought:
            groups.append([{"text": reply.thought, "thought": True}])
        words = reply.text.split(" ") if reply.text else []
        for i in range(0, len(words), 2):
            piece = " ".join(words[i:i + 2])
            groups.append([{"text": piece if i + 2 >= len(words) else piece + " "}])
        if reply.text_signature:  # streamed: the signature comes in a last part of its own, empty text
            groups.append([{"text": "", "thoughtSignature": reply.text_signature}])
        calls = [p for p in parts if "functionCall" in p]
        if calls:
            groups.append(calls)
        groups = groups or [[]]
        events, produced = [], ""
        for n, group in enumerate(groups):
            produced += "".join(p.get("text", "") for p in group if not p.get("thought"))
            produced += "".join(json.dumps(p["functionCall"]) for p in group if "functionCall" in p)
            candidate = {"content": {"parts": group, "role": "model"}, "index": 0}
            if n == len(groups) - 1:
                candidate["finishReason"] = reply.finish
            usage = reply.usage(reply.candidates_tokens if n == len(groups) - 1 else count_tokens(produced))
            events.append({"candidates": [candidate], "usageMetadata": usage, **base})
        return events

    async def _generate(self, req: Request, resp: Response, info: ModelInfo, method: str, sc: Scenario) -> None:
        body = req.json
        check_generate(body, info.name)
        check_signatures(body["contents"], info.name, self.thought_signature)
        stream = method == "streamGenerateContent"
        events = self._events(body, info, sc, stream)
        for event in events if self.cached_tokens else ():
            usage = event.get("usageMetadata") or {}
            if usage.get("promptTokenCount"):
                usage["cachedContentTokenCount"] = min(self.cached_tokens, usage["promptTokenCount"])
        if not stream:
            await self._send_json(resp, events[0])
            return
        if req.query_one("alt") != "sse":  # the JSON-array form, delivered whole
            await resp.start(200, self._headers())
            await resp.write("[" + ",\r\n".join(json.dumps(e, indent=2) for e in events) + "]")
            await resp.end()
            return
        await resp.start(200, self._headers("text/event-stream"))
        sse = SSEWriter(resp, self.stream_style)
        err, trunc = sc.get("stream_error_after"), sc.get("truncate_after")
        for i, event in enumerate(events):
            if err is not None and i == err["n"]:
                await sse.event({"error": {"code": err["code"], "message": err["message"], "status": err["status"]}})
                await sse.close()
                return
            if trunc is not None and i == trunc["n"]:
                await sse.flush()
                if trunc["mid_event"]:
                    data = b"data: " + json.dumps(event).encode()
                    await sse.raw(data[:len(data) // 2])
                    await resp.abort()
                else:
                    await sse.close()
                return
            await sse.event(event)
            await asyncio.sleep(0)
        await sse.close()

    # ------------------------------------------------------------------ tokens and embeddings
    async def _count_tokens(self, req: Request, resp: Response, info: ModelInfo, method: str, sc: Scenario) -> None:
        body = req.json
        inner = body.get("generateContentRequest")
        if inner is not None and body.get("contents"):
            raise invalid("contents and generate_content_request cannot both be set.")
        if inner is not None:
            if inner.get("model") != f"models/{info.name}":
                raise invalid("* CountTokensRequest.generate_content_request.model: model must match the request model")
            check_generate({k: v for k, v in inner.items() if k != "model"}, info.name)
            tokens = prompt_tokens(inner)
        else:
            if not isinstance(body.get("contents"), list) or not body["contents"]:
                raise invalid("* CountTokensRequest.contents: contents is not specified")
            tokens = prompt_tokens({"contents": body["contents"]})
        await self._send_json(resp, {"totalTokens": tokens,
                                     "promptTokensDetails": [{"modality": "TEXT", "tokenCount": tokens}]})

    def _embedding(self, request: dict[str, Any], info: ModelInfo, where: str) -> dict[str, Any]:
        parts = (request.get("content") or {}).get("parts") or []
        texts = [p.get("text") for p in parts]
        if not parts or not all(isinstance(t, str) for t in texts):
            raise invalid(f"* {where}.content.parts: must contain text")
        task = request.get("taskType", "TASK_TYPE_UNSPECIFIED")
        if task not in TASK_TYPES:
            raise invalid(f"Invalid value at '{where}.task_type' ({task!r})")
        dims = request.get("outputDimensionality", info.embedding_dims)
        if not isinstance(dims, int) or not 1 <= dims <= info.embedding_dims:
            raise invalid(f"* {where}.output_dimensionality: must be between 1 and {info.embedding_dims}")
        return {"values": expected_embedding(" ".join(texts), task, dims, info.embedding_dims)}

    async def _embed_one(self, req: Request, resp: Response, info: ModelInfo, method: str, sc: Scenario) -> None:
        await self._send_json(resp, {"embedding": self._embedding(req.json, info, "EmbedContentRequest")})

    async def _embed_batch(self, req: Request, resp: Response, info: ModelInfo, method: str, sc: Scenario) -> None:
        requests = req.json.get("requests")
        if not isinstance(requests, list) or not requests:
            raise invalid("* BatchEmbedContentsRequest.requests: requests is not specified")
        if len(requests) > 100:
            raise invalid("* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch")
        out = []
        for i, request in enumerate(requests):
            if request.get("model") != f"models/{info.name}":
                raise invalid(f"* BatchEmbedContentsRequest.requests[{i}].model: Model names should match the "
                              f"request model. Expected models/{info.name}, got {request.get('model')}")
            out.append(self._embedding(request, info, f"BatchEmbedContentsRequest.requests[{i}]"))
        await self._send_json(resp, {"embeddings": out})
