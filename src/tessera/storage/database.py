"""Engine creation and schema migration.

SQLite runs in WAL mode with a busy timeout so several processes can share one
file; within a process, writers queue on a lock instead (SQLite's busy handler
sleeps and polls, which costs throughput and tail latency under concurrent writes).
PostgreSQL is reached through psycopg 3. Migrations are applied on start,
under an advisory lock on PostgreSQL so replicas starting together do not race.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_MIGRATION_LOCK_ID = 0x7E55E4A  # arbitrary constant naming Tessera's advisory lock
_SQLITE_BUSY_SECONDS = 30
#: One lock per SQLite engine, held from ``BEGIN IMMEDIATE`` to commit: SQLite admits
#: one writer at a time anyway, and a lock hands over at once where the busy handler sleeps.
_SQLITE_WRITE_LOCKS: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def create_database_engine(url: str, *, sqlite_synchronous: str = "FULL", pool_size: int = 8) -> Engine:
    """Create an engine for ``url``; for SQLite, create the parent directory first."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=pool_size,
            max_overflow=pool_size,
        )
        _configure_sqlite(engine, sqlite_synchronous)
        _SQLITE_WRITE_LOCKS[engine] = threading.RLock()
        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
    raise ValueError(f"unsupported database url scheme '{parsed.drivername}'")


def _use_wal(cursor: Any) -> None:
    """Switch the file to WAL once. Processes opening a new file together can see SQLite
    refuse the switch with "database is locked" at once (its busy handler is not always
    consulted for it), so a refusal is retried for as long as the busy timeout."""
    if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
        return
    deadline = time.monotonic() + _SQLITE_BUSY_SECONDS
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _configure_sqlite(engine: Engine, synchronous: str) -> None:
    if synchronous.upper() not in {"FULL", "NORMAL", "EXTRA"}:
        raise ValueError(f"unsupported sqlite synchronous mode '{synchronous}'")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own transaction handling is disabled so that BEGIN IMMEDIATE
        # (below) takes the write lock up front and writers queue instead of failing.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_SECONDS * 1000}")
        _use_wal(cursor)
        cursor.execute(f"PRAGMA synchronous={synchronous.upper()}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers take the lock at BEGIN so they queue on busy_timeout; readers
        # stay deferred so WAL lets them run beside a writer.
        if conn.get_execution_options().get("tessera_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


@contextmanager
def _sqlite_write_lock(engine: Engine) -> Iterator[None]:
    lock = _SQLITE_WRITE_LOCKS.get(engine)
    if lock is None:
        yield
        return
    if not lock.acquire(timeout=_SQLITE_BUSY_SECONDS):
        raise sa_exc.TimeoutError(f"no sqlite write lock after {_SQLITE_BUSY_SECONDS} s")
    try:
        yield
    finally:
        lock.release()


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A read-write transaction: ``BEGIN IMMEDIATE`` on SQLite, a plain one elsewhere."""
    with _sqlite_write_lock(engine), engine.connect() as connection:
        connection.execution_options(tessera_write=True)
        with connection.begin():
            yield connection


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction (deferred on SQLite, so it never blocks a writer)."""
    with engine.connect() as connection, connection.begin():
        yield connection


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (alembic ``upgrade heads``)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with writing(engine) as connection:
        if is_postgres(engine):
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
        config.attributes["connection"] = connection
        command.upgrade(config, "heads")


def open_database(url: str, *, sqlite_synchronous: str = "FULL") -> Engine:
    engine = create_database_engine(url, sqlite_synchronous=sqlite_synchronous)
    migrate(engine)
    return engine
