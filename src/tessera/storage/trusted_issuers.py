"""SQL store of trusted issuers (``tessera.federation``).

Contract: ``add`` inserts a registration in the caller's transaction and raises
``Conflict`` if its id or its ``iss`` is taken; ``list`` returns every row,
oldest first; ``remove`` deletes one and says whether it existed. The config is
stored as validated JSON and validated again when read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.exc import IntegrityError

from tessera.errors import Conflict
from tessera.storage.tables import trusted_issuers


@dataclass(frozen=True, slots=True)
class StoredIssuer:
    id: str
    issuer: str
    config: dict[str, Any]
    created_at: float
    updated_at: float


class SqlTrustedIssuerStore:
    def add(self, conn: Connection, stored: StoredIssuer) -> None:
        try:
            with conn.begin_nested():
                conn.execute(
                    insert(trusted_issuers).values(
                        id=stored.id,
                        issuer=stored.issuer,
                        config=stored.config,
                        created_at=stored.created_at,
                        updated_at=stored.updated_at,
                    )
                )
        except IntegrityError as exc:
            raise Conflict(f"issuer '{stored.issuer[:120]}' is already trusted") from exc

    def get(self, conn: Connection, id_: str) -> StoredIssuer | None:
        row = conn.execute(select(trusted_issuers).where(trusted_issuers.c.id == id_)).first()
        return _stored(row) if row is not None else None

    def list(self, conn: Connection) -> list[StoredIssuer]:
        rows = conn.execute(
            select(trusted_issuers).order_by(trusted_issuers.c.created_at, trusted_issuers.c.id)
        )
        return [_stored(row) for row in rows]

    def remove(self, conn: Connection, id_: str) -> bool:
        return bool(conn.execute(delete(trusted_issuers).where(trusted_issuers.c.id == id_)).rowcount)


def _stored(row: Any) -> StoredIssuer:
    return StoredIssuer(row.id, row.issuer, dict(row.config), row.created_at, row.updated_at)
