"""Reaching Hugging Face: the serverless router or an Inference Endpoint, the Hub API, and errors.

Dify's credentials (``huggingfacehub_*``) choose the target:

* ``huggingfacehub_api_type: hosted_inference_api`` — serverless, the model id in the URL:
  ``{hosted_base_url}/{model}`` for generation and ``.../{model}/pipeline/feature-extraction`` for
  embeddings (``hosted_base_url`` default ``https://router.huggingface.co/hf-inference/models``);
* ``inference_endpoints`` — the caller's ``huggingfacehub_endpoint_url``, used as given (a TGI or
  TEI server, or the inference toolkit: all answer ``POST /`` with ``{"inputs", "parameters",
  "stream"}``). A URL ending in ``/generate`` or ``/generate_stream`` selects TGI's own routes:
  ``/generate`` for unary calls and ``/generate_stream`` for streams.

Auth is ``Authorization: Bearer hf_...`` everywhere.

``runtime:`` options (all optional): ``hosted_base_url``; ``hub_api_url`` (Hub API root,
``https://huggingface.co``, for ``GET /api/models/{model}`` in credential checks);
``endpoints_api_url`` (``https://api.endpoints.huggingface.cloud``, for
``GET /v2/endpoint/{namespace}``).

Errors are ``{"error": "..." | [...], "error_type"?}``. A cold model answers **503**
``{"error": "Model X is currently loading", "estimated_time": 20.0}``: InvokeServerUnavailableError
whose retry delay is ``estimated_time``. TGI's ``error_type`` decides for errors under any status
and inside a 200 stream: ``overloaded`` (429) is InvokeRateLimitError, ``validation`` (422)
InvokeBadRequestError, ``generation``/``incomplete_generation`` (424/500) InvokeServerUnavailableError;
:func:`body_error` reads such an object under a 200 (a stream event or a unary body).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast
from urllib.parse import quote

from engine._http.response import UpstreamResponse
from engine._http.status import error_for_status, retry_after_seconds
from engine.adapter import CallContext
from engine.errors import (
    FieldViolation,
    InvokeBadRequestError,
    InvokeError,
    InvokeRateLimitError,
    InvokeServerUnavailableError,
    RuntimeFault,
)
from providers.kit.http import check_url, dumps, loads
from providers.kit.http import credential as _credential

from .options import HuggingFaceOptions

__all__ = ["ENDPOINTS", "HOSTED", "body_error", "check_status", "dumps", "embedding_url", "endpoint_url",
           "endpoints_api_url", "generation_url", "headers", "hub_model_url", "loads", "options", "read_json"]

HOSTED = "hosted_inference_api"
ENDPOINTS = "inference_endpoints"
_MAX_MESSAGE = 500
_TGI_SUFFIXES = ("/generate_stream", "/generate")


def options(ctx: CallContext) -> HuggingFaceOptions:
    return cast(HuggingFaceOptions, ctx.options)


def api_type(ctx: CallContext) -> str:
    return _credential(ctx, "huggingfacehub_api_type") or HOSTED


def token(ctx: CallContext) -> str:
    return _credential(ctx, "huggingfacehub_api_token")


def task_type(ctx: CallContext, default: str) -> str:
    return _credential(ctx, "task_type") or default


def endpoint_url(ctx: CallContext) -> str:
    url = _credential(ctx, "huggingfacehub_endpoint_url")
    if not url.startswith(("http://", "https://")):
        raise InvokeBadRequestError(
            "The Inference Endpoint URL must be an http(s) URL",
            field_violations=(FieldViolation("credentials.huggingfacehub_endpoint_url", "must be an http(s) URL"),),
        )
    check_url(url, "huggingfacehub_endpoint_url")
    return url.rstrip("/")


def _model_path(ctx: CallContext) -> str:
    return quote(ctx.model.strip(), safe="/")


def generation_url(ctx: CallContext, stream: bool) -> tuple[str, bool]:
    """(URL, whether it is a TGI route, which takes no ``stream`` field)."""
    if api_type(ctx) != ENDPOINTS:
        return f"{options(ctx).hosted_base_url.rstrip('/')}/{_model_path(ctx)}", False
    url = endpoint_url(ctx)
    for suffix in _TGI_SUFFIXES:
        if url.endswith(suffix):
            root = url.removesuffix(suffix)
            return root + ("/generate_stream" if stream else "/generate"), True
    return url, False


def embedding_url(ctx: CallContext) -> str:
    if api_type(ctx) != ENDPOINTS:
        return f"{options(ctx).hosted_base_url.rstrip('/')}/{_model_path(ctx)}/pipeline/feature-extraction"
    return endpoint_url(ctx)


def hub_model_url(ctx: CallContext) -> str:
    return f"{options(ctx).hub_api_url.rstrip('/')}/api/models/{_model_path(ctx)}"


def endpoints_api_url(ctx: CallContext, namespace: str) -> str:
    return f"{options(ctx).endpoints_api_url.rstrip('/')}/v2/endpoint/{quote(namespace, safe='')}"


def headers(ctx: CallContext, stream: bool = False) -> dict[str, str]:
    out = {"content-type": "application/json", "accept": "text/event-stream" if stream else "application/json"}
    key = token(ctx)
    if key:
        out["authorization"] = f"Bearer {key}"
    return out


def _message(body: dict[str, Any]) -> str:
    message = body.get("error") or body.get("message") or body.get("detail")
    if isinstance(message, list):
        message = "; ".join(str(m) for m in message)
    elif isinstance(message, dict):
        message = message.get("message") or ""
    return str(message or "").strip()[:_MAX_MESSAGE]


def by_error_type(error_type: str, message: str, status: int | None, retry: float | None) -> RuntimeFault | None:
    if error_type == "overloaded":
        return InvokeRateLimitError(message or "The model is overloaded", retry_after=retry, upstream_status=status)
    if error_type == "validation":
        return InvokeBadRequestError(message or "Input validation error", upstream_status=status)
    if error_type in ("generation", "incomplete_generation"):
        return InvokeServerUnavailableError(message or "Generation failed", upstream_status=status)
    return None


def error_for(status: int, response_headers: Mapping[str, str], body: Any, text: str = "") -> RuntimeFault:
    obj = body if isinstance(body, dict) else {}
    message = _message(obj) or text
    retry = retry_after_seconds(response_headers)
    estimated = obj.get("estimated_time")
    if status == 503 and isinstance(estimated, int | float) and estimated >= 0:
        return InvokeServerUnavailableError(message or "The model is loading", retry_after=float(estimated),
                                            upstream_status=status)
    typed = by_error_type(str(obj.get("error_type") or ""), message, status, retry)
    if typed is not None:
        return typed
    if status == 424:  # TGI: the generation itself failed
        return InvokeServerUnavailableError(message, upstream_status=status)
    return error_for_status(status, message, response_headers)


async def check_status(response: UpstreamResponse) -> None:
    if response.status_code < 400:
        return
    await response.aread()
    ctype = response.headers.get("content-type", "")
    text = response.text[:200] if "text/plain" in ctype else ""
    raise error_for(response.status_code, response.headers, loads(response.content) if response.content else None,
                    text)


async def read_json(response: UpstreamResponse) -> Any:
    """Status check, then the whole body as JSON (an object or a list)."""
    await check_status(response)
    body = loads(await response.aread())
    if body is None:
        raise InvokeError("Hugging Face returned a response that is not JSON")
    return body


def body_error(obj: Any) -> RuntimeFault | None:
    """The error an ``{"error", "error_type"?}`` object under a 200 carries (a stream event, a body)."""
    if not isinstance(obj, dict) or not obj.get("error"):
        return None
    message = _message(obj) or "error in stream"
    return by_error_type(str(obj.get("error_type") or ""), message, None, None) or InvokeServerUnavailableError(message)
