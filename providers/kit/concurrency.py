"""Bounded fan-out for adapters that split one call into several upstream requests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import TypeVar

T = TypeVar("T")

# Upper bound on concurrent requests of one call: a 1000-text call with max_chunks 1 must not
# open 1000 connections at once (and trip the provider's rate limit).
MAX_PARALLEL = 16


async def gather_all(aws: Sequence[Awaitable[T]], limit: int = MAX_PARALLEL) -> list[T]:
    """``asyncio.gather`` with a concurrency cap that cancels the rest on the first failure
    (plain gather would leave the other requests running after an error)."""
    if len(aws) == 1:
        return [await aws[0]]
    semaphore = asyncio.Semaphore(limit)

    async def bounded(aw: Awaitable[T]) -> T:
        async with semaphore:
            return await aw

    tasks = [asyncio.ensure_future(bounded(aw)) for aw in aws]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
