"""Reaching a Triton server: its URL, the model paths, and Triton's error shape.

The server is the caller's (``server_url`` credential, e.g. ``http://192.168.1.100:8000``, the
HTTP/REST port); a private or loopback address is refused by the egress guard unless the server
config allows it (``egress.allowed_cidrs``). A URL given with a trailing ``/v2`` is reduced to the
server root. Triton has no authentication of its own.

Paths (KServe v2 and Triton's generate extension):

    GET  /v2/models/{model}/ready            200 = ready, anything else = not ready
    POST /v2/models/{model}/generate         one JSON object
    POST /v2/models/{model}/generate_stream  SSE, one ``data: {...}`` per response

The model name is one path segment (percent-encoded); ``name/versions/N`` is not split.

Errors are ``{"error": "<message>"}``, usually with 400 (an unknown model is 400 ``Request for
unknown model: 'x' is not found``, reported here as NotFoundError). ``/generate_stream`` fixes
its HTTP status with the first response, so an inference failure after that arrives as an
``{"error": ...}`` event under the 200; Triton gives it no status and it is reported as the server
failing (InvokeServerUnavailableError); :func:`body_error` reads it.
"""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import quote

from engine._http.response import UpstreamResponse
from engine._http.status import error_for_status
from engine.adapter import CallContext
from engine.errors import (
    FieldViolation,
    InvokeBadRequestError,
    InvokeServerUnavailableError,
    NotFoundError,
    RuntimeFault,
)
from providers.kit.http import check_url, dumps, loads

from .options import TritonOptions

__all__ = ["HEADERS", "body_error", "check_status", "dumps", "error_message", "loads", "model_url", "server_url"]

_MAX_MESSAGE = 500
HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}


def options(ctx: CallContext) -> TritonOptions:
    return cast(TritonOptions, ctx.options)


def server_url(ctx: CallContext) -> str:
    name = options(ctx).server_url_credential
    url = str(ctx.credentials.get(name) or "").strip()
    if not url:
        raise InvokeBadRequestError(
            "The Triton server URL is required",
            field_violations=(FieldViolation(f"credentials.{name}", "required"),),
        )
    if not url.startswith(("http://", "https://")):
        raise InvokeBadRequestError(
            "The Triton server URL must start with http:// or https://",
            field_violations=(FieldViolation(f"credentials.{name}", "must be an http(s) URL"),),
        )
    check_url(url, name)
    return url.rstrip("/").removesuffix("/v2").rstrip("/")


def model_url(ctx: CallContext, endpoint: str) -> str:
    return f"{server_url(ctx)}/v2/models/{quote(ctx.model, safe='')}/{endpoint}"


def _error_text(err: Any) -> str:
    if isinstance(err, dict):
        err = err.get("message") or err.get("error")
    return str(err or "")[:_MAX_MESSAGE]


def error_message(response: UpstreamResponse) -> str:
    body = loads(response.content) if response.content else None
    if isinstance(body, dict):
        return _error_text(body.get("error") or body.get("message"))
    ctype = response.headers.get("content-type", "")
    return response.text[:200] if "text/plain" in ctype else ""


def http_error(status: int, message: str, headers: Any = None) -> RuntimeFault:
    if status == 400 and "unknown model" in message.lower():
        return NotFoundError(message, upstream_status=status)
    return error_for_status(status, message, headers)


async def check_status(response: UpstreamResponse) -> None:
    """Raise the mapped error when the response is not 2xx (reads the error body)."""
    if response.status_code < 400:
        return
    await response.aread()
    raise http_error(response.status_code, error_message(response), response.headers)


def body_error(obj: dict[str, Any]) -> RuntimeFault | None:
    """The error an ``{"error": ...}`` object under a 200 carries (a stream event, or a unary body)."""
    if not obj.get("error"):
        return None
    return InvokeServerUnavailableError(_error_text(obj.get("error")) or "error in stream")
