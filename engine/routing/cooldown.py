"""Cooldown state of deployments: who is cooling down, failures within a window, the probe slot.

Why a store interface: one process keeps the state in memory (:class:`MemoryCooldowns`); replicas
share it through Redis (``server/routing.py``), so a deployment cooled down by one replica is
avoided by all. Either way the hot path reads only a local dict (:meth:`until`): a healthy route
costs one dict lookup per deployment, never a network round trip. Writes (a failure, a cooldown,
a probe) happen only on the failure path.

Life of a deployment: healthy → (``failures`` failures within ``window_seconds``, or a 429 with a
long retry-after) cooling until T → after T one call at a time may *probe* it (the probe slot is
claimed, with a time-to-live so a crashed prober does not hold it) → the probe succeeds: healthy;
it fails: cooling again. Times are wall-clock seconds (``time.time()``): replicas compare them.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Protocol

from .spec import CooldownSpec


class CooldownStore(Protocol):
    def until(self, key: str) -> float | None:
        """None: healthy; else the wall time its cooldown ends (a probe is due after it)."""

    async def failure(self, key: str, spec: CooldownSpec) -> bool:
        """Count a failure; True when the window now holds ``spec.failures`` of them."""

    async def open(self, key: str, seconds: float) -> None: ...

    async def claim_probe(self, key: str, ttl: float) -> bool: ...

    async def close(self, key: str) -> None: ...

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...

    def snapshot(self) -> dict[str, float]: ...


class MemoryCooldowns:
    """This process only."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}
        self._failures: dict[str, deque[float]] = {}
        self._probes: dict[str, float] = {}

    def until(self, key: str) -> float | None:
        return self._until.get(key) if self._until else None

    async def failure(self, key: str, spec: CooldownSpec) -> bool:
        now = time.time()
        window = self._failures.setdefault(key, deque())
        window.append(now)
        while window and window[0] <= now - spec.window_seconds:
            window.popleft()
        if len(window) >= spec.failures:
            window.clear()
            return True
        return False

    async def open(self, key: str, seconds: float) -> None:
        self._until[key] = time.time() + seconds
        self._probes.pop(key, None)

    async def claim_probe(self, key: str, ttl: float) -> bool:
        now = time.time()
        if self._probes.get(key, 0.0) > now:
            return False
        self._probes[key] = now + ttl
        return True

    async def close(self, key: str) -> None:
        self._until.pop(key, None)
        self._probes.pop(key, None)
        self._failures.pop(key, None)

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    def snapshot(self) -> dict[str, float]:
        return dict(self._until)
