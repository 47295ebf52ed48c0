"""What a route is: named deployments with retry, cooldown and balancing settings, checked strictly.

Why pydantic here (and not in server/config.py): routes come from the config file and, through the
admin API, from storage; both must be checked the same way, by the engine that runs them. Unknown
keys are an error (a misspelt ``max_in_flight`` would silently lift a concurrency cap).

A *route* is an ordered and/or weighted list of *deployments*; a deployment is one provider + model
with the credentials to reach it (inline, or stored credentials named by ``credentials_name``),
parameter overrides laid over the caller's, a weight and a concurrency cap.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")  # no "/": HTTP reads "a/b" as provider/model


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeploymentSpec(_Strict):
    provider: str
    model: str
    # Defaults to "<provider>/<model>" (plus "#<n>" when that repeats within the route).
    name: str = ""
    credentials: dict[str, Any] = Field(default_factory=dict)
    # Stored credentials (AdminService.PutCredentials) by name, instead of ``credentials``.
    credentials_name: str = ""
    # Laid over the caller's model_parameters before the model's rules check them.
    parameters: dict[str, Any] = Field(default_factory=dict)
    weight: float = Field(default=1.0, gt=0)
    # Calls in flight at once on this deployment in this process; 0 = no cap.
    max_in_flight: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _one_credential_source(self) -> DeploymentSpec:
        if self.credentials and self.credentials_name:
            raise ValueError("give either credentials or credentials_name, not both")
        return self


class RetrySpec(_Strict):
    # Retries of one deployment after its first attempt (connect failure, 408, 409, 429, 5xx).
    attempts: int = Field(default=2, ge=0, le=10)
    # Jittered exponential backoff when the provider did not say how long to wait.
    backoff_seconds: float = Field(default=0.25, ge=0)
    backoff_max_seconds: float = Field(default=8.0, ge=0)
    # Longest provider-requested wait honoured in place; longer: cool down and fall back.
    max_wait_seconds: float = Field(default=20.0, ge=0)
    # Retry budget (token bucket per route and process): each call adds ``budget_ratio`` tokens,
    # each retry spends one, at most ``budget_burst`` are held. Retries add at most
    # ratio × calls + burst upstream requests, so an outage cannot multiply traffic.
    budget_ratio: float = Field(default=0.2, ge=0)
    budget_burst: float = Field(default=10.0, ge=0)


class CooldownSpec(_Strict):
    # A deployment failing this many times within window_seconds cools down for seconds ...
    failures: int = Field(default=3, ge=1)
    window_seconds: float = Field(default=30.0, gt=0)
    seconds: float = Field(default=30.0, gt=0)
    # ... as does one answering 429 with a retry-after of at least this (for that long).
    long_retry_after_seconds: float = Field(default=10.0, gt=0)


class RouteSpec(_Strict):
    deployments: list[DeploymentSpec] = Field(min_length=1)
    # ordered: the first healthy deployment serves, the next ones are fallbacks in order;
    # weighted: smooth weighted round robin over the healthy ones; least_in_flight: the one with
    # the fewest calls in flight per unit of weight.
    strategy: Literal["ordered", "weighted", "least_in_flight"] = "ordered"
    retry: RetrySpec = Field(default_factory=RetrySpec)
    cooldown: CooldownSpec = Field(default_factory=CooldownSpec)
    # Another route (typically larger models) that serves a call its deployments rejected for
    # exceeding the context window.
    context_window_fallback: str = ""
    description: str = ""

    def deployment_names(self) -> list[str]:
        names: list[str] = []
        for d in self.deployments:
            base = d.name or f"{d.provider}/{d.model}"
            name, n = base, 1
            while name in names:
                n += 1
                name = f"{base}#{n}"
            names.append(name)
        return names


def check_name(name: str) -> None:
    if not NAME.match(name):
        raise ValueError(f"route name {name!r}: letters, digits and . _ : - only (no '/'), at most 100")


def parse_routes(data: dict[str, Any]) -> dict[str, RouteSpec]:
    """Routes from plain data (config or storage); raises ValueError naming the route at fault."""
    routes: dict[str, RouteSpec] = {}
    for name, body in data.items():
        check_name(name)
        routes[name] = body if isinstance(body, RouteSpec) else RouteSpec.model_validate(body)
    for name, route in routes.items():
        other = route.context_window_fallback
        if other and other not in routes:
            raise ValueError(f"route {name!r}: context_window_fallback names unknown route {other!r}")
        if other == name:
            raise ValueError(f"route {name!r}: context_window_fallback names itself")
    return routes
