"""HTTP error responses → the runtime's exception tree.

Adapters call :func:`raise_for_status` with a function that pulls the provider's own error
message out of its body; the status code decides the class. The message is the provider's
error text only (never headers, URLs or the request), cut to a sane length.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Mapping

from ..errors import (
    InvokeAuthorizationError,
    InvokeBadRequestError,
    InvokeError,
    InvokeRateLimitError,
    InvokeServerUnavailableError,
    NotFoundError,
    RuntimeFault,
)
from .response import UpstreamResponse

MessageExtractor = Callable[[UpstreamResponse], str]

_MAX_MESSAGE = 500


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """``retry-after-ms`` first, then ``retry-after`` (seconds or an HTTP date)."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        if parsed is None:
            return None
        return max(0.0, parsed.timestamp() - time.time())


def error_for_status(status: int, message: str, headers: Mapping[str, str] | None = None, *,
                     in_body: bool = False) -> RuntimeFault:
    """The runtime error for a provider's HTTP status (or the status its error code stands for).

    ``in_body``: the provider answered 200 and reported the error inside the body (or a stream
    event), so no upstream HTTP status is recorded.
    """
    error = _error_for_status(status, message, headers)
    if in_body:
        error.upstream_status = None
    return error


def _error_for_status(status: int, message: str, headers: Mapping[str, str] | None) -> RuntimeFault:
    message = (message or "").strip()[:_MAX_MESSAGE] or f"HTTP {status}"
    if status in (401, 403):
        # As Dify does, drop the vendor text: providers echo (part of) a mistyped key in it.
        return InvokeAuthorizationError(upstream_status=status)
    if status == 404:
        return NotFoundError(message, upstream_status=status)
    if status == 429:
        retry = retry_after_seconds(headers) if headers is not None else None
        return InvokeRateLimitError(message, retry_after=retry, upstream_status=status)
    if status == 402:
        # Out of credits / balance (OpenRouter, DeepSeek): a quota, like OpenAI's 429
        # insufficient_quota, and never worth retrying soon, so no retry delay.
        return InvokeRateLimitError(message, upstream_status=status)
    if status in (400, 409, 413, 422):
        return InvokeBadRequestError(message, upstream_status=status)
    if status >= 500:
        return InvokeServerUnavailableError(message, upstream_status=status,
                                            retry_after=retry_after_seconds(headers) if headers else None)
    return InvokeError(message, upstream_status=status)


async def raise_for_status(response: UpstreamResponse, extract: MessageExtractor) -> None:
    """Raise the mapped error when the response is not 2xx (reads the error body)."""
    if response.status_code < 400:
        return
    await response.aread()
    try:
        message = extract(response)
    except Exception:  # noqa: BLE001 - an unparseable error body is still an error
        message = ""
    if not message:
        ctype = response.headers.get("content-type", "")
        message = response.text[:200] if "json" in ctype or "text/plain" in ctype else ""
    raise error_for_status(response.status_code, message, response.headers)
