"""Anthropic Messages API over HTTP: unary, streaming and token counting.

Reaching the provider: :class:`~.options.AnthropicOptions` (the provider YAML's ``runtime:``
block; every key has Anthropic's default): ``base_url`` (the API root, without /v1),
``base_url_credential`` (Dify: anthropic_api_url), ``api_key_credential`` (sent as x-api-key;
Dify: anthropic_api_key), ``api_version`` (the anthropic-version header) and ``validate_model``.

Streams run on the kit's driver (:func:`providers.kit.stream.stream_chunks`), so the contract
is the one every protocol keeps:
- nothing is yielded until the provider answered 2xx;
- content, reasoning and tool-call fragments are yielded as they arrive, one chunk per event
  (:func:`providers.kit.stream.one_event_each`); the final chunk carries the finish reason and the raw token counts;
- ``event: error`` under a 200 raises the mapped error (``overloaded_error`` →
  InvokeServerUnavailableError, ``rate_limit_error`` → InvokeRateLimitError, ...), after the
  content that came before it;
- a stream that ends without ``message_stop`` is truncated: InvokeConnectionError.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from engine._http.response import UpstreamResponse
from engine._http.sse import SSEEvent, aiter_sse
from engine._http.status import error_for_status
from engine.adapter import CallContext, LLMRequest
from engine.errors import InvokeBadRequestError, InvokeConnectionError, InvokeError, RuntimeFault
from engine.messages import LLMChunk, LLMResult, PromptMessage, Tool
from providers.kit import http
from providers.kit.blocks import Driven
from providers.kit.stream import one_event_each, stream_chunks

from .options import AnthropicOptions
from .transform import (
    ModelTraits,
    StreamAssembler,
    build_count_tokens_body,
    build_messages_body,
    parse_message,
)

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


def options(ctx: CallContext) -> AnthropicOptions:
    """The call's typed options. A host composing this chat with its own options (Vertex)
    reaches Anthropic through its endpoint and never reads these: it gets the defaults; a
    plain mapping (unit tests build contexts by hand) is validated."""
    given: Any = ctx.options
    if isinstance(given, AnthropicOptions):
        return given
    raw = dict(given) if isinstance(given, dict) else {}
    return AnthropicOptions.model_validate({**raw, "protocol": "anthropic"})


def base_url(ctx: CallContext) -> str:
    o = options(ctx)
    url = http.base_url(ctx, default=o.base_url, credential_name=o.base_url_credential)
    # The SDK (and so Dify) appends /v1/messages to the root; accept a root that already has /v1.
    return url.removesuffix("/v1")


def url(ctx: CallContext, path: str) -> str:
    return f"{base_url(ctx)}/v1/{path.lstrip('/')}"


def headers(ctx: CallContext) -> dict[str, str]:
    o = options(ctx)
    out = {"content-type": "application/json", "anthropic-version": o.api_version}
    key = http.credential(ctx, o.api_key_credential)
    if key:
        out["x-api-key"] = key
    return out


class MessagesEndpoint:
    """Where Messages API calls go and how they authenticate: Anthropic's own API.

    :class:`AnthropicChat` takes an endpoint, so a host that serves the same Messages protocol
    at other URLs with other auth (Claude on Vertex AI: ``:rawPredict``, an OAuth bearer token,
    ``anthropic_version`` in the body; :mod:`providers.protocols.vertex`) reuses the chat as is.
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


def error_message(response: UpstreamResponse) -> str:
    """``{"type": "error", "error": {"type", "message"}}``; a non-JSON body (Cloudflare's 413
    page, a proxy's HTML) yields a plain description instead of its text."""
    body = http.loads(response.content)
    if body is None:
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


async def _check_status(response: UpstreamResponse) -> None:
    try:
        await http.check_status(response, error_message)
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
    text = f"{kind}: {message}" if kind else message
    if status == 402:  # billing_error: nothing a retry can fix
        return InvokeBadRequestError(text)
    return error_for_status(status, text, in_body=True)


def body_error(obj: Any) -> RuntimeFault | None:
    """The error a 200 body or stream event carries (``{"type": "error", ...}``), or None."""
    if isinstance(obj, dict) and obj.get("type") == "error":
        return _error_event(obj)
    return None


_DECODE = one_event_each(aiter_sse)


def _events(model: str) -> Driven:
    """The driver's assembler: SSE events → :class:`~.transform.StreamAssembler`."""
    blocks = StreamAssembler(model)

    def feed(event: SSEEvent) -> LLMChunk | None:
        if not event.data:
            return None
        obj = http.loads(event.data)
        if not isinstance(obj, dict):
            raise InvokeConnectionError("The provider's stream broke off mid-event")
        error = _error_event(obj) if event.event == "error" else body_error(obj)
        if error is not None:
            raise error
        return blocks.feed(obj)

    return Driven(blocks, feed)


# ---- the capability --------------------------------------------------------------------------


class AnthropicChat:
    """LLMModel for Anthropic's Messages API (or another host of it: see :class:`MessagesEndpoint`)."""

    def __init__(self, endpoint: Any = MESSAGES_ENDPOINT) -> None:
        self.endpoint = endpoint

    def _body(self, ctx: CallContext, request: LLMRequest, stream: bool) -> bytes:
        traits = ModelTraits.from_schema(ctx.schema)
        body = build_messages_body(ctx.model, request, traits, stream=stream)
        return http.dumps(self.endpoint.body(body, "stream" if stream else "messages"))

    async def _post(self, ctx: CallContext, action: str, body: bytes) -> Any:
        """POST a unary call; the parsed JSON of its 2xx body."""
        async with ctx.http.stream(
            "POST", self.endpoint.url(ctx, ctx.model, action), headers=await self.endpoint.headers(ctx),
            content=body, deadline=ctx.deadline,
        ) as response:
            await _check_status(response)
            raw = await response.aread()
        return http.loads(raw)

    async def generate(self, ctx: CallContext, request: LLMRequest) -> LLMResult:
        parsed = await self._post(ctx, "messages", self._body(ctx, request, stream=False))
        if not isinstance(parsed, dict):
            raise InvokeError("The provider returned a response that is not a JSON object")
        error = body_error(parsed)
        if error is not None:
            raise error
        return parse_message(parsed, ctx.model)

    async def stream(self, ctx: CallContext, request: LLMRequest) -> AsyncIterator[LLMChunk]:
        body = self._body(ctx, request, stream=True)
        chunks = stream_chunks(
            ctx, self.endpoint.url(ctx, ctx.model, "stream"), body=body, headers=await self.endpoint.headers(ctx),
            errors=error_message, assembler=_events(ctx.model), decode=_DECODE, check=_check_status,
        )
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]

    async def count_tokens(self, ctx: CallContext, messages: list[PromptMessage], tools: list[Tool]) -> int:
        """Anthropic's own count (``POST /v1/messages/count_tokens``); free, but a real request."""
        body = http.dumps(self.endpoint.body(build_count_tokens_body(ctx.model, messages, tools), "count_tokens"))
        parsed = await self._post(ctx, "count_tokens", body)
        tokens = parsed.get("input_tokens") if isinstance(parsed, dict) else None
        if not isinstance(tokens, int):
            raise InvokeError("The provider's token count is not in the expected form")
        return tokens
