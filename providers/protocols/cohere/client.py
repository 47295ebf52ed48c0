"""Reaching Cohere: base URL, Bearer auth, and Cohere's error shape and status codes.

``runtime:`` options (:class:`~.options.CohereOptions`, all optional; credentials, URLs and
JSON come from :mod:`providers.kit.http`):

    base_url             default API root, https://api.cohere.com (``/v2/<endpoint>`` is appended)
    base_url_credential  credential that overrides it (Dify: ``base_url``); a value ending in
                         ``/v1`` or ``/v2`` (Dify's placeholder is ``https://api.cohere.ai/v1``)
                         has that suffix dropped, since this adapter always speaks v2
    api_key_credential   credential holding the key, sent as ``Authorization: Bearer`` (``api_key``)
    validate_model       the rerank model a provider-credential check uses (see :mod:`.adapter`)

Errors are ``{"id"?, "message"}`` (read by the kit's :func:`~providers.kit.http.error_message`).
Cohere's SDK knows 400, 401, 402, 403, 404, 422, 429, 498 (invalid token), 499 (request
cancelled), 500, 501 and 503. 498 is a rejected key exactly like
401, so it maps to InvokeAuthorizationError; a 429 is usually the trial key's per-minute or
monthly limit ("You are using a Trial key, which is limited to ...").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from engine._http.status import error_for_status
from engine.adapter import CallContext
from engine.errors import (
    InvokeAuthorizationError,
    InvokeConnectionError,
    InvokeError,
    InvokeServerUnavailableError,
    RuntimeFault,
)
from providers.kit import http

from .options import CohereOptions

_MAX_MESSAGE = 500


def options(ctx: CallContext) -> CohereOptions:
    return cast(CohereOptions, ctx.options)


def base_url(ctx: CallContext) -> str:
    o = options(ctx)
    root = http.base_url(ctx, default=o.base_url, credential_name=o.base_url_credential)
    for suffix in ("/v1", "/v2"):
        root = root.removesuffix(suffix)
    return root


def url(ctx: CallContext, endpoint: str) -> str:
    return f"{base_url(ctx)}/v2/{endpoint}"


def headers(ctx: CallContext, stream: bool = False) -> dict[str, str]:
    out = {"content-type": "application/json", "accept": "text/event-stream" if stream else "application/json"}
    key = http.credential(ctx, options(ctx).api_key_credential)
    if key:
        out["authorization"] = f"Bearer {key}"
    return out


def error_for(status: int, message: str, response_headers: Mapping[str, str] | None = None, *,
              in_body: bool = False) -> RuntimeFault:
    """The runtime error for Cohere's status (498/499 are Cohere's own); ``in_body``: reported
    under a 200, so no upstream HTTP status is recorded."""
    upstream = None if in_body else status
    if status == 498:  # invalid token: the key is wrong, whatever the code says
        return InvokeAuthorizationError(upstream_status=upstream)
    if status == 499:  # Cohere cancelled the request on its side
        return InvokeConnectionError(message or "The provider cancelled the request", upstream_status=upstream)
    return error_for_status(status, message, response_headers, in_body=in_body)


async def check_status(response: http.UpstreamResponse) -> None:
    """Raise the mapped error when the response is not 2xx (reads the error body). Not the
    kit's plain check: Cohere's 498 and 499 map their own way."""
    if response.status_code < 400:
        return
    await response.aread()
    message = http.error_message(response)
    if not message and "text/plain" in response.headers.get("content-type", ""):
        message = response.text[:200]
    raise error_for(response.status_code, message[:_MAX_MESSAGE], response.headers)


async def read_json(response: http.UpstreamResponse) -> dict[str, Any]:
    """Status check, then the whole body as a JSON object."""
    await check_status(response)
    body = http.loads(await response.aread())
    if not isinstance(body, dict):
        raise InvokeError("The provider returned a response that is not a JSON object")
    return body


def body_error(obj: Any, event: str = "") -> RuntimeFault | None:
    """The error a stream ``error`` event (by SSE event name or ``type``) carries, or None."""
    if not isinstance(obj, dict) or (event != "error" and obj.get("type") != "error"):
        return None
    status = obj.get("status_code") or obj.get("status")
    message = str(obj.get("message") or obj.get("error") or "error in stream")
    return error_for(status if isinstance(status, int) and 400 <= status < 600 else 500, message, in_body=True)


def finish_error(raw: str, detail: str = "") -> RuntimeFault:
    """``finish_reason`` ERROR / TIMEOUT under a 200: the generation failed on Cohere's side."""
    text = detail or ("the provider timed out while generating" if raw == "TIMEOUT"
                      else "the provider ended the response with an error")
    return InvokeServerUnavailableError(f"{raw}: {text}"[:_MAX_MESSAGE])
