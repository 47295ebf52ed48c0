"""Ledger rows written by ``Store.add_usage`` (compiled once, tuples to the driver, in chunks) are
stored exactly as SQLAlchemy's own ``insert(...)`` with dicts stores them, on SQLite and on real
PostgreSQL: compared both as typed values read back and as the raw values in the database.
The PostgreSQL case needs 127.0.0.1:5432 and is a failure under CI=true when skipped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import insert, select, text

from server.auth.store import open_store
from server.auth.store.db import _USAGE_CHUNK, USAGE_TABLE, UsageRecord
from server.auth.store.models import UsageRow
from tests.services import BACKENDS, store_url


def _records(key_id: str) -> list[UsageRecord]:
    start = datetime(2026, 12, 7, 23, 59, 58, 123456, tzinfo=UTC)
    out = []
    for i in range(_USAGE_CHUNK * 2 + 50):  # three statements
        ts = start + timedelta(seconds=i) if i % 3 else (start + timedelta(seconds=i)).astimezone(timezone(timedelta(hours=5)))
        out.append(UsageRecord(
            ts=ts, key_id=key_id, door="grpc" if i % 2 else "http", provider="openai", model=f"gpt-4o-mini-ü{i % 7}",
            model_type="llm", prompt_tokens=i, completion_tokens=2 * i, cost=Decimal("0.0000001234") * i,
            latency_ms=i / 3, status="OK" if i % 5 else "InvokeRateLimitError" * 3, cancelled=bool(i % 4 == 1),
            route="r" * (150 if i == 7 else i % 3), attempts=1 + i % 3))
    return out


def _reference_rows(records: list[UsageRecord]) -> list[dict]:
    """The rows as the ledger wrote them before: SQLAlchemy Core, a dict per row."""
    return [{"ts": r.ts, "day": r.ts.strftime("%Y-%m-%d"), "key_id": r.key_id, "door": r.door,
             "provider": r.provider, "model": r.model, "model_type": r.model_type, "prompt_tokens": r.prompt_tokens,
             "completion_tokens": r.completion_tokens, "total_tokens": r.prompt_tokens + r.completion_tokens,
             "cost": r.cost, "currency": r.currency, "latency_ms": r.latency_ms, "status": r.status[:40],
             "cancelled": r.cancelled, "route": r.route[:100], "attempts": r.attempts} for r in records]


async def _compare(url: str, data_dir) -> None:
    store = await open_store(url, data_dir)
    try:
        await store.add_usage(_records("fast"))
        async with store.engine.begin() as conn:
            await conn.execute(insert(USAGE_TABLE), _reference_rows(_records("ref")))
        columns = [c for c in USAGE_TABLE.c if c.name not in ("id", "key_id")]
        names = ", ".join(c.name for c in columns)
        async with store.session() as s:
            typed = {k: (await s.execute(select(*columns).where(UsageRow.key_id == k).order_by(UsageRow.id))).all()
                     for k in ("fast", "ref")}
        async with store.engine.connect() as conn:
            raw = {k: (await conn.execute(text(f"SELECT {names} FROM usage WHERE key_id = :k ORDER BY id"),
                                          {"k": k})).all() for k in ("fast", "ref")}
        assert len(typed["fast"]) == _USAGE_CHUNK * 2 + 50
        assert typed["fast"] == typed["ref"]
        assert raw["fast"] == raw["ref"]
        assert typed["fast"][7][columns.index(USAGE_TABLE.c.route)] == "r" * 100
        totals = {t.key_id: (t.requests, t.prompt_tokens, t.cost) for t in await store.usage()}
        assert totals["fast"] == totals["ref"]
    finally:
        await store.close()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_ledger_rows_match_sqlalchemys_insert(tmp_path, backend):
    async with store_url(backend, "mr_ledger_") as url:
        await _compare(url, tmp_path)
