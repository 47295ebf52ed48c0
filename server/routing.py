"""The server side of routing: routes from the config, cooldowns shared through Redis, credentials.

Why here and not in the engine: the engine runs routed calls (``engine/routing``) but knows neither
Redis, nor caller keys, nor stored credentials. This module gives the engine's router

- the routes of ``routing.routes``, checked at start-up against the providers and models loaded
  (a route naming an unknown provider or model stops the server, like any config mistake), plus
  the routes stored through ``AdminService.PutRoute`` (every replica picks them up when the gate
  sees the store change; they name credentials only by ``credentials_name``: inline secrets would
  sit unencrypted in the database);
- a cooldown store: :class:`RedisCooldowns` when ``storage.redis_url`` is set (replicas agree on
  who cools down), else the engine's in-memory one;
- the credentials of each deployment: inline ones, stored ones by name (decrypted by the gate,
  no key scope needed: the operator named them), else the config's ``providers.<name>``; the
  caller key's model scopes are checked per deployment (a denied deployment is skipped).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from typing import Any

from engine.entities import ConfigurateMethod, ModelType
from engine.errors import FieldViolation, InvokeBadRequestError, NotFoundError
from engine.routing import CooldownStore, DeploymentSpec, MemoryCooldowns, RouteSpec, parse_routes
from engine.routing.spec import CooldownSpec
from engine.runtime import ModelRuntime

from .auth.gate import CURRENT, Gate
from .config import Config, ConfigError

log = logging.getLogger("modelruntime.routing")
PREFIX = "modelruntime:routing:"


class RedisCooldowns:
    """Cooldown state in Redis: a hash of deployment → end of cooldown, polled into memory every
    ``poll_seconds``; failure windows in sorted sets; the probe slot is a ``SET NX PX`` key. While
    Redis is away the server keeps serving: cooldowns then hold in this process only."""

    def __init__(self, url: str, poll_seconds: float = 0.25, prefix: str = PREFIX) -> None:
        from redis.asyncio import Redis

        self.redis = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        self.poll_seconds = poll_seconds
        self.prefix = prefix
        self._hash = prefix + "cooldowns"
        self._until: dict[str, float] = {}
        self._local = MemoryCooldowns()  # failure windows while Redis is away
        self._task: Any = None

    def until(self, key: str) -> float | None:
        return self._until.get(key) if self._until else None

    def snapshot(self) -> dict[str, float]:
        return dict(self._until)

    async def failure(self, key: str, spec: CooldownSpec) -> bool:
        now = time.time()
        name = f"{self.prefix}failures:{key}"
        try:
            pipe = self.redis.pipeline(transaction=True)
            pipe.zadd(name, {f"{now:.6f}:{secrets.token_hex(4)}": now})
            pipe.zremrangebyscore(name, 0, now - spec.window_seconds)
            pipe.zcard(name)
            pipe.expire(name, int(spec.window_seconds) + 1)
            count = (await pipe.execute())[2]
        except Exception as exc:  # noqa: BLE001 - Redis away: count in this process meanwhile
            log.warning("routing: shared cooldowns unavailable (%s); counting locally", type(exc).__name__)
            return await self._local.failure(key, spec)
        if count >= spec.failures:
            await self.redis.delete(name)
            return True
        return False

    async def open(self, key: str, seconds: float) -> None:
        until = time.time() + seconds
        self._until = {**self._until, key: until}  # this process at once, even if Redis is away
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self._hash, key, repr(until))
        pipe.delete(f"{self.prefix}probe:{key}")
        await pipe.execute()

    async def claim_probe(self, key: str, ttl: float) -> bool:
        return bool(await self.redis.set(f"{self.prefix}probe:{key}", "1", nx=True, px=max(1, int(ttl * 1000))))

    async def close(self, key: str) -> None:
        self._until = {k: v for k, v in self._until.items() if k != key}
        pipe = self.redis.pipeline(transaction=True)
        pipe.hdel(self._hash, key)
        pipe.delete(f"{self.prefix}probe:{key}")
        await pipe.execute()

    async def refresh(self) -> None:
        raw = await self.redis.hgetall(self._hash)
        self._until = {(k.decode() if isinstance(k, bytes) else k): float(v) for k, v in raw.items()}

    async def start(self) -> None:
        import asyncio

        try:
            await self.refresh()
        except Exception as exc:  # noqa: BLE001 - start anyway; the poll keeps trying
            log.warning("routing: shared cooldowns unavailable at start-up (%s)", type(exc).__name__)
        self._task = asyncio.get_running_loop().create_task(self._poll())

    async def _poll(self) -> None:
        import asyncio

        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                await self.refresh()
            except Exception as exc:  # noqa: BLE001 - keep the last view while Redis is away
                log.warning("routing: reading shared cooldowns failed (%s)", type(exc).__name__)

    async def aclose(self) -> None:
        import asyncio

        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.redis.aclose()


def check_routes(runtime: ModelRuntime, routes: dict[str, RouteSpec]) -> None:
    """Every deployment names a loaded provider and a model it has (or may customize)."""
    registry = runtime.registry
    for name, route in routes.items():
        for deployment, spec in zip(route.deployment_names(), route.deployments, strict=True):
            where = f"routing.routes.{name} deployment {deployment!r}"
            try:
                definition = registry.definition(spec.provider)
            except NotFoundError:
                raise ConfigError(f"{where}: unknown provider {spec.provider!r}") from None
            known = any(definition.predefined(t, spec.model) for t in ModelType)
            custom = ConfigurateMethod.CUSTOMIZABLE_MODEL in definition.entity.configurate_methods
            if not known and not custom:
                raise ConfigError(f"{where}: provider {spec.provider!r} has no model {spec.model!r}")


def _credentials(config: Config, gate: Gate | None) -> Any:
    configured = {name: entry.credentials for name, entry in config.providers.items()}

    def credentials(spec: DeploymentSpec, model_type: ModelType) -> dict[str, Any]:
        state = CURRENT.get()
        if state is not None and gate is not None:
            gate.check_scope(state.key, spec.provider, spec.model, model_type.value)
        if spec.credentials_name:
            if gate is None:
                raise ConfigError("stored credentials need the operator layer")
            return gate.operator_stored(spec.credentials_name, spec.provider)
        # Not copied: the runtime validates them into a new dict before any use.
        return spec.credentials or configured.get(spec.provider) or {}

    return credentials


def validate_stored(runtime: ModelRuntime, name: str, body: dict[str, Any]) -> RouteSpec:
    """A route put through the admin API, checked like the config's; raises a bad request."""
    def bad(field: str, message: str) -> InvokeBadRequestError:
        return InvokeBadRequestError(message, field_violations=(FieldViolation(field, message),))

    router = runtime.router
    if name in router.fixed:
        raise bad("name", f"route '{name}' is defined by the server's config and cannot be replaced")
    if any(isinstance(d, dict) and d.get("credentials") for d in body.get("deployments") or []):
        raise bad("route.deployments", "stored routes name stored credentials (credentials_name), never inline ones")
    try:
        others = {n: r.spec for n, r in router.routes.items() if n != name}
        spec = parse_routes({**others, name: body})[name]  # a context_window_fallback may name them
        check_routes(runtime, {name: spec})
    except (ValueError, ConfigError) as exc:
        raise bad("route", str(exc)[:500]) from None
    return spec


def _apply(runtime: ModelRuntime, fixed: dict[str, RouteSpec], stored: dict[str, dict[str, Any]]) -> None:
    routes = dict(fixed)
    for name, body in stored.items():
        if name in routes:
            log.warning("routing: stored route %s is shadowed by the config's route of that name", name)
            continue
        try:
            spec = parse_routes({**routes, name: body})[name]
            check_routes(runtime, {name: spec})
        except (ValueError, ConfigError) as exc:
            log.error("routing: stored route %s is not valid here (%s); not served", name, exc)
            continue
        routes[name] = spec
    runtime.router.replace(routes)


async def install(config: Config, runtime: ModelRuntime, gate: Gate | None) -> CooldownStore:
    """Give the runtime's router its routes, store and credentials; returns the store to close."""
    try:
        routes = parse_routes(config.routing.routes)
    except ValueError as exc:
        raise ConfigError(f"routing.routes: {exc}") from None
    check_routes(runtime, routes)
    runtime.router.fixed = frozenset(routes)
    store: CooldownStore
    if config.storage.redis_url and config.routing.shared_cooldowns:
        store = RedisCooldowns(config.storage.redis_url, config.routing.poll_seconds)
    else:
        store = MemoryCooldowns()
    await store.start()
    router = runtime.router
    router.replace(routes)
    if gate is not None:
        _apply(runtime, routes, gate.routes)
        gate.on_routes = lambda stored: _apply(runtime, routes, stored)
    router.store = store
    router.credentials = _credentials(config, gate)
    if routes:
        log.info("routing: %d route(s): %s", len(routes), ", ".join(sorted(routes)))
    return store
