"""Redis counters batch the charges of calls that finish together into shared pipelines, and
lose none of them (real Redis on 127.0.0.1:6379)."""

from __future__ import annotations

import asyncio
import secrets
import time
from decimal import Decimal

import pytest

from server.auth.keys import CallerKey
from server.auth.limits import NANO, RedisCounters, period
from tests.auth_env import reachable

pytestmark = pytest.mark.services


async def test_concurrent_charges_share_pipelines_and_add_up():
    if not reachable(6379):
        pytest.skip("Redis (127.0.0.1:6379) is not reachable")
    prefix = f"modelruntime-test-{secrets.token_hex(4)}:"
    counters = RedisCounters("redis://127.0.0.1:6379/0", prefix=prefix)
    key = CallerKey(id="k1", name="k1", prefix="mr-", tokens_per_minute=10**9, budget_usd=Decimal(100))
    pipelines = 0
    make = counters.redis.pipeline

    def counting(*args, **kwargs):
        nonlocal pipelines
        pipelines += 1
        return make(*args, **kwargs)

    counters.redis.pipeline = counting  # type: ignore[method-assign]
    now = time.time()
    try:
        await asyncio.gather(*(counters.charge(key, 10, Decimal("0.001"), now) for _ in range(200)))
        assert pipelines < 20, pipelines  # 200 charges, a handful of round trips
        tokens = await counters.redis.get(f"{prefix}t:k1:{int(now // 60)}")
        spent = await counters.redis.get(f"{prefix}b:k1:{period(key, now)[0]}")
        assert int(tokens) == 2000
        assert int(spent) == int(Decimal("0.2") * NANO)
        ttl = await counters.redis.ttl(f"{prefix}t:k1:{int(now // 60)}")
        assert 0 < ttl <= 120
    finally:
        names = [n async for n in counters.redis.scan_iter(f"{prefix}*")]
        if names:
            await counters.redis.delete(*names)
        await counters.close()
