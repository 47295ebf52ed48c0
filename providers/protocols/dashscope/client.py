"""DashScope's native HTTP conventions (providers.md B12 and Part C), shared by its capabilities.

A provider of the OpenAI protocol composes this one for the model types compatible mode lacks
(``runtime.capabilities``) and gives the native base URL in ``runtime.capability_options.dashscope``:
``base_url`` / ``base_url_by_credential`` (``https://dashscope.aliyuncs.com/api/v1``, or the
``dashscope-intl`` host); ``api_key_credential`` is inherited from the provider's block.

Wire rules:

- ``POST {base}/services/{task_group}/{task}/{function}`` with ``Authorization: Bearer <key>``;
  bodies are ``{"model", "input": {...}, "parameters": {...}}``, replies
  ``{"output": {...}, "usage": {...}, "request_id"}``.
- Errors are ``{"code", "message", "request_id"}`` with a 4xx/5xx status: 401 ``InvalidApiKey``,
  429 ``Throttling.RateQuota``, 400 ``InvalidParameter`` or ``DataInspectionFailed``. The code
  decides where the status is ambiguous: ``Arrearage`` (400, an unpaid account) is a quota
  problem, not a bad request, and any ``Throttling.*`` is a rate limit.
- Streams (``X-DashScope-SSE: enable``) are SSE written ``id:1`` / ``event:result`` /
  ``:HTTP_STATUS/200`` / ``data:{...}`` with no space after the colons and no ``[DONE]``: the
  stream ends when the connection does. A failure after the start is an ``event:error`` whose
  data is the same error object (its ``:HTTP_STATUS/4xx`` line is a comment, so the code is what
  classifies it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

from engine._http.sse import aiter_sse
from engine._http.status import error_for_status
from engine.adapter import CallContext
from engine.errors import InvokeConnectionError, InvokeError, RuntimeFault
from providers.kit import endpoint

# The first dotted part of an error code → the HTTP status it means.
_CODE_STATUS = {
    "InvalidApiKey": 401,
    "AccessDenied": 403,
    "Arrearage": 402,
    "Throttling": 429,
    "InvalidParameter": 400,
    "DataInspectionFailed": 400,
    "BadRequest": 400,
    "InvalidURL": 404,
    "ModelNotFound": 404,
    "InternalError": 500,
    "SystemError": 500,
    "ServiceUnavailable": 503,
    "RequestTimeOut": 504,
}


def service_url(ctx: CallContext, service: str) -> str:
    """``{base}/services/{service}``, e.g. ``rerank/text-rerank/text-rerank``."""
    return endpoint.url(ctx, f"services/{service.strip('/')}")


def headers(ctx: CallContext, stream: bool = False) -> dict[str, str]:
    out = endpoint.bearer_headers(ctx)
    if stream:
        out["x-dashscope-sse"] = "enable"
        out["accept"] = "text/event-stream"
    return out


def fault(code: Any, message: Any, status: int, response_headers: httpx.Headers | None = None) -> RuntimeFault:
    """The runtime error for a DashScope error object (``status``: the HTTP status, or 0 in a stream)."""
    code = str(code or "").strip()
    mapped = _CODE_STATUS.get(code.split(".", 1)[0])
    text = str(message or "").strip() or "DashScope reported an error"
    if code:
        text = f"{text} ({code})"
    error = error_for_status(mapped or status or 500, text, response_headers)
    error.upstream_status = status or None
    return error


def _error_object(raw: bytes) -> tuple[str, str]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "", ""
    if not isinstance(body, dict):
        return "", ""
    return str(body.get("code") or ""), str(body.get("message") or "")


async def raise_for_status(response: httpx.Response) -> None:
    """Raise the mapped error when the response is not 2xx (reads the error body)."""
    if response.status_code < 400:
        return
    raw = await response.aread()
    code, message = _error_object(raw)
    if not message and "text/plain" in response.headers.get("content-type", ""):
        message = response.text[:200]
    raise fault(code, message, response.status_code, response.headers)


def read_json(raw: bytes) -> dict[str, Any]:
    """A 2xx reply body; an error object under 200 raises its mapped error."""
    try:
        body = orjson.loads(raw.strip() or b"null")
    except orjson.JSONDecodeError:
        raise InvokeError("DashScope returned a response that is not JSON") from None
    if not isinstance(body, dict):
        raise InvokeError("DashScope returned a response that is not a JSON object")
    if body.get("code") and not body.get("output"):
        raise fault(body.get("code"), body.get("message"), 0)
    return body


async def aiter_results(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """The ``data`` objects of a native stream, in order; ``event:error`` raises its mapped error."""
    async for event in aiter_sse(response.aiter_bytes()):
        if not event.data:
            continue
        try:
            obj = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            raise InvokeConnectionError("DashScope's stream broke off mid-message") from None
        if not isinstance(obj, dict):
            continue
        if event.event == "error" or (obj.get("code") and not obj.get("output")):
            raise fault(obj.get("code"), obj.get("message"), 0)
        yield obj
