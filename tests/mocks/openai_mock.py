"""A faithful mock of OpenAI's HTTP API on a real HTTP/1.1 server (127.0.0.1, random port).

    async with OpenAIMock(api_keys=["sk-test"]) as mock:
        client = httpx.AsyncClient(base_url=mock.base_url)          # mock.base_url = mock.url + "/v1"
        mock.enqueue(rate_limit(retry_after=2), path="/chat/completions")
        ...
        assert mock.requests[-1].json["model"] == "gpt-4o"

Routes (under `prefix`, default "/v1"): POST chat/completions, responses (openai_responses), completions,
embeddings, moderations,
audio/transcriptions, audio/translations, audio/speech; GET models, models/{id}.
Streams use `stream_style` (default StreamStyle.chaotic(): CRLF, keep-alive comments, events split
across writes and coalesced), so every streaming test exercises a real SSE parser.
See openai_scenarios for per-request edge cases and openai_chat for the default reply rules.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from .httpserver import MockServer, Request, Response, ServerMock
from .openai_chat import TOOL_ARG_SUFFIX, chat_completions, completions, expected_tool_arguments
from .openai_common import DEFAULT_MODELS, ApiError, Ctx, ModelInfo, error_body, html_page
from .openai_media import (
    DEFAULT_TRIGGERS,
    MODERATION_CATEGORIES,
    SPEECH_CONTENT_TYPES,
    embeddings,
    expected_embedding,
    moderations,
    speech,
    transcriptions,
    translations,
)
from .openai_responses import ResponsesState, responses
from .openai_scenarios import (  # re-exported for convenience
    NONE,
    RESPONSE_EFFECTS,
    Scenario,
    content_filter,
    context_length_exceeded,
    embeddings_out_of_order,
    finish_length,
    first_chunk_empty_choices,
    hang,
    html_error,
    insufficient_quota,
    keepalive_comments_and_crlf,
    rate_limit,
    raw_response,
    raw_sse,
    reply,
    slow_first_byte,
    slow_stream,
    status,
    stream_error_after,
    stream_style,
    truncate_after,
)
from .sse import StreamStyle, encode_json

__all__ = [
    "DEFAULT_MODELS",
    "DEFAULT_TRIGGERS",
    "MODERATION_CATEGORIES",
    "TOOL_ARG_SUFFIX",
    "ModelInfo",
    "OpenAIMock",
    "Scenario",
    "StreamStyle",
    "content_filter",
    "context_length_exceeded",
    "embeddings_out_of_order",
    "expected_embedding",
    "expected_tool_arguments",
    "finish_length",
    "first_chunk_empty_choices",
    "hang",
    "html_error",
    "insufficient_quota",
    "keepalive_comments_and_crlf",
    "rate_limit",
    "raw_response",
    "raw_sse",
    "reply",
    "slow_first_byte",
    "slow_stream",
    "status",
    "stream_error_after",
    "stream_style",
    "truncate_after",
]

CHAOTIC = StreamStyle.chaotic()
Route = Callable[[Ctx], Awaitable[None]]
_JSON_ROUTES: dict[str, Route] = {
    "/chat/completions": chat_completions,
    "/responses": responses,
    "/completions": completions,
    "/embeddings": embeddings,
    "/moderations": moderations,
    "/audio/speech": speech,
}
_FORM_ROUTES: dict[str, Route] = {"/audio/transcriptions": transcriptions, "/audio/translations": translations}


def mask_key(key: str) -> str:
    return key if len(key) <= 8 else key[:3] + "*" * (len(key) - 7) + key[-4:]


class OpenAIMock(ServerMock):
    """OpenAI API mock. Constructor args:

    api_keys: accepted Bearer keys; None accepts any non-empty key.
    organization: if set, an `OpenAI-Organization` header with another value gets 401
        `mismatched_organization`; replies echo it in `openai-organization`.
    models: the model table (ModelInfo); extra_models are appended. Unknown model → 404 model_not_found.
    prefix: path prefix of all routes ("/v1"; "" for servers without it).
    stream_style: SSE framing for every stream (StreamStyle.chaotic() by default, .plain() = real OpenAI).
    reply_template: chat reply for a last user message, "{text}" = its text.
    completion_template: legacy completion text, "{prompt}" = the prompt.
    embeddings_default_format: used when a request omits encoding_format ("base64", see README notes).
    moderation_triggers: word → categories flagged when the word occurs in the input.
    speech_content_types: response_format → Content-Type of /audio/speech.
    """

    def __init__(self, api_keys: Iterable[str] | None = ("sk-test",), organization: str | None = None,
                 models: Iterable[ModelInfo] = DEFAULT_MODELS, extra_models: Iterable[ModelInfo] = (),
                 prefix: str = "/v1", stream_style: StreamStyle = CHAOTIC,
                 reply_template: str = "Echo: {text}", completion_template: str = " Echo: {prompt}",
                 embeddings_default_format: str = "base64",
                 moderation_triggers: dict[str, tuple[str, ...]] | None = None,
                 speech_content_types: dict[str, str] | None = None):
        self.api_keys = set(api_keys) if api_keys is not None else None
        self.organization = organization
        self.models: dict[str, ModelInfo] = {m.id: m for m in [*models, *extra_models]}
        self.prefix = prefix.rstrip("/")
        self.stream_style = stream_style
        self.reply_template = reply_template
        self.completion_template = completion_template
        self.embeddings_default_format = embeddings_default_format
        self.moderation_triggers = dict(moderation_triggers or DEFAULT_TRIGGERS)
        self.speech_content_types = {**SPEECH_CONTENT_TYPES, **(speech_content_types or {})}
        self.server = MockServer(self._handle)
        self.pending: list[Scenario] = []
        self.consumed: list[tuple[Request, Scenario]] = []
        self.responses = ResponsesState()  # the Responses API's memory (see openai_responses)

    # ------------------------------------------------------------------ lifecycle
    @property
    def base_url(self) -> str:
        return self.server.url + self.prefix

    # ------------------------------------------------------------------ observation
    @property
    def errors(self) -> list[BaseException]:
        """Exceptions raised inside the mock itself (it answered 500 "mock handler crashed")."""
        return self.server.errors

    def expected_reply(self, text: str) -> str:
        return self.reply_template.format(text=text)

    # ------------------------------------------------------------------ scenarios
    def enqueue(self, *scenarios: Scenario, path: str | None = None, times: int = 1) -> None:
        """Queue scenarios (FIFO); each is consumed by the next request whose path matches.
        `path` (e.g. "/chat/completions") overrides the scenarios' own filter; `times` repeats them."""
        for _ in range(times):
            for sc in scenarios:
                self.pending.append(sc.on(path) if path is not None else sc)

    def clear(self) -> None:
        self.pending.clear()
        self.consumed.clear()
        self.server.reset()

    def _take(self, req: Request, sub: str) -> Scenario:
        for i, sc in enumerate(self.pending):
            if sc.matches(sub):
                del self.pending[i]
                self.consumed.append((req, sc))
                return sc
        return NONE

    # ------------------------------------------------------------------ models
    def lookup_model(self, model_id: str) -> ModelInfo:
        m = self.models.get(model_id)
        if m is None:
            raise ApiError(404, f"The model `{model_id}` does not exist or you do not have access to it.",
                           code="model_not_found")
        return m

    def _model_obj(self, m: ModelInfo) -> dict[str, Any]:
        return {"id": m.id, "object": "model", "created": m.created, "owned_by": m.owned_by}

    # ------------------------------------------------------------------ request handling
    async def _handle(self, req: Request, resp: Response) -> None:
        ctx = Ctx(self, req, resp, NONE, "req_" + uuid.uuid4().hex)
        path = req.path
        if not path.startswith(self.prefix + "/"):
            await ctx.error(ApiError(404, f"Invalid URL ({req.method} {path})"))
            return
        sub = path[len(self.prefix):].rstrip("/")
        route: Route | None = None
        known = sub in _JSON_ROUTES or sub in _FORM_ROUTES or sub == "/models" or sub.startswith("/models/")
        if req.method == "POST":
            route = _JSON_ROUTES.get(sub) or _FORM_ROUTES.get(sub)
        elif req.method == "GET" and (sub == "/models" or sub.startswith("/models/")):
            route = self._models_route
        if route is None:
            msg = f"Invalid method for URL ({req.method} {path})" if known else f"Invalid URL ({req.method} {path})"
            await ctx.error(ApiError(405 if known else 404, msg))
            return
        ctx.sc = self._take(req, sub)
        if any(e in ctx.sc for e in RESPONSE_EFFECTS):
            await self._respond_with_scenario(ctx)
            return
        try:
            self._check_auth(req)
            if sub in _JSON_ROUTES and not isinstance(req.json, dict):
                raise ApiError(400, "We could not parse the JSON body of your request. (HINT: This likely means you "
                               "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but "
                               "what was sent was not valid JSON. If you have trouble figuring out how to fix this, "
                               "please contact us through our help center at help.openai.com.)")
            await route(ctx)
        except ApiError as err:
            if not resp.started:
                await ctx.error(err)

    def _check_auth(self, req: Request) -> None:
        auth = req.headers.get("authorization", "")
        scheme, _, key = auth.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise ApiError(401, "You didn't provide an API key. You need to provide your API key in an Authorization "
                           "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field "
                           "(with blank username) if you're accessing the API from your browser and are prompted for "
                           "a username. You can obtain an API key from https://platform.openai.com/account/api-keys.")
        if self.api_keys is not None and key not in self.api_keys:
            raise ApiError(401, f"Incorrect API key provided: {mask_key(key)}. You can find your API key at "
                           "https://platform.openai.com/account/api-keys.", code="invalid_api_key")
        org = req.headers.get("openai-organization")
        if self.organization is not None and org is not None and org != self.organization:
            raise ApiError(401, "OpenAI-Organization header should match organization for API key",
                           code="mismatched_organization")

    async def _models_route(self, ctx: Ctx) -> None:
        sub = ctx.req.path[len(self.prefix):].rstrip("/")
        if sub == "/models":
            await ctx.send_json({"object": "list", "data": [self._model_obj(m) for m in self.models.values()]})
            return
        await ctx.send_json(self._model_obj(self.lookup_model(sub[len("/models/"):])))

    async def _respond_with_scenario(self, ctx: Ctx) -> None:
        sc, body = ctx.sc, ctx.req.json if isinstance(ctx.req.json, dict) else {}
        model = body.get("model", "gpt-4o")
        if (rl := sc.get("rate_limit")) is not None:
            h = ctx.base_headers()
            h.update({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": f"{rl['retry_after'] or 1}s"})
            if rl["type"] == "tokens":
                h.update({"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": f"{rl['retry_after'] or 1}s"})
            if rl["retry_after"] is not None:
                h["retry-after"] = str(rl["retry_after"])
            if rl["retry_after_ms"] is not None:
                h["retry-after-ms"] = str(rl["retry_after_ms"])
            msg = rl["message"] or (
                f"Rate limit reached for {model} in organization org-mock on {rl['type']} per min "
                f"({'RPM' if rl['type'] == 'requests' else 'TPM'}): Limit 10000, Used 10000, Requested 1. Please try "
                f"again in {rl['retry_after'] or 1}s. Visit https://platform.openai.com/account/rate-limits to learn more.")
            await ctx.resp.send(429, h, encode_json(error_body(msg, rl["type"], None, rl["code"])))
        elif (st := sc.get("status")) is not None:
            await self._send_status(ctx, st, model)
        elif (raw := sc.get("raw_response")) is not None:
            await ctx.resp.send(raw["status"], {"x-request-id": ctx.request_id, **raw["headers"]}, raw["body"])
        elif (rs := sc.get("raw_sse")) is not None:
            await ctx.stream(rs["events"], done=rs["done"])

    async def _send_status(self, ctx: Ctx, st: dict[str, Any], model: str) -> None:
        code, body, ctype = st["code"], st["body"], st["content_type"]
        reason = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 409: "Conflict",
                  422: "Unprocessable Entity", 500: "Internal Server Error", 502: "Bad Gateway",
                  503: "Service Unavailable", 504: "Gateway Time-out"}.get(code, "Error")
        if st["html"] or (body == "default" and code in (502, 504)):
            payload: bytes | str = html_page(code, reason)
            ctype = ctype or "text/html"
        elif body == "context_length_exceeded":
            payload = encode_json(error_body(
                "This model's maximum context length is 128000 tokens. However, your messages resulted in 131072 "
                "tokens. Please reduce the length of the messages.", "invalid_request_error", "messages",
                "context_length_exceeded"))
        elif body == "default":
            payload = encode_json(self._default_error(code, model)) if code != 503 else b""
        elif isinstance(body, (dict, list)):
            payload = encode_json(body)
        else:
            payload = body or b""
        if ctype is None and payload:
            ctype = "application/json" if isinstance(body, (dict, list)) or body in ("default", "context_length_exceeded") \
                else "text/plain; charset=utf-8"
        await ctx.resp.send(code, {**ctx.base_headers(ctype), **st["headers"]}, payload)

    @staticmethod
    def _default_error(code: int, model: str) -> dict[str, Any]:
        if code == 401:
            return error_body("Incorrect API key provided: sk-mock***********1234. You can find your API key at "
                              "https://platform.openai.com/account/api-keys.", code="invalid_api_key")
        if code == 403:
            return error_body("Country, region, or territory not supported", "request_forbidden",
                              code="unsupported_country_region_territory")
        if code == 404:
            return error_body(f"The model `{model}` does not exist or you do not have access to it.",
                              code="model_not_found")
        if code == 429:
            return error_body("Rate limit reached.", "requests", code="rate_limit_exceeded")
        if code >= 500:
            return error_body("The server had an error while processing your request. Sorry about that!",
                              "server_error")
        return error_body("Invalid request.", "invalid_request_error")
