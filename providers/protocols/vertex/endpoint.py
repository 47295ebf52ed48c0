"""Reaching Vertex AI: model URLs, the bearer header, and one retry after a refused token.

Every model lives at::

    {host}/v1/projects/{project}/locations/{location}/publishers/{publisher}/models/{model}:{method}

``host`` is ``https://{location}-aiplatform.googleapis.com``, or ``https://aiplatform.googleapis.com``
for the ``global`` location (the provider YAML's ``runtime.base_url`` / ``global_base_url``);
the ``vertex_endpoint_url`` credential replaces it (a Private Service Connect endpoint, a
proxy, a test mock). Publishers: ``google`` (Gemini: ``generateContent``,
``streamGenerateContent?alt=sse``, ``countTokens``, ``predict`` for embeddings) and
``anthropic`` (Claude: ``rawPredict``, ``streamRawPredict``; token counting at the fixed
model ``count-tokens:rawPredict``).

The endpoint objects plug into the Gemini and Anthropic chats (the declared composition: see
:class:`providers.protocols.gemini.client.ApiKeyEndpoint` and
:class:`providers.protocols.anthropic.chat.MessagesEndpoint` for the shape they take), so the
request and response transforms are theirs, unchanged; the embeddings use only the URL and
header. Each object is made for one attempt and carries the access
token that attempt uses: on a 401 from Vertex (a token that expired early or was revoked),
:func:`with_token` / :func:`stream_with_token` drop exactly that token and try once more with
a new one, which for a stream is only possible before its first chunk went out.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import quote

from engine.adapter import CallContext
from engine.errors import FieldViolation, InvokeAuthorizationError, InvokeBadRequestError
from providers.kit import http

from .auth import TokenCache, TokenExchangeError
from .options import VertexOptions

PROJECT_CREDENTIAL = "vertex_project_id"
LOCATION_CREDENTIAL = "vertex_location"
ANTHROPIC_VERSION = "vertex-2023-10-16"
CLAUDE_PREFIX = "claude-"

# Region names (us-central1, europe-west4, global): they become part of a host name.
_LOCATION = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
# Project ids (my-project-123), project numbers, and legacy domain-scoped ids (example.com:my-project).
_PROJECT = re.compile(r"^[a-z0-9][a-z0-9.:-]{0,99}$")

T = TypeVar("T")


def _bad(field: str, description: str) -> InvokeBadRequestError:
    return InvokeBadRequestError(f"credentials.{field}: {description}",
                                 field_violations=(FieldViolation(f"credentials.{field}", description),))


def options(ctx: CallContext) -> VertexOptions:
    """The call's typed options (a plain mapping, as unit tests build contexts, is validated)."""
    given: Any = ctx.options
    if isinstance(given, VertexOptions):
        return given
    raw = dict(given) if isinstance(given, dict) else {}
    return VertexOptions.model_validate({**raw, "protocol": "vertex"})


def location(ctx: CallContext) -> str:
    value = http.credential(ctx, LOCATION_CREDENTIAL) or "us-central1"
    if not _LOCATION.match(value):
        raise _bad(LOCATION_CREDENTIAL, "must be a Google Cloud location such as us-central1 or global")
    return value


def project(ctx: CallContext) -> str:
    value = http.credential(ctx, PROJECT_CREDENTIAL)
    if not value:
        raise _bad(PROJECT_CREDENTIAL, "Variable vertex_project_id is required")
    if not _PROJECT.match(value):
        raise _bad(PROJECT_CREDENTIAL, "must be a Google Cloud project id or number")
    return value


def host(ctx: CallContext) -> str:
    o = options(ctx)
    custom = http.credential(ctx, o.base_url_credential)
    if custom:
        if not custom.startswith(("http://", "https://")):
            raise _bad(o.base_url_credential, "must be an http(s) URL")
        http.check_url(custom, o.base_url_credential or "base_url")
        return custom.rstrip("/").removesuffix("/v1")
    where = location(ctx)
    if where == "global":
        return o.global_base_url.rstrip("/")
    return o.base_url.rstrip("/").replace("{location}", where)


def model_url(ctx: CallContext, publisher: str, model: str, method: str) -> str:
    """The URL of ``method`` on a publisher model (``@`` stays as is: Claude ids carry dates)."""
    return (f"{host(ctx)}/v1/projects/{quote(project(ctx), safe='')}/locations/{location(ctx)}"
            f"/publishers/{publisher}/models/{quote(model, safe='-._~@')}:{method}")


def is_claude(model: str) -> bool:
    return model.startswith(CLAUDE_PREFIX)


# ---- endpoints for the reused adapters ----------------------------------------------------------


class _Bearer:
    __slots__ = ("token",)

    def __init__(self, token: str) -> None:
        self.token = token

    async def headers(self, ctx: CallContext) -> dict[str, str]:
        return {"content-type": "application/json", "authorization": f"Bearer {self.token}"}


class GeminiEndpoint(_Bearer):
    """Gemini models (publisher ``google``) for :class:`~providers.protocols.gemini.chat.GeminiChat`
    and the embeddings."""

    __slots__ = ()

    def url(self, ctx: CallContext, model: str, method: str) -> str:
        return model_url(ctx, "google", model, method)

    def count_tokens_body(self, model: str, request: dict[str, Any]) -> dict[str, Any]:
        """Vertex's countTokens takes contents, systemInstruction and tools directly."""
        return request


class ClaudeEndpoint(_Bearer):
    """Claude models (publisher ``anthropic``) for :class:`~providers.protocols.anthropic.chat.AnthropicChat`:
    the Messages body without ``model`` (it is in the URL) and with ``anthropic_version`` in
    the body instead of a header, as Anthropic's own Vertex client sends it."""

    __slots__ = ()

    def url(self, ctx: CallContext, model: str, action: str) -> str:
        if action == "count_tokens":
            return model_url(ctx, "anthropic", "count-tokens", "rawPredict")
        return model_url(ctx, "anthropic", model, "streamRawPredict" if action == "stream" else "rawPredict")

    def body(self, body: dict[str, Any], action: str) -> dict[str, Any]:
        out = {"anthropic_version": ANTHROPIC_VERSION, **body}
        if action != "count_tokens":  # count-tokens is one shared model: it reads the model from the body
            out.pop("model", None)
        return out


# ---- one retry with a new token -----------------------------------------------------------------


def refused_token(exc: InvokeAuthorizationError) -> bool:
    """Vertex said 401: the token (not the account) is bad, so a new one may work. A 403
    (no permission) or a refused exchange would fail again."""
    return exc.upstream_status == 401 and not isinstance(exc, TokenExchangeError)


async def with_token(ctx: CallContext, tokens: TokenCache, attempt: Callable[[str], Awaitable[T]]) -> T:
    """Run ``attempt(token)``; after a 401, drop that token and run it once more with a new one."""
    token = await tokens.token(ctx)
    try:
        return await attempt(token)
    except InvokeAuthorizationError as exc:
        if not refused_token(exc):
            raise
    tokens.invalidate(ctx, token)
    return await attempt(await tokens.token(ctx))


async def stream_with_token(
    ctx: CallContext, tokens: TokenCache, open_stream: Callable[[str], AsyncIterator[T]]
) -> AsyncIterator[T]:
    """:func:`with_token` for a stream: the retry happens only if nothing was yielded yet."""
    token = await tokens.token(ctx)
    started = False
    stream = open_stream(token)
    try:
        async for item in stream:
            started = True
            yield item
        return
    except InvokeAuthorizationError as exc:
        if started or not refused_token(exc):
            raise
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    tokens.invalidate(ctx, token)
    retry = open_stream(await tokens.token(ctx))
    try:
        async for item in retry:
            yield item
    finally:
        await retry.aclose()  # type: ignore[attr-defined]
