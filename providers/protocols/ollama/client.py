"""Reaching an Ollama server: its base URL, optional Bearer key, and Ollama's error shape.

The server is the caller's (``base_url`` credential, e.g. ``http://192.168.1.100:11434``); a
local one is usually on a private or loopback address, which the egress guard refuses unless
the server config allows it (``egress.allowed_cidrs``). A base URL given with ``/api`` or
``/v1`` (the OpenAI-compatible layer) is reduced to the server root. The typed ``runtime:``
options are :class:`~.options.OllamaOptions`; credentials, URLs, JSON and the status check
come from :mod:`providers.kit.http`.

Errors are ``{"error": "..."}`` with 400, 404 (``model "x" not found, try pulling it first``),
429, 500 or 502: the kit's :func:`~providers.kit.http.error_message` reads them. A failure
after streaming began is one last ``{"error": ...}`` line under the 200 already sent; Ollama
gives it no status, so :func:`body_error` reports it as the server failing
(InvokeServerUnavailableError).
"""

from __future__ import annotations

from typing import Any, cast

from engine.adapter import CallContext
from engine.errors import InvokeServerUnavailableError, RuntimeFault
from providers.kit import http

from .options import OllamaOptions

_MAX_MESSAGE = 500


def options(ctx: CallContext) -> OllamaOptions:
    return cast(OllamaOptions, ctx.options)


def base_url(ctx: CallContext) -> str:
    o = options(ctx)
    url = http.base_url(ctx, default=None, credential_name=o.base_url_credential)
    for suffix in ("/api", "/v1"):
        url = url.removesuffix(suffix)
    return url


def url(ctx: CallContext, endpoint: str) -> str:
    return f"{base_url(ctx)}/api/{endpoint}"


def headers(ctx: CallContext) -> dict[str, str]:
    out = {"content-type": "application/json", "accept": "application/json"}
    key = http.credential(ctx, options(ctx).api_key_credential)
    if key:
        out["authorization"] = f"Bearer {key}"
    return out


def body_error(obj: Any) -> RuntimeFault | None:
    """The error an ``{"error": ...}`` object under a 200 carries (a stream line or a unary
    body), or None."""
    err = obj.get("error") if isinstance(obj, dict) else None
    if not err:
        return None
    if isinstance(err, dict):
        err = err.get("message")
    return InvokeServerUnavailableError(str(err or "error in stream")[:_MAX_MESSAGE])
