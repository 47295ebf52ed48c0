"""Domain errors → gRPC status with google.rpc details (the only place that decides codes).

Every status carries ErrorInfo(reason = Dify error class name, domain "modelruntime",
metadata provider/model); RetryInfo when the provider said when to retry; BadRequest
field violations when a field is at fault; ResourceInfo for unknown providers/models.
A bad *provider* credential is INVALID_ARGUMENT, never UNAUTHENTICATED: the caller's own
identity is fine, and UNAUTHENTICATED would make clients refresh the wrong token.
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

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

DOMAIN = "modelruntime"


def status_code(exc: RuntimeFault) -> grpc.StatusCode:
    if isinstance(exc, NotFoundError):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(exc, UnsupportedError):
        return grpc.StatusCode.UNIMPLEMENTED
    if isinstance(exc, (InvokeBadRequestError, InvokeAuthorizationError, CredentialsValidateFailedError)):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(exc, InvokeRateLimitError):
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    if isinstance(exc, InvokeConnectionError):
        if getattr(exc, "deadline_exceeded", False):
            return grpc.StatusCode.DEADLINE_EXCEEDED
        return grpc.StatusCode.UNAVAILABLE
    if isinstance(exc, InvokeServerUnavailableError):
        return grpc.StatusCode.UNAVAILABLE
    return grpc.StatusCode.INTERNAL


def _pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def to_status(exc: RuntimeFault) -> grpc.Status:
    code = status_code(exc)
    metadata = {"provider": exc.provider, "model": exc.model}
    if exc.upstream_status:
        metadata["upstreamStatus"] = str(exc.upstream_status)
    details = [_pack(error_details_pb2.ErrorInfo(reason=exc.reason, domain=DOMAIN, metadata=metadata))]
    if exc.retry_after is not None:
        delay = duration_pb2.Duration()
        delay.FromMilliseconds(int(exc.retry_after * 1000))
        details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    violations = [(v.field, v.description) for v in exc.field_violations]
    if isinstance(exc, InvokeAuthorizationError) and not violations:
        violations = [("target.credentials", "rejected by the provider")]
    if violations:
        details.append(_pack(error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=field, description=description)
            for field, description in violations[:50]  # trailers are ~8 KiB: keep details small
        ])))
    if isinstance(exc, NotFoundError):
        details.append(_pack(error_details_pb2.ResourceInfo(
            resource_type="model" if exc.model else "provider",
            resource_name=f"providers/{exc.provider}" + (f"/models/{exc.model}" if exc.model else ""),
            description=exc.description[:200],
        )))
    message = f"[{exc.provider}] {exc.description}" if exc.provider else exc.description
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=message[:1024], details=details)
    return rpc_status.to_status(status)

