"""Per-key rate limits (requests and tokens per minute) and spend budgets (USD per day or month).

Counters are fixed windows keyed by the key id and the window (the UTC minute, day or month), in
process memory (one process) or in Redis (every replica sees the same counts: LiteLLM's limits were
"the configured limit × replicas" because its pre-call check read local memory). One Redis round trip
per admitted call (a pipeline), and charges batched into shared pipelines; keys without limits cost nothing.

Order of work: ``admit`` before the call counts the request and refuses when the request window is
over, or the token window or the budget is already used up; ``charge`` after the call adds the
tokens and the cost the runtime priced. A call in flight may therefore overshoot a token limit or a
budget by its own size, as in every gateway that prices after the fact.

Spend is counted in nano-dollars (integers: Redis INCRBY, no float drift). A budget window starts
from the ledger's total for the period (``seed``) the first time a process or Redis sees it, so a
restart does not hand out a fresh budget.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache

from .errors import QuotaExceeded
from .keys import CallerKey

NANO = Decimal(10) ** 9
Seed = Callable[[str, str], Awaitable[Decimal]]  # (key id, first day of the period) → spend


@lru_cache(maxsize=64)
def _period_of_day(budget_period: str, day: int) -> tuple[str, str, float]:
    """(window id, first UTC day of the period, end as a timestamp) for a UTC day number."""
    at = datetime.fromtimestamp(day * 86400, UTC)
    if budget_period == "day":
        start, end = at, at + timedelta(days=1)
        window = start.strftime("%Y%m%d")
    else:
        start = at.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
        window = start.strftime("%Y%m")
    return window, start.strftime("%Y-%m-%d"), end.timestamp()


def period(key: CallerKey, now: float) -> tuple[str, str, float]:
    """(window id, first UTC day of the period, seconds until it ends) of the key's budget.
    Cached per UTC day: this runs on every admitted and every charged call."""
    window, start_day, end = _period_of_day(key.budget_period, int(now // 86400))
    return window, start_day, end - now


def _budget_error(key: CallerKey, spent: int, ends_in: float) -> QuotaExceeded:
    assert key.budget_usd is not None
    return QuotaExceeded(key.id, f"budget_usd_per_{key.budget_period}", str(key.budget_usd), ends_in,
                         f"The key's {'daily' if key.budget_period == 'day' else 'monthly'} budget of {key.budget_usd} USD is used up "
                         f"({(Decimal(spent) / NANO).quantize(Decimal('0.000001'))} USD spent).")


def _check(key: CallerKey, requests: int, tokens: int, spent: int | None, now: float) -> None:
    minute_left = 60 - now % 60
    if key.requests_per_minute and requests > key.requests_per_minute:
        raise QuotaExceeded(key.id, "requests_per_minute", str(key.requests_per_minute), minute_left,
                            f"The key's limit of {key.requests_per_minute} requests per minute is reached.")
    if key.tokens_per_minute and tokens >= key.tokens_per_minute:
        raise QuotaExceeded(key.id, "tokens_per_minute", str(key.tokens_per_minute), minute_left,
                            f"The key's limit of {key.tokens_per_minute} tokens per minute is reached.")
    if key.budget_usd is not None and spent is not None and spent >= int(key.budget_usd * NANO):
        raise _budget_error(key, spent, period(key, now)[2])


class CountersUnavailable(Exception):
    """Redis failed (redis-py's own errors are not OSError; redis is imported only when configured)."""


class MemoryCounters:
    """Counters of this process only."""

    def __init__(self, seed: Seed | None = None) -> None:
        self._counts: dict[str, int] = {}
        self._seed = seed
        self._minute = 0

    def _gc(self, minute: int) -> None:
        if minute != self._minute:  # drop the windows of past minutes (budget windows are few)
            self._minute = minute
            stale = [k for k in self._counts if k.startswith(("r:", "t:")) and not k.endswith(f":{minute}")]
            for k in stale:
                del self._counts[k]

    async def admit(self, key: CallerKey, now: float | None = None) -> None:
        if not key.limited:
            return
        now = time.time() if now is None else now
        minute = int(now // 60)
        self._gc(minute)
        requests = 0
        if key.requests_per_minute:
            requests = self._counts[f"r:{key.id}:{minute}"] = self._counts.get(f"r:{key.id}:{minute}", 0) + 1
        tokens = self._counts.get(f"t:{key.id}:{minute}", 0)
        spent = None
        if key.budget_usd is not None:
            window, start_day, _ = period(key, now)
            name = f"b:{key.id}:{window}"
            if name not in self._counts:
                seeded = await self._seed(key.id, start_day) if self._seed else Decimal(0)
                self._counts.setdefault(name, int(seeded * NANO))
            spent = self._counts[name]
        _check(key, requests, tokens, spent, now)

    async def charge(self, key: CallerKey, tokens: int, cost: Decimal, now: float | None = None) -> None:
        self.add(key, tokens, cost, now)

    def add(self, key: CallerKey, tokens: int, cost: Decimal, now: float | None = None) -> None:
        """``charge`` without the coroutine: memory counters need no I/O, so the gate calls this at once."""
        if not key.limited:
            return
        now = time.time() if now is None else now
        if key.tokens_per_minute and tokens:
            name = f"t:{key.id}:{int(now // 60)}"
            self._counts[name] = self._counts.get(name, 0) + tokens
        if key.budget_usd is not None and cost:
            name = f"b:{key.id}:{period(key, now)[0]}"
            self._counts[name] = self._counts.get(name, 0) + int(cost * NANO)

    async def close(self) -> None:
        pass


class RedisCounters:
    """Counters in Redis (redis-py's asyncio client), shared by every replica."""

    def __init__(self, url: str, seed: Seed | None = None, prefix: str = "modelruntime:") -> None:
        from redis.asyncio import Redis
        from redis.exceptions import RedisError

        self.redis = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        self._errors = RedisError
        self._seed = seed
        self._prefix = prefix
        self._seeded: set[str] = set()
        self._due: dict[str, tuple[int, int]] = {}  # counter → (amount to add, TTL): charges not yet sent
        self._flushing: asyncio.Task[None] | None = None

    async def ping(self) -> None:
        await self.redis.ping()

    async def admit(self, key: CallerKey, now: float | None = None) -> None:
        try:
            await self._admit(key, now)
        except self._errors as exc:
            raise CountersUnavailable(type(exc).__name__) from None

    async def _admit(self, key: CallerKey, now: float | None = None) -> None:
        if not key.limited:
            return
        now = time.time() if now is None else now
        minute = int(now // 60)
        p = self._prefix
        budget_name = ""
        if key.budget_usd is not None:
            window, start_day, ends_in = period(key, now)
            budget_name = f"{p}b:{key.id}:{window}"
            if budget_name not in self._seeded:
                seeded = await self._seed(key.id, start_day) if self._seed else Decimal(0)
                await self.redis.set(budget_name, int(seeded * NANO), nx=True, ex=int(ends_in) + 3600)
                self._seeded.add(budget_name)
        pipe = self.redis.pipeline(transaction=False)
        if key.requests_per_minute:
            pipe.incr(f"{p}r:{key.id}:{minute}")
            pipe.expire(f"{p}r:{key.id}:{minute}", 120)
        pipe.get(f"{p}t:{key.id}:{minute}")
        if budget_name:
            pipe.get(budget_name)
        replies = await pipe.execute()
        requests = int(replies.pop(0)) if key.requests_per_minute else 0
        if key.requests_per_minute:
            replies.pop(0)
        tokens = int(replies.pop(0) or 0)
        spent = int(replies.pop(0) or 0) if budget_name else None
        _check(key, requests, tokens, spent, now)

    async def charge(self, key: CallerKey, tokens: int, cost: Decimal, now: float | None = None) -> None:
        """Add a finished call's tokens and cost. Charges arriving while a pipeline is in flight
        are summed per counter and go out together in the next one: under load one Redis round
        trip carries many calls' charges (admit stays one round trip per call, as it must)."""
        if not key.limited or not (tokens or cost):
            return
        now = time.time() if now is None else now
        p = self._prefix
        if key.tokens_per_minute and tokens:
            self._due_add(f"{p}t:{key.id}:{int(now // 60)}", tokens, 120)
        if key.budget_usd is not None and cost:
            window, _, ends_in = period(key, now)
            self._due_add(f"{p}b:{key.id}:{window}", int(cost * NANO), int(ends_in) + 3600)
        if self._flushing is None:
            self._flushing = asyncio.get_running_loop().create_task(self._flush())
        await asyncio.shield(self._flushing)

    def _due_add(self, name: str, amount: int, ttl: int) -> None:
        total, _ = self._due.get(name, (0, ttl))
        self._due[name] = (total + amount, ttl)

    async def _flush(self) -> None:
        try:
            while self._due:
                due, self._due = self._due, {}
                pipe = self.redis.pipeline(transaction=False)
                for name, (amount, ttl) in due.items():
                    pipe.incrby(name, amount)
                    pipe.expire(name, ttl)
                await pipe.execute()
        finally:
            self._flushing = None

    async def close(self) -> None:
        await self.redis.aclose()
