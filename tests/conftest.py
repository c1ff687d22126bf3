"""Shared fixtures: a fresh database per test on SQLite and on PostgreSQL, runtimes, servers.

PostgreSQL: each run creates its own database (``tessera_test_<random>``) on the
server named by ``TESSERA_TEST_DATABASE_URL`` (default: the local ``test``
database) and drops it at the end; tables are truncated between tests. Without a
reachable PostgreSQL the ``postgres`` cases are skipped, and the summary says so,
except under ``CI=true``, where that is an error.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from tessera.clock import ManualClock
from tessera.config import Settings
from tessera.runtime import Runtime
from tessera.storage.database import create_database_engine, migrate
from tessera.storage.tables import metadata
from tests.support import ServerProcess

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _admin_dsn(url: str) -> str:
    parsed = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a PostgreSQL database created for this test run (dropped afterwards)."""
    base = os.environ.get("TESSERA_TEST_DATABASE_URL", DEFAULT_PG)
    try:
        admin = psycopg.connect(_admin_dsn(base), autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required under CI=true but unreachable: {exc}".splitlines()[0])
        pytest.skip(f"PostgreSQL unreachable at {make_url(base).host}; PostgreSQL cases skipped")
    name = f"tessera_test_{secrets.token_hex(6)}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    engine = create_database_engine(url)
    migrate(engine)
    engine.dispose()
    yield url
    with psycopg.connect(_admin_dsn(base), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _truncate_postgres(url: str) -> None:
    engine = create_database_engine(url)
    try:
        with engine.begin() as conn:
            names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            # The migration seeds the audit chain's head row; put it back.
            conn.execute(
                text(
                    "INSERT INTO audit_head (id, seq, hash, anchor_seq, anchor_hash) "
                    "VALUES (1, 0, :genesis, 0, :genesis)"
                ),
                {"genesis": "0" * 64},
            )
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A clean, migrated database: SQLite in a temp dir, or the run's PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tessera.db'}"
    url: str = request.getfixturevalue("postgres_url")
    _truncate_postgres(url)
    return url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_database_engine(database_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        home=tmp_path / "home",
        database_url=database_url,
        issuer="http://tessera.test",
        signing_key_publish_delay=60,
    )


@pytest.fixture
def runtime(settings: Settings, clock: ManualClock) -> Iterator[Runtime]:
    """A started runtime on a manual clock, without background threads (call ``follower.poll_once``)."""
    rt = Runtime(settings, clock=clock)
    rt.start(background=False)
    yield rt
    rt.stop()


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[ServerProcess]:
    """A real Tessera server process on loopback, on a fresh database (both stores)."""

    proc = ServerProcess(home=tmp_path / "home", database_url=database_url).start()
    yield proc
    proc.stop()
