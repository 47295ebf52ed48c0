"""Exceptions raised by the Model Runtime client.

Every ``grpc.RpcError`` that reaches the facade is converted by
:func:`from_rpc_error` into one class of this tree, chosen by the gRPC status
code **and** the ``google.rpc.ErrorInfo.reason`` the runtime attaches (one of
Dify's error class names)::

    ModelRuntimeError                      base of everything below
    ├── APIConnectionError                 UNAVAILABLE + reason InvokeConnectionError,
    │   │                                  or a transport failure (no ErrorInfo: the
    │   │                                  runtime itself could not be reached)
    │   └── APITimeoutError                DEADLINE_EXCEEDED
    └── APIStatusError                     the runtime answered with an error status
        ├── BadRequestError                INVALID_ARGUMENT / reason InvokeBadRequestError
        ├── AuthenticationError            reason InvokeAuthorizationError (the runtime
        │                                  sends INVALID_ARGUMENT for bad *provider*
        │                                  credentials, so the reason decides), or
        │   │                              UNAUTHENTICATED (no, unknown or expired caller key)
        │   └── PermissionDeniedError      PERMISSION_DENIED (the caller key's scopes)
        ├── CredentialsValidationError     reason CredentialsValidateFailedError
        ├── NotFoundError                  NOT_FOUND
        ├── RateLimitError                 RESOURCE_EXHAUSTED / reason InvokeRateLimitError
        │                                  (``retry_after`` from google.rpc.RetryInfo;
        │                                  ``caller_limit``: the caller key's own limit or
        │                                  budget, reason CALLER_QUOTA_EXCEEDED, not the provider's)
        ├── ServiceUnavailableError        UNAVAILABLE / reason InvokeServerUnavailableError
        ├── UnsupportedError               UNIMPLEMENTED
        ├── RequestCancelledError          CANCELLED
        └── InternalServerError            INTERNAL / UNKNOWN / DATA_LOSS

Precedence: the specific reasons (InvokeAuthorizationError,
CredentialsValidateFailedError, InvokeRateLimitError, InvokeServerUnavailableError,
InvokeConnectionError) win over the code; DEADLINE_EXCEEDED is always a timeout;
otherwise the code decides (so NOT_FOUND with reason InvokeBadRequestError is a
:class:`NotFoundError`); a generic reason with an unlisted code falls back to
:class:`BadRequestError` for InvokeBadRequestError and to :class:`APIStatusError`
for anything else.

Every instance carries the decoded status: ``code`` (``grpc.StatusCode``),
``message``, ``reason``, ``domain``, ``metadata`` (ErrorInfo metadata),
``provider`` / ``model`` (from that metadata), ``field_violations`` (a list of
``(field, description)`` named tuples from google.rpc.BadRequest),
``retry_after`` (seconds, from google.rpc.RetryInfo, or ``None``),
``resource_info`` and the original ``rpc_error``.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.message import DecodeError

from ._rpc_status import (
    DecodedStatus,
    FieldViolation,
    ResourceInfo,
    decode_status,
    status_details_from_metadata,
)

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "CredentialsValidationError",
    "FieldViolation",
    "InternalServerError",
    "ModelRuntimeError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestCancelledError",
    "ResourceInfo",
    "ServiceUnavailableError",
    "UnsupportedError",
    "from_rpc_error",
]


class ModelRuntimeError(Exception):
    """Base class of every error raised by the client."""

    code: grpc.StatusCode | None
    message: str
    reason: str
    domain: str
    metadata: dict[str, str]
    field_violations: list[FieldViolation]
    retry_after: float | None
    resource_info: list[ResourceInfo]
    rpc_error: grpc.RpcError | None

    def __init__(
        self,
        message: str = "",
        *,
        code: grpc.StatusCode | None = None,
        reason: str = "",
        domain: str = "",
        metadata: dict[str, str] | None = None,
        field_violations: list[FieldViolation] | None = None,
        retry_after: float | None = None,
        resource_info: list[ResourceInfo] | None = None,
        rpc_error: grpc.RpcError | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.reason = reason
        self.domain = domain
        self.metadata = dict(metadata or {})
        self.field_violations = list(field_violations or [])
        self.retry_after = retry_after
        self.resource_info = list(resource_info or [])
        self.rpc_error = rpc_error

    @property
    def provider(self) -> str:
        """Provider named by the error's ErrorInfo metadata ("" when unknown)."""
        return self.metadata.get("provider", "")

    @property
    def model(self) -> str:
        """Model named by the error's ErrorInfo metadata ("" when unknown)."""
        return self.metadata.get("model", "")

    def __str__(self) -> str:
        parts = []
        if self.code is not None:
            parts.append(self.code.name)
        if self.reason:
            parts.append(self.reason)
        prefix = f"[{' '.join(parts)}] " if parts else ""
        return f"{prefix}{self.message}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, reason={self.reason!r}, "
            f"message={self.message!r}, provider={self.provider!r}, model={self.model!r})"
        )


class APIConnectionError(ModelRuntimeError):
    """The runtime, or the provider behind it, could not be reached."""


class APITimeoutError(APIConnectionError):
    """The call's deadline passed (DEADLINE_EXCEEDED)."""


class APIStatusError(ModelRuntimeError):
    """The runtime answered the call with an error status."""


class BadRequestError(APIStatusError):
    """The runtime or the provider rejected the request (INVALID_ARGUMENT)."""


class AuthenticationError(APIStatusError):
    """The provider rejected the credentials (reason InvokeAuthorizationError)."""


class PermissionDeniedError(AuthenticationError):
    """The caller key may not do this (PERMISSION_DENIED: a model, provider or stored credential out of scope)."""


class CredentialsValidationError(APIStatusError):
    """Credential validation failed (reason CredentialsValidateFailedError)."""


class NotFoundError(APIStatusError):
    """Unknown provider, model or upstream resource (NOT_FOUND)."""


class RateLimitError(APIStatusError):
    """The provider is rate limiting, or the caller key's own limit is reached (RESOURCE_EXHAUSTED);
    see ``retry_after`` and ``caller_limit``."""

    @property
    def caller_limit(self) -> str:
        """The caller key's limit that was reached ("requests_per_minute", "budget_usd_per_day", ...);
        "" when the provider is the one limiting."""
        return self.metadata.get("limit", "") if self.metadata.get("limit_owner") == "caller" else ""


class ServiceUnavailableError(APIStatusError):
    """The provider is down or overloaded (UNAVAILABLE / InvokeServerUnavailableError)."""


class UnsupportedError(APIStatusError):
    """The provider or model lacks the capability (UNIMPLEMENTED)."""


class RequestCancelledError(APIStatusError):
    """The call was cancelled (CANCELLED)."""


class InternalServerError(APIStatusError):
    """The runtime failed internally (INTERNAL / UNKNOWN / DATA_LOSS)."""


_BY_REASON: dict[str, type[ModelRuntimeError]] = {
    "InvokeAuthorizationError": AuthenticationError,
    "CredentialsValidateFailedError": CredentialsValidationError,
    "InvokeRateLimitError": RateLimitError,
    "InvokeServerUnavailableError": ServiceUnavailableError,
    "InvokeConnectionError": APIConnectionError,
}

_SC = grpc.StatusCode
_BY_CODE: dict[grpc.StatusCode, type[ModelRuntimeError]] = {
    _SC.INVALID_ARGUMENT: BadRequestError,
    _SC.FAILED_PRECONDITION: BadRequestError,
    _SC.OUT_OF_RANGE: BadRequestError,
    _SC.ALREADY_EXISTS: BadRequestError,
    _SC.UNAUTHENTICATED: AuthenticationError,
    _SC.PERMISSION_DENIED: PermissionDeniedError,
    _SC.NOT_FOUND: NotFoundError,
    _SC.RESOURCE_EXHAUSTED: RateLimitError,
    _SC.UNIMPLEMENTED: UnsupportedError,
    _SC.CANCELLED: RequestCancelledError,
    _SC.INTERNAL: InternalServerError,
    _SC.UNKNOWN: InternalServerError,
    _SC.DATA_LOSS: InternalServerError,
}


def _error_class(code: grpc.StatusCode | None, reason: str, has_error_info: bool) -> type[ModelRuntimeError]:
    if code == _SC.DEADLINE_EXCEEDED:
        return APITimeoutError
    by_reason = _BY_REASON.get(reason)
    if by_reason is not None:
        return by_reason
    if code is None:
        return APIConnectionError
    if code == _SC.UNAVAILABLE:
        # Without ErrorInfo the status came from the transport (connection refused,
        # DNS failure, server gone away), not from the runtime.
        return ServiceUnavailableError if has_error_info else APIConnectionError
    by_code = _BY_CODE.get(code)
    if by_code is not None:
        return by_code
    if reason == "InvokeBadRequestError":
        return BadRequestError
    return APIStatusError


def _call(obj: Any, name: str) -> Any:
    fn = getattr(obj, name, None)
    if fn is None:
        return None
    try:
        return fn()
    except Exception:  # noqa: BLE001 - a broken accessor must not hide the real error
        return None


def _decode(err: grpc.RpcError) -> DecodedStatus | None:
    raw = status_details_from_metadata(_call(err, "trailing_metadata"))
    if raw is None:
        return None
    try:
        return decode_status(raw)
    except DecodeError:
        return None


def from_rpc_error(err: grpc.RpcError) -> ModelRuntimeError:
    """Convert a ``grpc.RpcError`` (sync or ``grpc.aio``) into a :class:`ModelRuntimeError`.

    Decodes the ``grpc-status-details-bin`` trailer (a serialized google.rpc.Status)
    for ErrorInfo, RetryInfo, BadRequest and ResourceInfo. Never raises; an
    already-converted error is returned unchanged.
    """
    if isinstance(err, ModelRuntimeError):
        return err
    code = _call(err, "code")
    if not isinstance(code, grpc.StatusCode):
        code = None
    details = _call(err, "details")
    decoded = _decode(err)

    message = details if isinstance(details, str) and details else ""
    if not message and decoded is not None:
        message = decoded.message
    if not message:
        message = str(err) if code is None else code.name

    reason = decoded.reason if decoded else ""
    cls = _error_class(code, reason, bool(decoded and decoded.has_error_info))
    if decoded is None:
        return cls(message, code=code, rpc_error=err)
    return cls(
        message,
        code=code,
        reason=decoded.reason,
        domain=decoded.domain,
        metadata=decoded.metadata,
        field_violations=decoded.field_violations,
        retry_after=decoded.retry_after,
        resource_info=decoded.resource_info,
        rpc_error=err,
    )
