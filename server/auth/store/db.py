"""The store: SQLAlchemy 2 (async) over aiosqlite or asyncpg, migrated by Alembic at open.

Why these libraries: SQLAlchemy is the Python service team's default ORM/Core, its async engine
runs the same models on SQLite (aiosqlite, the embedded default: a file under ``storage.data_dir``)
and PostgreSQL (asyncpg, the fastest maintained driver); Alembic is its migration tool. Queries are
built with SQLAlchemy expressions only, so every value is a bound parameter (no SQL is written by
hand; LiteLLM's CVE-2026-42208 was a key interpolated into SQL).

Concurrency: several server processes may open the same database at once. Migrations run under a
file lock (SQLite) or a transaction-scoped advisory lock (PostgreSQL); SQLite runs in WAL mode with
a busy timeout. Every change to keys or stored credentials bumps ``meta.version`` in the same
transaction, which the gate polls to reload its caches (revocation reaches every process).
"""

from __future__ import annotations

import asyncio
import fcntl
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Table, delete, event, func, insert, inspect, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from ..keys import CallerKey, Scopes, display_prefix, hash_secret, new_secret
from .models import CredentialRow, KeyRow, MetaRow, RouteRow, UsageRow

MIGRATIONS = Path(__file__).parent / "migrations"
USAGE_TABLE: Table = UsageRow.__table__  # type: ignore[assignment]  # declarative: always a Table
DB_FILE = "modelruntime.db"


def sqlite_url(data_dir: str | Path) -> str:
    return f"sqlite+aiosqlite:///{Path(data_dir).resolve() / DB_FILE}"


@dataclass(slots=True)
class UsageRecord:
    ts: datetime
    key_id: str
    door: str
    provider: str
    model: str
    model_type: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: Decimal = Decimal(0)
    currency: str = "USD"
    latency_ms: float = 0.0
    status: str = "OK"
    cancelled: bool = False
    route: str = ""
    attempts: int = 1


@dataclass(slots=True)
class UsageTotal:
    day: str
    key_id: str
    provider: str
    model: str
    model_type: str
    requests: int
    errors: int
    cancelled: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: Decimal
    statuses: dict[str, int] = field(default_factory=dict)  # calls per status (OK, error or refusal reason)


def _key(row: KeyRow) -> CallerKey:
    return CallerKey(
        id=row.id, name=row.name, prefix=row.prefix, admin=row.admin, scopes=Scopes.from_json(row.scopes),
        expires_at=row.expires_at, requests_per_minute=row.requests_per_minute or 0,
        tokens_per_minute=row.tokens_per_minute or 0,
        budget_usd=Decimal(row.budget_usd) if row.budget_usd is not None else None,
        budget_period=row.budget_period or "month", metadata=dict(row.meta or {}),
        cert_identity=row.cert_identity or "", revoked=row.revoked_at is not None, created_at=row.created_at,
    )


def head_revision() -> str | None:
    """The newest migration's id, read from the scripts (None when they do not form one line)."""
    revisions: dict[str, str | None] = {}
    for script in (MIGRATIONS / "versions").glob("*.py"):
        found = dict(_REVISION_LINE.findall(script.read_text()))
        if "revision" in found:
            revisions[found["revision"].strip("\"'")] = found.get("down_revision", "None").strip("\"'")
    heads = set(revisions) - set(revisions.values())
    return heads.pop() if len(heads) == 1 else None


_REVISION_LINE = re.compile(r"^(revision|down_revision)\s*=\s*(\S+)\s*$", re.MULTILINE)


def _at_head(connection: Connection) -> bool:
    if not inspect(connection).has_table("alembic_version"):
        return False
    current = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return current == [head_revision()]


def _migrate(connection: Connection) -> None:
    # A database already at the newest revision (every start but the first) is left alone without
    # importing Alembic: it and the template engine it pulls in add ~12 MB to a server's memory.
    if _at_head(connection):
        return
    from alembic import command
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(7140171)"))  # one migrator at a time
    command.upgrade(cfg, "head")


# Ledger rows per INSERT statement: the event loop runs between statements.
_USAGE_CHUNK = 100
# The usage table's columns in table order, and a ledger record as a row of them.
_USAGE_COLUMNS = ("ts", "day", "key_id", "door", "provider", "model", "model_type", "prompt_tokens",
                  "completion_tokens", "total_tokens", "cost", "currency", "latency_ms", "status", "cancelled",
                  "route", "attempts")


def _sqlite_datetime(value: datetime) -> str:
    return value.isoformat(" ", "microseconds")[:26]  # without the offset, as SQLAlchemy stores it


def _faster(processor: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``processor``, or a cheaper function that gives the same result (SQLite's DATETIME
    processor formats field by field, ~5 µs a value on the bench machine; isoformat takes 0.3)."""
    probe = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    try:
        same = processor(probe) == _sqlite_datetime(probe)
    except (TypeError, ValueError, AttributeError):  # not a datetime processor
        same = False
    return _sqlite_datetime if same else processor


def _usage_values(r: UsageRecord) -> list[Any]:
    return [r.ts, r.ts.date().isoformat(), r.key_id, r.door, r.provider, r.model, r.model_type, r.prompt_tokens,
            r.completion_tokens, r.prompt_tokens + r.completion_tokens, r.cost, r.currency, r.latency_ms,
            r.status[:40], r.cancelled, r.route[:100], r.attempts]


class Store:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.session = async_sessionmaker(engine, expire_on_commit=False)
        self._usage_sql: tuple[str, Callable[[UsageRecord], tuple]] | None = None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def migrate(self, lock_path: Path | None = None) -> None:
        lock = open(lock_path, "w") if lock_path else None  # noqa: SIM115, ASYNC230 - held across the await
        try:
            if lock is not None:
                await asyncio.to_thread(fcntl.flock, lock, fcntl.LOCK_EX)
            async with self.engine.begin() as conn:
                await conn.run_sync(_migrate)
        finally:
            if lock is not None:
                lock.close()

    async def close(self) -> None:
        await self.engine.dispose()

    # ---- version ----------------------------------------------------------------------------

    async def version(self) -> int:
        async with self.session() as s:
            return int((await s.execute(select(MetaRow.value).where(MetaRow.name == "version"))).scalar_one())

    @staticmethod
    async def _bump(s: AsyncSession) -> None:
        await s.execute(update(MetaRow).where(MetaRow.name == "version").values(value=MetaRow.value + 1))

    # ---- keys -------------------------------------------------------------------------------

    async def create_key(self, name: str, *, admin: bool = False, scopes: Scopes | None = None,
                         expires_at: datetime | None = None, requests_per_minute: int = 0,
                         tokens_per_minute: int = 0, budget_usd: Decimal | None = None,
                         budget_period: str = "month", metadata: dict[str, str] | None = None,
                         cert_identity: str = "") -> tuple[CallerKey, str]:
        secret = new_secret()
        row = KeyRow(
            id="key_" + secrets.token_hex(8), name=name, key_hash=hash_secret(secret), prefix=display_prefix(secret),
            admin=admin, scopes=(scopes or Scopes()).to_json(), expires_at=expires_at,
            requests_per_minute=requests_per_minute, tokens_per_minute=tokens_per_minute, budget_usd=budget_usd,
            budget_period=budget_period, meta=dict(metadata or {}), cert_identity=cert_identity or None,
            created_at=datetime.now(UTC), revoked_at=None,
        )
        async with self.session.begin() as s:
            s.add(row)
            await self._bump(s)
        return _key(row), secret

    async def keys(self, include_revoked: bool = False) -> list[CallerKey]:
        query = select(KeyRow).order_by(KeyRow.created_at)
        if not include_revoked:
            query = query.where(KeyRow.revoked_at.is_(None))
        async with self.session() as s:
            return [_key(r) for r in (await s.execute(query)).scalars()]

    async def active_keys(self) -> list[tuple[str, CallerKey]]:
        """(hash, key) of every key not revoked: what the gate caches."""
        async with self.session() as s:
            rows = (await s.execute(select(KeyRow).where(KeyRow.revoked_at.is_(None)))).scalars()
            return [(r.key_hash, _key(r)) for r in rows]

    async def key_by_hash(self, key_hash: str) -> CallerKey | None:
        async with self.session() as s:
            row = (await s.execute(select(KeyRow).where(KeyRow.key_hash == key_hash))).scalar_one_or_none()
            return _key(row) if row is not None and row.revoked_at is None else None

    async def key_by_cert(self, identity: str) -> CallerKey | None:
        async with self.session() as s:
            row = (await s.execute(select(KeyRow).where(KeyRow.cert_identity == identity))).scalar_one_or_none()
            return _key(row) if row is not None and row.revoked_at is None else None

    async def get_key(self, key_id: str) -> CallerKey | None:
        async with self.session() as s:
            row = await s.get(KeyRow, key_id)
            return _key(row) if row is not None else None

    async def revoke_key(self, key_id: str) -> CallerKey | None:
        async with self.session.begin() as s:
            row = await s.get(KeyRow, key_id)
            if row is None:
                return None
            if row.revoked_at is None:
                row.revoked_at = datetime.now(UTC)
                await self._bump(s)
            return _key(row)

    async def rotate_key(self, key_id: str) -> tuple[CallerKey, str] | None:
        """A new secret for the same key (id, scopes, limits, ledger); the old secret stops working."""
        secret = new_secret()
        async with self.session.begin() as s:
            row = await s.get(KeyRow, key_id)
            if row is None or row.revoked_at is not None:
                return None
            row.key_hash, row.prefix = hash_secret(secret), display_prefix(secret)
            await self._bump(s)
            return _key(row), secret

    # ---- stored credentials -----------------------------------------------------------------

    async def put_credentials(self, name: str, provider: str, ciphertext: str, key_id: str,
                              masked: dict[str, Any]) -> CredentialRow:
        now = datetime.now(UTC)
        async with self.session.begin() as s:
            row = await s.get(CredentialRow, name)
            if row is None:
                row = CredentialRow(name=name, created_at=now)
                s.add(row)
            row.provider, row.ciphertext, row.key_id, row.masked, row.updated_at = (
                provider, ciphertext, key_id, masked, now)
            await self._bump(s)
        return row

    async def credentials(self) -> list[CredentialRow]:
        async with self.session() as s:
            return list((await s.execute(select(CredentialRow).order_by(CredentialRow.name))).scalars())

    async def delete_credentials(self, name: str) -> bool:
        async with self.session.begin() as s:
            result = await s.execute(delete(CredentialRow).where(CredentialRow.name == name))
            gone = getattr(result, "rowcount", 0)
            if gone:
                await self._bump(s)
            return bool(gone)

    async def replace_ciphertexts(self, rows: Iterable[tuple[str, str, str]]) -> int:
        """(name, ciphertext, key id) → rewritten in one transaction (re-encryption)."""
        count = 0
        async with self.session.begin() as s:
            for name, ciphertext, key_id in rows:
                await s.execute(update(CredentialRow).where(CredentialRow.name == name)
                                .values(ciphertext=ciphertext, key_id=key_id))
                count += 1
            await self._bump(s)
        return count

    # ---- routes -----------------------------------------------------------------------------

    async def put_route(self, name: str, spec: dict[str, Any]) -> None:
        async with self.session.begin() as s:
            row = await s.get(RouteRow, name)
            if row is None:
                row = RouteRow(name=name)
                s.add(row)
            row.spec, row.updated_at = spec, datetime.now(UTC)
            await self._bump(s)

    async def routes(self) -> dict[str, dict[str, Any]]:
        async with self.session() as s:
            return {r.name: r.spec for r in (await s.execute(select(RouteRow).order_by(RouteRow.name))).scalars()}

    async def delete_route(self, name: str) -> bool:
        async with self.session.begin() as s:
            gone = getattr(await s.execute(delete(RouteRow).where(RouteRow.name == name)), "rowcount", 0)
            if gone:
                await self._bump(s)
            return bool(gone)

    # ---- usage ------------------------------------------------------------------------------

    async def add_usage(self, records: list[UsageRecord]) -> None:
        """Insert ledger rows, :data:`_USAGE_CHUNK` per statement.

        Why not ``conn.execute(insert(...), dicts)``: SQLAlchemy then builds and converts a
        parameter dict per row on the event loop (~16-24 µs a row on the bench machine: a
        12 ms stall of every call per 500-row batch). The statement is compiled once per dialect
        and the rows go to the driver as tuples, converted by the columns' own bind processors
        (so they are stored exactly as SQLAlchemy stores them); between chunks the loop runs.
        """
        if not records:
            return
        sql, convert = self._usage_insert()
        async with self.engine.begin() as conn:
            for start in range(0, len(records), _USAGE_CHUNK):
                rows = [convert(r) for r in records[start:start + _USAGE_CHUNK]]
                await conn.exec_driver_sql(sql, rows)  # type: ignore[arg-type]  # a list of tuples

    def _usage_insert(self) -> tuple[str, Callable[[UsageRecord], tuple]]:
        if self._usage_sql is None:
            dialect = self.engine.dialect
            compiled = insert(USAGE_TABLE).compile(dialect=dialect, column_keys=list(_USAGE_COLUMNS))
            if tuple(compiled.positiontup or ()) != _USAGE_COLUMNS:  # a model change this code missed
                raise RuntimeError(f"the usage insert binds {compiled.positiontup}, not {_USAGE_COLUMNS}")
            processors = [(i, _faster(proc)) for i, name in enumerate(_USAGE_COLUMNS)
                          if (proc := USAGE_TABLE.c[name].type.dialect_impl(dialect).bind_processor(dialect)) is not None]

            def convert(record: UsageRecord) -> tuple:
                values = _usage_values(record)
                for i, proc in processors:
                    values[i] = proc(values[i])
                return tuple(values)

            self._usage_sql = (str(compiled), convert)
        return self._usage_sql

    async def usage(self, key_id: str = "", provider: str = "", model: str = "", start_day: str = "",
                    end_day: str = "") -> list[UsageTotal]:
        """Totals per (day, key, provider, model, type), with calls per status; days are UTC ``YYYY-MM-DD``."""
        u = UsageRow
        group = (u.day, u.key_id, u.provider, u.model, u.model_type)
        query = select(
            *group, u.status, func.count(), func.sum(func.cast(u.cancelled, type_=u.prompt_tokens.type)),
            func.sum(u.prompt_tokens), func.sum(u.completion_tokens), func.sum(u.total_tokens), func.sum(u.cost),
        ).group_by(*group, u.status).order_by(*group, u.status)
        for column, value in ((u.key_id, key_id), (u.provider, provider), (u.model, model)):
            if value:
                query = query.where(column == value)
        if start_day:
            query = query.where(u.day >= start_day)
        if end_day:
            query = query.where(u.day <= end_day)
        totals: dict[tuple[str, ...], UsageTotal] = {}
        async with self.session() as s:
            for r in await s.execute(query):
                t = totals.get(r[:5])
                if t is None:
                    t = totals[r[:5]] = UsageTotal(r[0], r[1], r[2], r[3], r[4], 0, 0, 0, 0, 0, 0, Decimal(0), {})
                count = int(r[6])
                t.statuses[r[5]] = count
                t.requests += count
                t.errors += 0 if r[5] == "OK" else count
                t.cancelled += int(r[7] or 0)
                t.prompt_tokens += int(r[8] or 0)
                t.completion_tokens += int(r[9] or 0)
                t.total_tokens += int(r[10] or 0)
                t.cost += Decimal(str(r[11] or 0))
        return list(totals.values())

    async def spend_since(self, key_id: str, start_day: str) -> Decimal:
        async with self.session() as s:
            total = (await s.execute(select(func.sum(UsageRow.cost))
                                     .where(UsageRow.key_id == key_id, UsageRow.day >= start_day))).scalar()
        return Decimal(str(total or 0))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # WAL with NORMAL sync stays consistent after a crash and skips an fsync per commit (a power
    # cut may lose the last ledger batch, never corrupt the file).
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


async def open_store(url: str = "", data_dir: str | Path = "data") -> Store:
    """Open (and create and migrate) the store: ``url``, or SQLite under ``data_dir``."""
    lock: Path | None = None
    if not url:
        path = Path(data_dir)
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        url = sqlite_url(path)
        lock = path / ".migrate.lock"
    engine = create_async_engine(url, pool_pre_ping=not url.startswith("sqlite"))
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    store = Store(engine)
    await store.migrate(lock)
    return store
