"""Runs one routed call: picks deployments, retries, falls back, cools down, says who served it.

For each call: the route's healthy deployments (not cooling down, not at their concurrency cap; a
deployment whose cooldown ended takes one probe call at a time) are ordered by the balancer; the
first serves, the rest are fallbacks in that order. Per deployment:

- a retryable failure (:func:`.retry.retryable`) before the first byte reached the caller is
  retried after the provider's retry-after or a jittered backoff — unless the wait would pass the
  caller's deadline (then the next deployment serves at once, or, with none left, the provider's
  own error is returned at once: a 429 as RESOURCE_EXHAUSTED with its RetryInfo), unless the
  wait is longer than ``retry.max_wait_seconds``, or the route's retry budget is spent;
- a failure of the deployment itself (credentials, quota, unknown model) moves to the next one;
- a failure of the request (any other 4xx) ends the call: another model would refuse it too,
  except a context-window error with ``context_window_fallback`` set, which that route serves;
- failures feed the cooldown (:mod:`.cooldown`); a successful probe ends it.

Streams count as served once their first chunk arrived: nothing after it is ever retried.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from ..entities import ModelType
from ..errors import (
    FieldViolation,
    InvokeBadRequestError,
    InvokeRateLimitError,
    InvokeServerUnavailableError,
    NotFoundError,
    RuntimeFault,
)
from .balance import Balancer, Deployment
from .cooldown import CooldownStore, MemoryCooldowns
from .retry import RetryBudget, context_window, deployment_fault, retryable, wait_seconds
from .spec import DeploymentSpec, RouteSpec

log = logging.getLogger("modelruntime.routing")
T = TypeVar("T")
_MAX_CONTEXT_HOPS = 3


@dataclass(slots=True)
class Served:
    """Which deployment served a routed call, and what it took (filled in as the call runs)."""

    route: str
    deployment: str = ""
    provider: str = ""
    model: str = ""
    attempts: int = 0
    fallbacks: int = 0


class RoutingEvents(Protocol):
    """Told of retries, fallbacks and cooldowns (server/observability counts them)."""

    def retried(self, route: str, deployment: str, reason: str) -> None: ...

    def fell_back(self, route: str, deployment: str, reason: str) -> None: ...

    def cooled_down(self, route: str, deployment: str) -> None: ...


# (deployment spec, model type) -> the credentials to use; raises RuntimeFault or a refusal.
Credentials = Callable[[DeploymentSpec, ModelType], dict[str, Any]]
Attempt = Callable[[DeploymentSpec, dict[str, Any]], Awaitable[T]]


def _reason(exc: BaseException) -> str:
    status = getattr(exc, "upstream_status", None)
    return str(status) if status else getattr(exc, "reason", type(exc).__name__)


class Route:
    """A route's spec with this process's balancing state and retry budget."""

    def __init__(self, name: str, spec: RouteSpec) -> None:
        self.name = name
        self.spec = spec
        self.balancer = Balancer(name, spec)
        self.budget = RetryBudget(spec.retry)
        self.deployments: list[Deployment] = self.balancer.deployments


class Router:
    def __init__(self, routes: dict[str, RouteSpec], store: CooldownStore | None = None,
                 rng: random.Random | None = None) -> None:
        self.routes = {name: Route(name, spec) for name, spec in routes.items()}
        self.store: CooldownStore = store or MemoryCooldowns()
        self.rng = rng or random.Random()
        self.events: RoutingEvents | None = None
        self.credentials: Credentials = _inline_credentials
        # Routes defined by the config: routes stored through the admin API may not replace them.
        self.fixed: frozenset[str] = frozenset()

    def route(self, name: str) -> Route:
        route = self.routes.get(name)
        if route is None:
            raise NotFoundError(f"Unknown route '{name}'",
                                field_violations=(FieldViolation("route", "unknown route"),))
        return route

    def replace(self, routes: dict[str, RouteSpec]) -> None:
        """New route definitions (admin change); unchanged routes keep their state."""
        current = self.routes
        self.routes = {name: current[name] if name in current and current[name].spec == spec else Route(name, spec)
                       for name, spec in routes.items()}

    # ---- calls ------------------------------------------------------------------------------

    async def unary(self, served: Served, model_type: ModelType, deadline: float | None,
                    attempt: Attempt[T]) -> T:
        result, _ = await self._serve(self.route(served.route), served, model_type, deadline, attempt, False)
        return result

    async def stream(self, served: Served, model_type: ModelType, deadline: float | None,
                     open_stream: Callable[[DeploymentSpec, dict[str, Any]], AsyncGenerator[Any, None]]
                     ) -> AsyncGenerator[Any, None]:
        async def first_chunk(spec: DeploymentSpec, credentials: dict[str, Any]) -> tuple[Any, Any]:
            chunks = open_stream(spec, credentials)
            try:
                return await anext(chunks), chunks
            except StopAsyncIteration:
                return None, None
            except BaseException:
                await chunks.aclose()
                raise

        (first, chunks), deployment = await self._serve(self.route(served.route), served, model_type, deadline,
                                                        first_chunk, True)
        try:
            if chunks is None:
                return
            yield first
            async for chunk in chunks:
                yield chunk
        finally:
            deployment.in_flight -= 1
            if chunks is not None:
                await chunks.aclose()

    # ---- the loop ---------------------------------------------------------------------------

    async def _serve(self, route: Route, served: Served, model_type: ModelType, deadline: float | None,
                     attempt: Attempt[Any], hold: bool, hops: int = 0) -> tuple[Any, Deployment]:
        route.budget.deposit()
        candidates, due, soonest, busy = self._candidates(route)
        probes: set[Deployment] = set()
        if due:
            candidates, probes = await self._probes(candidates, due, deadline)
        if not candidates:
            raise _none_available(route.name, soonest, busy)
        loop = asyncio.get_running_loop()
        spec = route.spec
        last: BaseException | None = None
        refused: BaseException | None = None
        order = route.balancer.order(candidates)
        for position, deployment in enumerate(order):
            if deployment.full():
                busy = True
                continue
            if position and last is not None:
                served.fallbacks += 1
                self._event("fell_back", route.name, deployment.name, _reason(last))
            try:
                credentials = self.credentials(deployment.spec, model_type)
            except Exception as exc:  # noqa: BLE001 - a refused scope or missing stored credentials
                refused = refused or exc
                continue
            retries = 0
            while True:
                served.attempts += 1
                served.deployment, served.provider, served.model = (
                    deployment.name, deployment.spec.provider, deployment.spec.model)
                deployment.in_flight += 1
                try:
                    result = await attempt(deployment.spec, credentials)
                except RuntimeFault as exc:
                    deployment.in_flight -= 1
                    last = exc
                    if not deployment_fault(exc):
                        other = spec.context_window_fallback
                        if other and context_window(exc) and hops < _MAX_CONTEXT_HOPS and other in self.routes:
                            served.fallbacks += 1
                            self._event("fell_back", route.name, other, "context_window")
                            return await self._serve(self.routes[other], served, model_type, deadline, attempt,
                                                     hold, hops + 1)
                        raise
                    cooled = await self._failed(route, deployment, exc, bool(probes) and deployment in probes)
                    if cooled or not retryable(exc) or retries >= spec.retry.attempts:
                        break
                    wait = wait_seconds(exc, retries, spec.retry, self.rng)
                    if wait > spec.retry.max_wait_seconds:
                        break
                    if deadline is not None and loop.time() + wait >= deadline:
                        break  # the next deployment at once, else the provider's own error now
                    if not route.budget.spend():
                        break
                    self._event("retried", route.name, deployment.name, _reason(exc))
                    retries += 1
                    await asyncio.sleep(wait)
                    continue
                except BaseException:
                    deployment.in_flight -= 1
                    raise
                if not hold:
                    deployment.in_flight -= 1
                if probes and deployment in probes or self.store.until(deployment.key) is not None:
                    await self._healthy(deployment)
                return result, deployment
        if last is not None:
            raise last
        if refused is not None:
            raise refused
        raise _none_available(route.name, soonest, busy)

    def _candidates(self, route: Route) -> tuple[list[Deployment], list[Deployment], float | None, bool]:
        """(healthy deployments, ones whose cooldown ended and want a probe, soonest end of a
        cooldown in seconds, whether any was at its cap). Reads only local state."""
        until = self.store.until
        out: list[Deployment] = []
        due: list[Deployment] = []
        soonest: float | None = None
        busy = False
        now = 0.0
        for deployment in route.deployments:
            if deployment.full():
                busy = True
                continue
            ends = until(deployment.key)
            if ends is not None:
                now = now or time.time()
                if now < ends:
                    soonest = ends if soonest is None else min(soonest, ends)
                    continue
                due.append(deployment)
            out.append(deployment)
        return out, due, (soonest - time.time()) if soonest is not None else None, busy

    async def _probes(self, candidates: list[Deployment], due: list[Deployment], deadline: float | None
                      ) -> tuple[list[Deployment], set[Deployment]]:
        """Claim the probe slot of each deployment that is due one; drop those another call holds."""
        ttl = max(1.0, deadline - asyncio.get_running_loop().time()) if deadline is not None else 60.0
        probes: set[Deployment] = set()
        for deployment in due:
            try:
                claimed = await self.store.claim_probe(deployment.key, min(ttl, 60.0))
            except Exception as exc:  # noqa: BLE001 - the shared store is away: probe from here
                log.warning("routing: cooldown store failed (%s)", type(exc).__name__)
                claimed = True
            if claimed:
                probes.add(deployment)
        return [d for d in candidates if d not in due or d in probes], probes

    async def _failed(self, route: Route, deployment: Deployment, exc: RuntimeFault, probing: bool) -> bool:
        """Feed the cooldown; True when the deployment now cools down."""
        spec = route.spec.cooldown
        store = self.store
        seconds: float | None = None
        try:
            if probing:
                seconds = spec.seconds
            elif isinstance(exc, InvokeRateLimitError) and (exc.retry_after or 0) >= spec.long_retry_after_seconds:
                seconds = exc.retry_after
            elif await store.failure(deployment.key, spec):
                seconds = spec.seconds
            if seconds is not None:
                await store.open(deployment.key, seconds)
        except Exception as exc2:  # noqa: BLE001 - a shared store outage must not fail the call
            log.warning("routing: cooldown store failed (%s)", type(exc2).__name__)
        if seconds is None:
            return False
        log.warning("routing: route %s deployment %s cools down for %.1fs (%s)", route.name, deployment.name,
                    seconds, _reason(exc))
        self._event("cooled_down", route.name, deployment.name)
        return True

    async def _healthy(self, deployment: Deployment) -> None:
        try:
            await self.store.close(deployment.key)
        except Exception as exc:  # noqa: BLE001
            log.warning("routing: cooldown store failed (%s)", type(exc).__name__)

    def _event(self, kind: str, route: str, deployment: str, reason: str = "") -> None:
        events = self.events
        if events is None:
            return
        if kind == "cooled_down":
            events.cooled_down(route, deployment)
        else:
            getattr(events, kind)(route, deployment, reason)

    # ---- catalog ----------------------------------------------------------------------------

    def cooling(self, deployment: Deployment) -> float | None:
        """Seconds of cooldown left (0: a probe is due), None: healthy."""
        until = self.store.until(deployment.key)
        return None if until is None else max(0.0, until - time.time())


def _inline_credentials(spec: DeploymentSpec, model_type: ModelType) -> dict[str, Any]:
    if spec.credentials_name:
        raise InvokeBadRequestError(f"Stored credentials '{spec.credentials_name}' need the operator layer")
    return dict(spec.credentials)


def _none_available(route: str, soonest: float | None, busy: bool) -> RuntimeFault:
    if soonest is not None:
        return InvokeServerUnavailableError(
            f"Every deployment of route '{route}' is cooling down", retry_after=max(0.0, soonest))
    if busy:
        return InvokeRateLimitError(f"Every deployment of route '{route}' is at its concurrency limit")
    return InvokeServerUnavailableError(f"No deployment of route '{route}' is available")
