"""The usage ledger: one row per call, buffered in memory and written in batches off the hot path.

A call appends a :class:`UsageRecord` (a list append, no I/O); a writer task inserts the buffer when
it reaches ``batch_size`` rows or every ``flush_seconds``, and :meth:`Ledger.close` writes what is left
at shutdown. A failed write keeps the rows for the next attempt, up to ``max_buffer`` rows (then the
oldest are dropped and counted in the log, so a dead database cannot exhaust memory).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from .store import Store, UsageRecord

log = logging.getLogger("modelruntime.auth")


class Ledger:
    def __init__(self, store: Store, batch_size: int = 500, flush_seconds: float = 1.0,
                 max_buffer: int = 100_000) -> None:
        self.store = store
        self.batch_size = max(1, batch_size)
        self.flush_seconds = flush_seconds
        self.max_buffer = max_buffer
        self._buffer: list[UsageRecord] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._closing = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def record(self, record: UsageRecord) -> None:
        self._buffer.append(record)
        if len(self._buffer) > self.max_buffer:
            dropped = len(self._buffer) - self.max_buffer
            del self._buffer[:dropped]
            log.error("usage ledger: dropped %d rows (the database is not accepting writes)", dropped)
        if len(self._buffer) >= self.batch_size:
            self._wake.set()

    async def flush(self) -> None:
        while self._buffer:
            batch, self._buffer = self._buffer[: self.batch_size * 4], self._buffer[self.batch_size * 4:]
            try:
                await self.store.add_usage(batch)
            except Exception as exc:  # noqa: BLE001 - keep the rows, try again later
                self._buffer[:0] = batch
                log.error("usage ledger: write failed (%s); %d rows kept", type(exc).__name__, len(self._buffer))
                return

    async def _run(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_seconds)
            self._wake.clear()
            await self.flush()

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()
