"""The runtime's exception tree.

Every failure a caller can see is one of these. Names and meanings follow Dify's
model runtime, so a Dify client can dispatch on the class name (it travels as
``ErrorInfo.reason``)::

    RuntimeFault                      base of everything below
    ├── InvokeError                   a model call failed (Dify's base class)
    │   ├── InvokeConnectionError         network error or timeout reaching the provider
    │   ├── InvokeServerUnavailableError  provider 5xx / overloaded
    │   ├── InvokeRateLimitError          provider 429 (retry_after when the provider said)
    │   ├── InvokeAuthorizationError      provider rejected the credentials (401/403)
    │   └── InvokeBadRequestError         the provider or the runtime rejected the request
    │       ├── NotFoundError                 unknown provider, model or upstream resource
    │       ├── UnsupportedError              the provider lacks the capability
    │       └── EgressDeniedError             a base URL resolves to a forbidden address
    └── CredentialsValidateFailedError  credential form or provider check failed

``field_violations`` name the request field at fault (``model_parameters.temperature``,
``credentials.openai_api_key``, ``messages[2].content``) so the gRPC layer can attach
``google.rpc.BadRequest``. Messages never contain secrets or provider response bodies
beyond the provider's own error message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class FieldViolation:
    field: str
    description: str


class RuntimeFault(Exception):
    """Base class; ``reason`` is the Dify error class name sent to callers."""

    reason = "InvokeError"
    default_description = "Error"
    deadline_exceeded = False  # see InvokeConnectionError

    def __init__(
        self,
        description: str | None = None,
        *,
        provider: str = "",
        model: str = "",
        field_violations: tuple[FieldViolation, ...] | list[FieldViolation] = (),
        retry_after: float | None = None,
        upstream_status: int | None = None,
    ) -> None:
        self.description = description or self.default_description
        self.provider = provider
        self.model = model
        self.field_violations = tuple(field_violations)
        self.retry_after = retry_after
        self.upstream_status = upstream_status
        super().__init__(self.description)

    def with_target(self, provider: str, model: str) -> RuntimeFault:
        """Fill in provider/model where the raiser did not know them."""
        if not self.provider:
            self.provider = provider
        if not self.model:
            self.model = model
        return self

    def scrub(self, secrets: list[str]) -> RuntimeFault:
        """Remove secret values (e.g. a mistyped key a provider echoed back) from the text."""
        for secret in secrets:
            if len(secret) >= 4 and secret in self.description:
                self.description = self.description.replace(secret, "***")
            if self.field_violations and any(secret in v.description for v in self.field_violations):
                self.field_violations = tuple(
                    FieldViolation(v.field, v.description.replace(secret, "***")) for v in self.field_violations
                )
        self.args = (self.description,)
        return self

    def __str__(self) -> str:
        return self.description


class InvokeError(RuntimeFault):
    reason = "InvokeError"


class InvokeConnectionError(InvokeError):
    reason = "InvokeConnectionError"
    default_description = "Connection Error"

    def __init__(self, description: str | None = None, *, deadline_exceeded: bool = False,
                 **kw: Any) -> None:
        super().__init__(description, **kw)
        # True when the wait that failed was cut short by the caller's own deadline, so the
        # front doors answer DEADLINE_EXCEEDED / 504 rather than a provider failure.
        self.deadline_exceeded = deadline_exceeded


class InvokeServerUnavailableError(InvokeError):
    reason = "InvokeServerUnavailableError"
    default_description = "Server Unavailable Error"


class InvokeRateLimitError(InvokeError):
    reason = "InvokeRateLimitError"
    default_description = "Rate Limit Error"


class InvokeAuthorizationError(InvokeError):
    reason = "InvokeAuthorizationError"
    default_description = "Incorrect model credentials provided, please check and try again."


class InvokeBadRequestError(InvokeError):
    reason = "InvokeBadRequestError"
    default_description = "Bad Request Error"


class NotFoundError(InvokeBadRequestError):
    default_description = "Not Found"


class UnsupportedError(InvokeBadRequestError):
    default_description = "Not supported"


class EgressDeniedError(InvokeBadRequestError):
    default_description = "Destination address is not allowed"


class CredentialsValidateFailedError(RuntimeFault):
    reason = "CredentialsValidateFailedError"
    default_description = "Credentials validation failed"


def bad_request(field: str, description: str, **kw: object) -> InvokeBadRequestError:
    """A request-validation failure naming one field."""
    return InvokeBadRequestError(
        f"{field}: {description}", field_violations=(FieldViolation(field, description),), **kw  # type: ignore[arg-type]
    )
