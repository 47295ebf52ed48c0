"""The Alembic migrations produce exactly the models' schema, on SQLite and on real PostgreSQL.

Alembic's own comparison (what ``alembic revision --autogenerate`` would write) between the models'
metadata and a database migrated from empty must find nothing: no missing or extra table, column,
index or unique constraint, no type or nullability difference. Downgrading to base leaves no table.
The PostgreSQL case needs 127.0.0.1:5432 and is a failure under CI=true when skipped.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from server.auth.store import open_store
from server.auth.store.db import MIGRATIONS, head_revision
from server.auth.store.models import Base
from tests.services import BACKENDS, store_url


def _differences(connection: Connection) -> list:
    context = MigrationContext.configure(connection, opts={"compare_type": True, "compare_server_default": False})
    return [d for d in compare_metadata(context, Base.metadata)]


def _downgrade_to_base(connection: Connection) -> list[str]:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    command.downgrade(cfg, "base")
    return [t for t in inspect(connection).get_table_names() if t != "alembic_version"]


async def _check(url: str, data_dir) -> None:
    store = await open_store(url, data_dir)
    try:
        async with store.engine.connect() as conn:
            assert await conn.run_sync(_differences) == []
            assert await store.version() == 0  # the meta row the migration seeds
        async with store.engine.begin() as conn:
            assert await conn.run_sync(_downgrade_to_base) == []
    finally:
        await store.close()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_migrations_match_the_models(tmp_path, backend):
    async with store_url(backend, "mr_migrate_") as url:
        await _check(url, tmp_path)


def test_head_revision_is_alembics():
    from alembic.script import ScriptDirectory

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    assert head_revision() == ScriptDirectory.from_config(cfg).get_current_head()


def test_reopening_a_migrated_store_does_not_import_alembic(tmp_path):
    # Every start but the first finds the database at head and leaves Alembic unimported (~12 MB).
    code = (
        "import asyncio, sys; sys.path.insert(0, sys.argv[1])\n"
        "from server.auth.store import open_store\n"
        "async def main():\n"
        "    store = await open_store('', sys.argv[2]); await store.close()\n"
        "    print('alembic' in sys.modules)\n"
        "asyncio.run(main())\n"
    )
    def run() -> str:
        return subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent.parent), str(tmp_path)],
                              capture_output=True, text=True, check=True).stdout.strip()

    assert run() == "True"  # a new database: migrated by Alembic
    assert run() == "False"
