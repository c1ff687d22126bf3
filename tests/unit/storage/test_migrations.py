"""The alembic migrations create exactly the tables declared in ``storage/tables.py``, on both stores."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

from tessera.storage.database import migrate, reading
from tessera.storage.tables import metadata


def test_the_schema_matches_the_table_definitions(engine: Engine) -> None:
    with reading(engine) as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "render_as_batch": True})
        diffs = compare_metadata(context, metadata)
    assert diffs == []


def test_exactly_the_declared_tables_exist(engine: Engine) -> None:
    tables = set(inspect(engine).get_table_names())
    assert tables == set(metadata.tables) | {"alembic_version"}


def test_migrating_twice_is_a_no_op(engine: Engine) -> None:
    migrate(engine)
    test_the_schema_matches_the_table_definitions(engine)


def test_sqlite_runs_in_wal_mode(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        return
    with reading(engine) as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
