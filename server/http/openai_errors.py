"""Domain errors → OpenAI error responses (the HTTP twin of ``server/errors.py``).

Body: ``{"error": {"message", "type", "param", "code"}}``, the shape the official SDKs parse.
The status is derived from the same exception classes the gRPC mapping uses:

======================================  ======  ==========================================
exception                               status  notes
======================================  ======  ==========================================
NotFoundError                           404     unknown provider or model (``model_not_found``)
UnsupportedError                        400     gRPC says UNIMPLEMENTED; over HTTP a 5xx would
                                                make every SDK retry a call that can never work
InvokeBadRequestError (and Egress…)     400     ``param`` = first field violation, renamed to
                                                the OpenAI field the caller sent
InvokeAuthorizationError                401     the provider rejected the *server's* key; 401 so
                                                SDKs raise their own AuthenticationError
CredentialsValidateFailedError          401     server-side credentials (config) are bad;
                                                400 when the caller sent them in the header
InvokeRateLimitError                    429     ``retry-after`` (integer seconds, rounded up) and
                                                ``retry-after-ms`` when the provider said
InvokeServerUnavailableError            503     ``retry-after`` as above
InvokeConnectionError                   502     504 when the caller's deadline ran out
any other InvokeError / RuntimeFault    500
anything else                           500     message names the exception type only
======================================  ======  ==========================================

Every error response also carries ``x-model-runtime-error: <Dify class name>`` and, when the
provider answered with an error status, ``x-upstream-status``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import orjson

from engine.errors import (
    CredentialsValidateFailedError,
    InvokeAuthorizationError,
    InvokeBadRequestError,
    InvokeConnectionError,
    InvokeRateLimitError,
    InvokeServerUnavailableError,
    NotFoundError,
    RuntimeFault,
    UnsupportedError,
)

log = logging.getLogger("modelruntime.http")

_PARAMS_PREFIX = "model_parameters."
# Runtime field names → the OpenAI request fields they come from (per-route maps add more).
_COMMON_FIELDS = {"target.model": "model", "target.provider": "model", "texts": "input", "text": "input"}


class HttpError(Exception):
    """An error decided by the HTTP layer itself (bad JSON, missing field, no credentials)."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None,
                 headers: list[tuple[bytes, bytes]] | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or []
        self.reason = reason

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def encode(self) -> bytes:
        return orjson.dumps(self.body())

    def response_headers(self) -> list[tuple[bytes, bytes]]:
        headers = list(self.headers)
        if self.reason:
            headers.append((b"x-model-runtime-error", self.reason.encode()))
        return headers


def bad_request(message: str, param: str | None = None, code: str | None = None) -> HttpError:
    return HttpError(400, message, param=param, code=code)


def _param(exc: RuntimeFault, fields: Mapping[str, str]) -> str | None:
    if not exc.field_violations:
        return None
    field = exc.field_violations[0].field
    if field in fields:
        return fields[field]
    if field.startswith(_PARAMS_PREFIX):
        name = field[len(_PARAMS_PREFIX):]
        return fields.get(name, name)
    if field.startswith("credentials"):
        return None  # server-side: nothing the caller sent
    return _COMMON_FIELDS.get(field, field)


def _retry_headers(seconds: float | None) -> list[tuple[bytes, bytes]]:
    if seconds is None or not math.isfinite(seconds):
        return []
    seconds = max(0.0, seconds)
    return [(b"retry-after", str(math.ceil(seconds)).encode()),
            (b"retry-after-ms", str(math.ceil(seconds * 1000)).encode())]


def from_fault(exc: RuntimeFault, fields: Mapping[str, str] | None = None,
               request_credentials: bool = False) -> HttpError:
    """The HTTP error for a runtime failure. ``fields`` renames runtime field names to the
    caller's (``{"max_tokens": "max_completion_tokens", "audio": "file"}``)."""
    fields = fields or {}
    message = f"[{exc.provider}] {exc.description}" if exc.provider else exc.description
    headers: list[tuple[bytes, bytes]] = []
    if exc.upstream_status:
        headers.append((b"x-upstream-status", str(exc.upstream_status).encode()))
    if isinstance(exc, NotFoundError):
        err = HttpError(404, message, param=_param(exc, fields) or ("model" if exc.model or exc.provider else None),
                        code="model_not_found" if exc.model or exc.provider else "not_found")
    elif isinstance(exc, UnsupportedError):
        err = HttpError(400, message, param=_param(exc, fields) or "model", code="unsupported_model")
    elif isinstance(exc, InvokeBadRequestError):
        err = HttpError(400, message, param=_param(exc, fields), code="invalid_request")
    elif isinstance(exc, InvokeAuthorizationError):
        err = HttpError(401, message, type="authentication_error", code="invalid_api_key")
    elif isinstance(exc, CredentialsValidateFailedError):
        if request_credentials:
            err = HttpError(400, f"X-Provider-Credentials: {message}", param=None, code="invalid_credentials")
        else:
            err = HttpError(401, f"The server's credentials for this provider are invalid: {message}",
                            type="authentication_error", code="invalid_provider_credentials")
    elif isinstance(exc, InvokeRateLimitError):
        err = HttpError(429, message, type="rate_limit_error", code="rate_limit_exceeded")
        headers.extend(_retry_headers(exc.retry_after))
    elif isinstance(exc, InvokeServerUnavailableError):
        err = HttpError(503, message, type="server_error", code="upstream_unavailable")
        headers.extend(_retry_headers(exc.retry_after))
    elif isinstance(exc, InvokeConnectionError):
        if getattr(exc, "deadline_exceeded", False):
            err = HttpError(504, message, type="server_error", code="deadline_exceeded")
        else:
            err = HttpError(502, message, type="server_error", code="upstream_connection_error")
    else:
        err = HttpError(500, message, type="server_error", code="upstream_error")
    err.headers.extend(headers)
    err.reason = exc.reason
    return err


def to_http(exc: BaseException, fields: Mapping[str, str] | None = None,
            request_credentials: bool = False) -> HttpError:
    """Any exception raised while serving a request → the error to send."""
    if isinstance(exc, HttpError):
        return exc
    if isinstance(exc, RuntimeFault):
        return from_fault(exc, fields, request_credentials)
    # Only the type: messages of foreign exceptions may quote payloads or credentials.
    log.error("unhandled %s in HTTP handler", type(exc).__name__, exc_info=log.isEnabledFor(logging.DEBUG))
    return HttpError(500, f"internal error ({type(exc).__name__})", type="server_error", code="internal_error",
                     reason="InternalError")


def sse_error_event(err: HttpError) -> bytes:
    """The in-stream form the OpenAI SDK raises ``APIError`` on (status already 200)."""
    return b"data: " + err.encode() + b"\n\n"
