"""When a failed attempt may be repeated, how long to wait first, and the budget that bounds retries.

Retryable (same deployment, before any byte reached the caller): a connection that failed or
timed out on its own (not the caller's deadline), HTTP 408, 409, 429 and 5xx. Every other 4xx is
the request's or the deployment's own problem and is never repeated as is.

Waits: what the provider said (``retry-after-ms``, ``retry-after``, Gemini's ``RetryInfo`` — the
protocols put it in ``RuntimeFault.retry_after``), with up to 10 % of jitter on top so replicas do
not come back in lockstep; otherwise full-jitter exponential backoff.
"""

from __future__ import annotations

import random
import re

from ..errors import (
    InvokeAuthorizationError,
    InvokeBadRequestError,
    InvokeConnectionError,
    InvokeRateLimitError,
    NotFoundError,
    RuntimeFault,
)
from .spec import RetrySpec

RETRY_STATUSES = frozenset({408, 409, 429})
_CONTEXT = re.compile(
    r"context[ _](length|window)|maximum context|too many tokens|prompt is too long|input is too long|"
    r"exceeds the (maximum|max) (number of )?(input )?tokens", re.IGNORECASE)


def retryable(exc: BaseException) -> bool:
    if not isinstance(exc, RuntimeFault):
        return False
    if isinstance(exc, InvokeConnectionError):
        return not exc.deadline_exceeded and exc.upstream_status is None
    status = exc.upstream_status
    return status is not None and (status in RETRY_STATUSES or status >= 500)


def deployment_fault(exc: BaseException) -> bool:
    """A failure of the deployment rather than of the request: another deployment may serve it
    (rejected credentials, an unknown model, an exhausted quota)."""
    if retryable(exc):
        return True
    if isinstance(exc, (InvokeAuthorizationError, NotFoundError)):
        return exc.upstream_status is not None
    return isinstance(exc, InvokeRateLimitError)  # 402 / insufficient quota: this account, not the request


def context_window(exc: BaseException) -> bool:
    return isinstance(exc, InvokeBadRequestError) and bool(_CONTEXT.search(exc.description))


def wait_seconds(exc: RuntimeFault, retry: int, spec: RetrySpec, rng: random.Random) -> float:
    """Seconds before retry number ``retry`` (0-based)."""
    if exc.retry_after is not None:
        return exc.retry_after * (1.0 + 0.1 * rng.random())
    ceiling = min(spec.backoff_max_seconds, spec.backoff_seconds * (2 ** retry))
    return rng.uniform(0.0, ceiling)


class RetryBudget:
    """Token bucket: each call adds ``ratio`` (up to ``burst``), each retry takes one."""

    __slots__ = ("burst", "ratio", "tokens")

    def __init__(self, spec: RetrySpec) -> None:
        self.ratio = spec.budget_ratio
        self.burst = spec.budget_burst
        self.tokens = spec.budget_burst

    def deposit(self) -> None:
        if self.tokens < self.burst:
            self.tokens = min(self.burst, self.tokens + self.ratio)

    def spend(self) -> bool:
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False
