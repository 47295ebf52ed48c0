"""Anthropic Messages API over HTTP: unary, streaming and token counting.

Reaching the provider (the provider YAML's ``runtime:`` block, all optional):

    base_url             default https://api.anthropic.com (the API root, without /v1)
    base_url_credential  credential that overrides it (Dify: anthropic_api_url)
    api_key_credential   credential holding the key, sent as x-api-key (Dify: anthropic_api_key)
    api_version          anthropic-version header, default 2023-06-01
    validate_model       the model a provider-credential check pings (see :mod:`.provider`)

Stream rules (the same contract as the OpenAI family):
- nothing is yielded until the provider answered 2xx;
- content, reasoning and tool-call fragments are yielded as they arrive; the final chunk
  carries the finish reason and the raw token counts;
- ``event: error`` under a 200 raises the mapped error (``overloaded_error`` →
  InvokeServerUnavailableError, ``rate_limit_error`` → InvokeRateLimitError, ...);
- a stream that ends without ``message_stop`` is truncated: InvokeConnectionError.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

from engine._http.sse import aiter_sse
from engine._http.status import error_for_status, raise_for_status
from engine.adapter import CallContext, LLMRequest
from engine.errors import (
    FieldViolation,
    InvokeBadRequestError,
    InvokeConnectionError,
    InvokeError,
    RuntimeFault,
)
from engine.messages import LLMChunk, LLMResult, PromptMessage, Tool

from .transform import (
    ModelTraits,
    StreamAssembler,
    build_count_tokens_body,
    build_messages_body,
    parse_message,
)

DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"

# error.type in a body or an in-stream error event -> the HTTP status Anthropic uses for it
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


# ---- reaching the provider -------------------------------------------------------------------


def _credential(ctx: CallContext, option: str, default: str) -> str:
    name = ctx.options.get(option) or default
    value = ctx.credentials.get(str(name))
    return str(value).strip() if value else ""


def base_url(ctx: CallContext) -> str:
    custom = _credential(ctx, "base_url_credential", "anthropic_api_url")
    if custom:
        if not custom.startswith(("http://", "https://")):
            field = ctx.options.get("base_url_credential") or "anthropic_api_url"
            raise InvokeBadRequestError(
                "API URL must start with http:// or https://",
                field_violations=(FieldViolation(f"credentials.{field}", "must be an http(s) URL"),),
            )
        url = custom.rstrip("/")
    else:
        url = str(ctx.options.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
    # The SDK (and so Dify) appends /v1/messages to the root; accept a root that already has /v1.
    return url.removesuffix("/v1")


def url(ctx: CallContext, path: str) -> str:
    return f"{base_url(ctx)}/v1/{path.lstrip('/')}"


def headers(ctx: CallContext) -> dict[str, str]:
    out = {
        "content-type": "application/json",
        "anthropic-version": str(ctx.options.get("api_version") or API_VERSION),
    }
    key = _credential(ctx, "api_key_credential", "anthropic_api_key")
    if key:
        out["x-api-key"] = key
    return out


class MessagesEndpoint:
    """Where Messages API calls go and how they authenticate: Anthropic's own API.

    :class:`AnthropicChat` takes an endpoint, so a host that serves the same Messages protocol
    at other URLs with other auth (Claude on Vertex AI: ``:rawPredict``, an OAuth bearer token,
    ``anthropic_version`` in the body; :mod:`providers.wire.vertex`) reuses the chat as is.
    ``action`` is ``messages``, ``stream`` or ``count_tokens``.
    """

    def url(self, ctx: CallContext, model: str, action: str) -> str:
        return url(ctx, "messages/count_tokens" if action == "count_tokens" else "messages")

    async def headers(self, ctx: CallContext) -> dict[str, str]:
        return headers(ctx)

    def body(self, body: dict[str, Any], action: str) -> dict[str, Any]:
        """The request body as this host wants it (here: unchanged)."""
        return body


MESSAGES_ENDPOINT = MessagesEndpoint()


def error_message(response: httpx.Response) -> str:
    """``{"type": "error", "error": {"type", "message"}}``; a non-JSON body (Cloudflare's 413
    page, a proxy's HTML) yields a plain description instead of its text."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        if response.status_code == 413:
            return "request_too_large: the request exceeds the maximum size the provider accepts"
        return ""
    if not isinstance(body, dict):
        return ""
    err = body.get("error")
    if isinstance(err, dict):
        message = str(err.get("message") or "")
        kind = str(err.get("type") or "")
        return f"{kind}: {message}" if kind and message else message or kind
    if isinstance(err, str):
        return err
    return str(body.get("message") or "")


async def _check_status(response: httpx.Response) -> None:
    try:
        await raise_for_status(response, error_message)
    except RuntimeFault as exc:
        if exc.upstream_status == 402:  # billing_error: nothing a retry can fix
            raise InvokeBadRequestError(exc.description, upstream_status=402) from None
        raise


def _error_event(obj: dict[str, Any]) -> RuntimeFault:
    """An ``error`` object in a 200 (stream event or body) as the mapped runtime error."""
    err = obj.get("error")
    if isinstance(err, dict):
        kind = str(err.get("type") or "")
        message = str(err.get("message") or kind or "error in stream")
    else:
        kind, message = "", str(err or "error in stream")
    status = ERROR_STATUS.get(kind, 500)
    error = error_for_status(status, f"{kind}: {message}" if kind else message)
    if status == 402:
        error = InvokeBadRequestError(error.description)
    error.upstream_status = None  # the HTTP status was 200
    return error


def _loads(data: bytes | str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


# ---- the capability --------------------------------------------------------------------------


class AnthropicChat:
    """LLMModel for Anthropic's Messages API (or another host of it: see :class:`MessagesEndpoint`)."""

    def __init__(self, endpoint: Any = MESSAGES_ENDPOINT) -> None:
        self.endpoint = endpoint

    def _body(self, ctx: CallContext, request: LLMRequest, stream: bool) -> bytes:
        traits = ModelTraits.from_schema(ctx.schema)
        body = build_messages_body(ctx.model, request, traits, stream=stream)
        return orjson.dumps(self.endpoint.body(body, "stream" if stream else "messages"))

    async def _open(self, ctx: CallContext, action: str, body: bytes) -> Any:
        return ctx.http.stream(
            "POST", self.endpoint.url(ctx, ctx.model, action), headers=await self.endpoint.headers(ctx),
            content=body, deadline=ctx.deadline,
        )

    async def generate(self, ctx: CallContext, request: LLMRequest) -> LLMResult:
        body = self._body(ctx, request, stream=False)
        async with await self._open(ctx, "messages", body) as response:
            await _check_status(response)
            raw = await response.aread()
        parsed = _loads(raw)
        if not isinstance(parsed, dict):
            raise InvokeError("The provider returned a response that is not a JSON object")
        if parsed.get("type") == "error":
            raise _error_event(parsed)
        return parse_message(parsed, ctx.model)

    async def stream(self, ctx: CallContext, request: LLMRequest) -> AsyncIterator[LLMChunk]:
        body = self._body(ctx, request, stream=True)
        assembler = StreamAssembler(ctx.model)
        async with await self._open(ctx, "stream", body) as response:
            await _check_status(response)
            async for event in aiter_sse(response.aiter_bytes()):
                if not event.data:
                    continue
                obj = _loads(event.data)
                if not isinstance(obj, dict):
                    raise InvokeConnectionError("The provider's stream broke off mid-event")
                if event.event == "error" or obj.get("type") == "error":
                    raise _error_event(obj)
                chunk = assembler.feed(obj)
                if chunk is not None:
                    yield chunk
                if assembler.done:
                    break
            if not assembler.done:
                raise InvokeConnectionError("The provider's stream ended before the response was complete")
        yield assembler.final()

    async def count_tokens(self, ctx: CallContext, messages: list[PromptMessage], tools: list[Tool]) -> int:
        """Anthropic's own count (``POST /v1/messages/count_tokens``); free, but a real request."""
        body = orjson.dumps(self.endpoint.body(build_count_tokens_body(ctx.model, messages, tools), "count_tokens"))
        async with await self._open(ctx, "count_tokens", body) as response:
            await _check_status(response)
            raw = await response.aread()
        parsed = _loads(raw)
        tokens = parsed.get("input_tokens") if isinstance(parsed, dict) else None
        if not isinstance(tokens, int):
            raise InvokeError("The provider's token count is not in the expected form")
        return tokens
