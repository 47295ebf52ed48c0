"""Caller-side refusals and their two wire forms (gRPC status + google.rpc details, OpenAI HTTP).

These are not engine faults: the caller's own identity, rights or limits are at fault, so they get
their own codes and ErrorInfo reasons (domain ``modelruntime``), distinct from the provider's:

=========================  ==================  ====  =========================================
reason                     gRPC                HTTP  details
=========================  ==================  ====  =========================================
CALLER_KEY_MISSING         UNAUTHENTICATED     401   ErrorInfo
CALLER_KEY_INVALID         UNAUTHENTICATED     401   unknown, revoked or malformed key
CALLER_KEY_EXPIRED         UNAUTHENTICATED     401
CALLER_SCOPE_DENIED        PERMISSION_DENIED   403   ResourceInfo (provider/model/type/credential)
CALLER_QUOTA_EXCEEDED      RESOURCE_EXHAUSTED  429   RetryInfo + QuotaFailure naming the limit
=========================  ==================  ====  =========================================

A provider's own rate limit stays ``InvokeRateLimitError`` (server/errors.py); the caller's limit
also says ``metadata.limit_owner = "caller"`` so a client can tell "slow down, you" from "the
provider is busy". Messages never quote a key.
"""

from __future__ import annotations

import math
from typing import ClassVar

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from ..errors import DOMAIN
from ..http.openai_errors import HttpError


class AccessError(Exception):
    """Base: a call refused before it reached the runtime."""

    code: grpc.StatusCode = grpc.StatusCode.PERMISSION_DENIED
    http_status: int = 403
    http_type: str = "permission_error"

    def __init__(self, message: str, reason: str, metadata: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.metadata = metadata or {}

    def details(self) -> list[Message]:
        return []

    def http_headers(self) -> list[tuple[bytes, bytes]]:
        return []


class Unauthenticated(AccessError):
    code = grpc.StatusCode.UNAUTHENTICATED
    http_status = 401
    http_type = "authentication_error"


class PermissionDenied(AccessError):
    def __init__(self, message: str, resource_type: str = "", resource_name: str = "",
                 reason: str = "CALLER_SCOPE_DENIED") -> None:
        super().__init__(message, reason)
        self.resource_type = resource_type
        self.resource_name = resource_name

    def details(self) -> list[Message]:
        return _resource_info(self.resource_type, self.resource_name, self.message)


class QuotaExceeded(AccessError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    http_status = 429
    http_type = "rate_limit_error"

    def __init__(self, key_id: str, limit: str, value: str, retry_after: float, message: str) -> None:
        super().__init__(message, "CALLER_QUOTA_EXCEEDED", {"limit_owner": "caller", "limit": limit, "key": key_id})
        self.key_id = key_id
        self.limit = limit
        self.value = value
        self.retry_after = max(0.0, retry_after)

    def details(self) -> list[Message]:
        delay = duration_pb2.Duration()
        delay.FromMilliseconds(int(self.retry_after * 1000))
        violation = error_details_pb2.QuotaFailure.Violation(
            subject=f"keys/{self.key_id}", description=self.message[:200], quota_metric=self.limit,
            quota_id=self.limit, api_service=DOMAIN,
        )
        return [error_details_pb2.RetryInfo(retry_delay=delay), error_details_pb2.QuotaFailure(violations=[violation])]

    def http_headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"retry-after", str(max(1, math.ceil(self.retry_after))).encode()),
                (b"retry-after-ms", str(int(self.retry_after * 1000)).encode()),
                (b"x-model-runtime-limit", self.limit.encode())]


def _resource_info(resource_type: str, name: str, message: str) -> list[Message]:
    if not resource_type:
        return []
    return [error_details_pb2.ResourceInfo(resource_type=resource_type, resource_name=name, description=message[:200])]


def _pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def to_status(exc: AccessError) -> grpc.Status:
    info = error_details_pb2.ErrorInfo(reason=exc.reason, domain=DOMAIN, metadata=exc.metadata)
    details = [_pack(info), *(_pack(d) for d in exc.details())]
    status = status_pb2.Status(code=getattr(code_pb2, exc.code.name), message=exc.message[:1024], details=details)
    return rpc_status.to_status(status)


def to_http(exc: AccessError) -> HttpError:
    code = exc.reason.lower()
    return HttpError(exc.http_status, exc.message, type=exc.http_type, code=code,
                     headers=exc.http_headers(), reason=exc.reason)


class CredentialsUnavailable(AccessError):
    """A named stored credential is unknown, of another provider, or cannot be decrypted."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    http_status = 400
    http_type = "invalid_request_error"

    def __init__(self, message: str, name: str) -> None:
        super().__init__(message, "STORED_CREDENTIALS_UNAVAILABLE", {"credentials": name})
        self.name = name

    def details(self) -> list[Message]:
        return [error_details_pb2.PreconditionFailure(violations=[error_details_pb2.PreconditionFailure.Violation(
            type="STORED_CREDENTIALS", subject=f"credentials/{self.name}", description=self.message[:200])])]


class AdminError(AccessError):
    """An admin operation that cannot be done as asked: each with its own status, never UNKNOWN.

    ``NOT_FOUND`` (a key id), ``ALREADY_EXISTS`` (a unique value taken), ``FAILED_PRECONDITION`` (no
    encryption keys, a stored credential that no configured key decrypts), ``UNAVAILABLE`` (the
    database or Redis cannot be reached: retry later). ResourceInfo names what it is about.
    """

    _HTTP: ClassVar[dict[grpc.StatusCode, int]] = {grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.ALREADY_EXISTS: 409,
             grpc.StatusCode.FAILED_PRECONDITION: 400, grpc.StatusCode.UNAVAILABLE: 503}

    def __init__(self, code: grpc.StatusCode, message: str, reason: str, resource_type: str = "",
                 resource_name: str = "") -> None:
        super().__init__(message, reason)
        self.code = code
        self.http_status = self._HTTP.get(code, 500)
        self.http_type = "service_unavailable" if code == grpc.StatusCode.UNAVAILABLE else "invalid_request_error"
        self.resource_type = resource_type
        self.resource_name = resource_name

    def details(self) -> list[Message]:
        return _resource_info(self.resource_type, self.resource_name, self.message)


def store_unavailable(exc: BaseException) -> AdminError:
    """The database or Redis failed: UNAVAILABLE, naming only the error class (URLs may hold passwords)."""
    return AdminError(grpc.StatusCode.UNAVAILABLE, f"The key store is unavailable ({type(exc).__name__}); "
                      "retry shortly.", "STORE_UNAVAILABLE")
