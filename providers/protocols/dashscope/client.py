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
  problem, not a bad request, and any ``Throttling.*`` is a rate limit (the error then records
  the status the code stands for). The same object under 200, or in a stream's ``event:error``,
  is :func:`body_error`.
- Streams (``X-DashScope-SSE: enable``) are SSE written ``id:1`` / ``event:result`` /
  ``:HTTP_STATUS/200`` / ``data:{...}`` with no space after the colons and no ``[DONE]``: the
  stream ends when the connection does. A failure after the start is an ``event:error`` whose
  data is the same error object (its ``:HTTP_STATUS/4xx`` line is a comment, so the code is what
  classifies it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from engine._http.response import UpstreamResponse
from engine._http.sse import aiter_sse
from engine._http.status import error_for_status
from engine.adapter import CallContext
from engine.errors import InvokeConnectionError, InvokeError, RuntimeFault
from providers.kit import endpoint
from providers.kit.http import json_body, loads

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


def fault(code: Any, message: Any, status: int | None, response_headers: Any = None) -> RuntimeFault:
    """The runtime error for a DashScope error object (``status``: the HTTP status; None when the
    object came inside a 200 body or a stream event)."""
    code = str(code or "").strip()
    mapped = _CODE_STATUS.get(code.split(".", 1)[0])
    text = str(message or "").strip() or "DashScope reported an error"
    if code:
        text = f"{text} ({code})"
    return error_for_status(mapped or status or 500, text, response_headers, in_body=status is None)


def body_error(obj: Any) -> RuntimeFault | None:
    """The error a 200 body or a stream event carries (``{"code", "message"}`` without output)."""
    if isinstance(obj, dict) and obj.get("code") and not obj.get("output"):
        return fault(obj.get("code"), obj.get("message"), None)
    return None


async def check_status(response: UpstreamResponse) -> None:
    """Raise the mapped error when the response is not 2xx (reads the error body)."""
    if response.status_code < 400:
        return
    body = loads(await response.aread())
    code, message = (body.get("code"), body.get("message")) if isinstance(body, dict) else ("", "")
    if not message and "text/plain" in response.headers.get("content-type", ""):
        message = response.text[:200]
    raise fault(code, message, response.status_code, response.headers)


def read_json(raw: bytes) -> dict[str, Any]:
    """A 2xx reply body; an error object under 200 raises its mapped error."""
    body = json_body(raw)
    if not isinstance(body, dict):
        raise InvokeError("DashScope returned a response that is not a JSON object")
    error = body_error(body)
    if error is not None:
        raise error
    return body


async def aiter_results(response: UpstreamResponse) -> AsyncIterator[dict[str, Any]]:
    """The ``data`` objects of a native stream, in order; ``event:error`` raises its mapped error."""
    async for event in aiter_sse(response.aiter_bytes()):
        if not event.data:
            continue
        obj = loads(event.data)
        if obj is None:
            raise InvokeConnectionError("DashScope's stream broke off mid-message")
        if not isinstance(obj, dict):
            continue
        error = body_error(obj)
        if event.event == "error" and error is None:
            error = fault(obj.get("code"), obj.get("message"), None)
        if error is not None:
            raise error
        yield obj
