"""Reaching Cohere: base URL, Bearer auth, and Cohere's error shape and status codes.

``runtime:`` options of the provider YAML (all optional):

    base_url             default API root, https://api.cohere.com (``/v2/<endpoint>`` is appended)
    base_url_credential  credential that overrides it (Dify: ``base_url``); a value ending in
                         ``/v1`` or ``/v2`` (Dify's placeholder is ``https://api.cohere.ai/v1``)
                         has that suffix dropped, since this adapter always speaks v2
    api_key_credential   credential holding the key, sent as ``Authorization: Bearer`` (``api_key``)
    validate_model       the rerank model a provider-credential check uses (see :mod:`.provider`)

Errors are ``{"id"?, "message"}``. Cohere's SDK knows 400, 401, 402, 403, 404, 422, 429, 498
(invalid token), 499 (request cancelled), 500, 501 and 503. 498 is a rejected key exactly like
401, so it maps to InvokeAuthorizationError; a 429 is usually the trial key's per-minute or
monthly limit ("You are using a Trial key, which is limited to ...").
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from engine._http.status import error_for_status
from engine.adapter import CallContext
from engine.errors import (
    FieldViolation,
    InvokeAuthorizationError,
    InvokeBadRequestError,
    InvokeConnectionError,
    InvokeError,
    InvokeServerUnavailableError,
    RuntimeFault,
)

DEFAULT_BASE_URL = "https://api.cohere.com"
_MAX_MESSAGE = 500


def _credential(ctx: CallContext, option: str, default: str) -> str:
    name = str(ctx.options.get(option) or default)
    value = ctx.credentials.get(name)
    return str(value).strip() if value else ""


def base_url(ctx: CallContext) -> str:
    custom = _credential(ctx, "base_url_credential", "base_url")
    if custom:
        if not custom.startswith(("http://", "https://")):
            field = ctx.options.get("base_url_credential") or "base_url"
            raise InvokeBadRequestError(
                "API base URL must start with http:// or https://",
                field_violations=(FieldViolation(f"credentials.{field}", "must be an http(s) URL"),),
            )
        root = custom.rstrip("/")
    else:
        root = str(ctx.options.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
    for suffix in ("/v1", "/v2"):
        root = root.removesuffix(suffix)
    return root


def url(ctx: CallContext, endpoint: str) -> str:
    return f"{base_url(ctx)}/v2/{endpoint}"


def headers(ctx: CallContext, stream: bool = False) -> dict[str, str]:
    out = {"content-type": "application/json", "accept": "text/event-stream" if stream else "application/json"}
    key = _credential(ctx, "api_key_credential", "api_key")
    if key:
        out["authorization"] = f"Bearer {key}"
    return out


def dumps(body: Any) -> bytes:
    return orjson.dumps(body)


def loads(data: bytes | str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


def error_message(response: httpx.Response) -> str:
    body = loads(response.content) if response.content else None
    if isinstance(body, dict):
        message = body.get("message") or body.get("error") or body.get("detail")
        if isinstance(message, dict):
            message = message.get("message")
        return str(message or "")[:_MAX_MESSAGE]
    ctype = response.headers.get("content-type", "")
    return response.text[:200] if "text/plain" in ctype else ""


def error_for(status: int, message: str, response_headers: httpx.Headers | None = None) -> RuntimeFault:
    if status == 498:  # invalid token: the key is wrong, whatever the code says
        return InvokeAuthorizationError(upstream_status=status)
    if status == 499:  # Cohere cancelled the request on its side
        return InvokeConnectionError(message or "The provider cancelled the request", upstream_status=status)
    return error_for_status(status, message, response_headers)


async def raise_for_status(response: httpx.Response) -> None:
    """Raise the mapped error when the response is not 2xx (reads the error body)."""
    if response.status_code < 400:
        return
    await response.aread()
    raise error_for(response.status_code, error_message(response), response.headers)


async def read_json(response: httpx.Response) -> dict[str, Any]:
    """Status check, then the whole body as a JSON object."""
    await raise_for_status(response)
    body = loads(await response.aread())
    if not isinstance(body, dict):
        raise InvokeError("The provider returned a response that is not a JSON object")
    return body


def finish_error(raw: str, detail: str = "") -> RuntimeFault:
    """``finish_reason`` ERROR / TIMEOUT under a 200: the generation failed on Cohere's side."""
    text = detail or ("the provider timed out while generating" if raw == "TIMEOUT"
                      else "the provider ended the response with an error")
    return InvokeServerUnavailableError(f"{raw}: {text}"[:_MAX_MESSAGE])
