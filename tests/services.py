"""The real PostgreSQL and Redis on 127.0.0.1 for tests marked ``services``: reachability, and a
fresh PostgreSQL database per test module or test (dropped afterwards)."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator

import pytest

from tests.auth_env import reachable


@contextlib.asynccontextmanager
async def fresh_database(prefix: str) -> AsyncIterator[str]:
    """A new, empty database's SQLAlchemy URL, dropped afterwards; skips the test when PostgreSQL or Redis
    is away (a failure under CI=true for tests marked ``services``)."""
    if not (reachable(5432) and reachable(6379)):
        pytest.skip("PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) are not both reachable")
    import asyncpg

    name = prefix + secrets.token_hex(4)
    admin = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", database="test")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
        finally:  # also after a failed test: no database left behind
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


# The store's two backends, for tests parametrized over them (``store_url``).
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.services)]


@contextlib.asynccontextmanager
async def store_url(backend: str, prefix: str) -> AsyncIterator[str]:
    """The storage URL for ``backend``: "" (SQLite under the test's data dir) or a fresh database."""
    if backend == "sqlite":
        yield ""
        return
    async with fresh_database(prefix) as url:
        yield url
