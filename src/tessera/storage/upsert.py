"""An insert-or-update that both SQLite and PostgreSQL run atomically (``ON CONFLICT``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite


def upsert(conn: Connection, table: Table, keys: tuple[str, ...], row: dict[str, Any]) -> None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table).values(**row)
    changed = {k: statement.excluded[k] for k in row if k not in keys}
    conn.execute(statement.on_conflict_do_update(index_elements=list(keys), set_=changed))
