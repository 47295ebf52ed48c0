"""Reaching the Gemini API: base URL, auth header, model paths, and Google's error shape.

The key goes in the ``x-goog-api-key`` header and never in the URL (``?key=`` ends up in
exceptions, proxy logs and stack traces). ``runtime:`` options (:class:`~.options.GeminiOptions`,
defaults declared there; credentials and URLs come from :mod:`providers.kit.http`):

    base_url             default base URL including the API version
                         (https://generativelanguage.googleapis.com/v1beta)
    base_url_credential  credential that overrides it (``google_base_url``); a value without
                         a version segment (Dify's form takes the bare host, as the SDK does)
                         gets ``/v1beta`` appended
    api_key_credential   credential holding the key (``google_api_key``)
    validate_model       the model the provider credential check counts tokens with

Errors: ``{"error": {"code", "message", "status", "details": [...]}}``. A bad key is a 400
whose ``ErrorInfo`` reason is ``API_KEY_INVALID`` (Google does not answer 401), so it is
mapped to InvokeAuthorizationError, as is 403 PERMISSION_DENIED; a 429 takes its retry delay
from ``RetryInfo.retryDelay`` (then the retry-after header). An error under a 200 (a unary
body or a stream event) is :func:`body_error`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, cast
from urllib.parse import quote

from engine._http.status import error_for_status, retry_after_seconds
from engine.adapter import CallContext
from engine.errors import InvokeAuthorizationError, InvokeRateLimitError, RuntimeFault
from providers.kit import http

from .options import GeminiOptions

_VERSIONED = re.compile(r"/v\d+(?:alpha|beta)?\d*$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")
_AUTH_REASONS = {"API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_SERVICE_BLOCKED", "ACCESS_TOKEN_EXPIRED"}
_MAX_MESSAGE = 500


def options(ctx: CallContext) -> GeminiOptions:
    return cast(GeminiOptions, ctx.options)


def base_url(ctx: CallContext) -> str:
    o = options(ctx)
    url = http.base_url(ctx, default=o.base_url, credential_name=o.base_url_credential)
    if http.credential(ctx, o.base_url_credential) and not _VERSIONED.search(url):
        url += "/v1beta"  # Dify's form takes the bare host, as Google's SDK does
    return url


def headers(ctx: CallContext) -> dict[str, str]:
    out = {"content-type": "application/json"}
    key = http.credential(ctx, options(ctx).api_key_credential)
    if key:
        out["x-goog-api-key"] = key
    return out


def model_path(model: str) -> str:
    """``models/<id>``; ids that already name a collection (``tunedModels/…``) stay as they are."""
    if "/" in model:
        return "/".join(quote(p, safe="-._~") for p in model.split("/"))
    return "models/" + quote(model, safe="-._~")


def url(ctx: CallContext, model: str, method: str) -> str:
    """``{base}/models/{model}:{method}``."""
    return f"{base_url(ctx)}/{model_path(model)}:{method}"


class ApiKeyEndpoint:
    """Where Gemini calls go and how they authenticate: the Gemini API with its key header.

    :class:`~.chat.GeminiChat` and :class:`~.embeddings.GeminiEmbeddings` take an endpoint, so
    another host of the same contents/parts protocol (Vertex AI: its own URLs and an OAuth
    bearer token, :mod:`providers.protocols.vertex`) reuses them by passing its own object with
    these three members.
    """

    def url(self, ctx: CallContext, model: str, method: str) -> str:
        return url(ctx, model, method)

    async def headers(self, ctx: CallContext) -> dict[str, str]:
        return headers(ctx)

    def count_tokens_body(self, model: str, request: dict[str, Any]) -> dict[str, Any]:
        """``:countTokens`` wraps the generate request, which must name the model."""
        return {"generateContentRequest": {"model": model_path(model), **request}}


API_KEY_ENDPOINT = ApiKeyEndpoint()


def _duration(value: Any) -> float | None:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1))
    if isinstance(value, dict):  # {"seconds": "2", "nanos": 500000000}
        try:
            return float(value.get("seconds") or 0) + float(value.get("nanos") or 0) / 1e9
        except (TypeError, ValueError):
            return None
    return None


def error_from_body(body: Any, status: int, response_headers: Mapping[str, str] | None = None, *,
                    in_body: bool = False) -> RuntimeFault:
    """Map a Google error object (``{"error": {...}}``) with the HTTP ``status`` it came with
    (0: none, the body's code decides); ``in_body``: it came under a 200, so no upstream HTTP
    status is recorded."""
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        err = {"message": str(err)} if err else {}
    code = err.get("code")
    if not status:
        status = code if isinstance(code, int) and 400 <= code < 600 else 503
    message = str(err.get("message") or "")[:_MAX_MESSAGE]
    upstream = None if in_body else status
    grpc_status = str(err.get("status") or "")
    reasons: set[str] = set()
    retry: float | None = None
    for detail in err.get("details") or ():
        if not isinstance(detail, dict):
            continue
        kind = str(detail.get("@type") or "")
        if kind.endswith("google.rpc.ErrorInfo") and detail.get("reason"):
            reasons.add(str(detail["reason"]))
        elif kind.endswith("google.rpc.RetryInfo"):
            retry = _duration(detail.get("retryDelay"))
    if reasons & _AUTH_REASONS or grpc_status in ("UNAUTHENTICATED", "PERMISSION_DENIED") or status in (401, 403):
        # The vendor text is dropped on purpose: it may quote the rejected key.
        return InvokeAuthorizationError(upstream_status=upstream)
    if status == 429 or grpc_status == "RESOURCE_EXHAUSTED":
        if retry is None and response_headers is not None:
            retry = retry_after_seconds(response_headers)
        return InvokeRateLimitError(message or "Rate limit exceeded", retry_after=retry, upstream_status=upstream)
    return error_for_status(status, message or grpc_status, response_headers, in_body=in_body)


def body_error(obj: Any) -> RuntimeFault | None:
    """The error an ``{"error": ...}`` object under a 200 carries (a stream event or a unary
    body), or None."""
    if not isinstance(obj, dict) or not obj.get("error"):
        return None
    return error_from_body(obj, 0, in_body=True)


async def raise_for_status(response: http.UpstreamResponse) -> None:
    """Raise the mapped error when the response is not 2xx (reads the error body). Not the
    kit's plain check: the body's reason and retry info decide the class, not only the status."""
    if response.status_code < 400:
        return
    await response.aread()
    body = http.loads(response.content) if response.content else None
    if isinstance(body, list) and body and isinstance(body[0], dict):
        body = body[0]  # the JSON-array stream form wraps its error in a list
    if not isinstance(body, dict):
        ctype = response.headers.get("content-type", "")
        text = response.text[:200] if "text/plain" in ctype else ""
        body = {"error": {"message": text}} if text else {}
    raise error_from_body(body, response.status_code, response.headers)
