"""Reaching an Ollama server: its base URL, optional Bearer key, and Ollama's error shape.

The server is the caller's (``base_url`` credential, e.g. ``http://192.168.1.100:11434``); a
local one is usually on a private or loopback address, which the egress guard refuses unless
the server config allows it (``egress.allowed_cidrs``). A base URL given with ``/api`` or
``/v1`` (the OpenAI-compatible layer) is reduced to the server root.

``runtime:`` options of the provider YAML (all optional):

    base_url_credential  credential holding the server URL (``base_url``)
    api_key_credential   credential holding an optional key, sent as ``Authorization: Bearer``
                         (Ollama's cloud, or a proxy in front of a server) (``api_key``)

Errors are ``{"error": "..."}`` with 400, 404 (``model "x" not found, try pulling it first``),
429, 500 or 502. A failure after streaming began is one last ``{"error": ...}`` line under the
200 already sent; Ollama gives it no status, so it is reported as the server failing
(InvokeServerUnavailableError).
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from engine._http.status import error_for_status
from engine.adapter import CallContext
from engine.errors import FieldViolation, InvokeBadRequestError, InvokeServerUnavailableError, RuntimeFault

_MAX_MESSAGE = 500


def _credential(ctx: CallContext, option: str, default: str) -> str:
    name = str(ctx.options.get(option) or default)
    value = ctx.credentials.get(name)
    return str(value).strip() if value else ""


def base_url(ctx: CallContext) -> str:
    url = _credential(ctx, "base_url_credential", "base_url")
    field = ctx.options.get("base_url_credential") or "base_url"
    if not url:
        raise InvokeBadRequestError(
            "The Ollama server URL is required",
            field_violations=(FieldViolation(f"credentials.{field}", "required"),),
        )
    if not url.startswith(("http://", "https://")):
        raise InvokeBadRequestError(
            "The Ollama server URL must start with http:// or https://",
            field_violations=(FieldViolation(f"credentials.{field}", "must be an http(s) URL"),),
        )
    url = url.rstrip("/")
    for suffix in ("/api", "/v1"):
        url = url.removesuffix(suffix)
    return url


def url(ctx: CallContext, endpoint: str) -> str:
    return f"{base_url(ctx)}/api/{endpoint}"


def headers(ctx: CallContext) -> dict[str, str]:
    out = {"content-type": "application/json", "accept": "application/json"}
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
        err = body.get("error")
        if isinstance(err, dict):
            err = err.get("message")
        return str(err or body.get("message") or "")[:_MAX_MESSAGE]
    ctype = response.headers.get("content-type", "")
    return response.text[:200] if "text/plain" in ctype else ""


async def raise_for_status(response: httpx.Response) -> None:
    """Raise the mapped error when the response is not 2xx (reads the error body)."""
    if response.status_code < 400:
        return
    await response.aread()
    raise error_for_status(response.status_code, error_message(response), response.headers)


def in_stream_error(obj: dict[str, Any]) -> RuntimeFault:
    """An ``{"error": ...}`` object under a 200 (a stream line or a unary body)."""
    err = obj.get("error")
    if isinstance(err, dict):
        err = err.get("message")
    return InvokeServerUnavailableError(str(err or "error in stream")[:_MAX_MESSAGE])
