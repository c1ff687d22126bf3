"""SQL store for the server's signing keys (sealed private halves) and a row lock.

Contract: keys are never deleted; ``deactivated_at`` marks when a key stops
signing and ``retired_at`` an emergency retirement. ``lock`` serialises
rotations across replicas by updating one ``server_state`` row first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from tessera.storage.tables import server_state, signing_keys


@dataclass(frozen=True, slots=True)
class StoredSigningKey:
    kid: str
    alg: str
    public_jwk: dict[str, Any]
    private_jwk_sealed: bytes
    created_at: float
    activates_at: float
    deactivated_at: float | None
    retired_at: float | None


class SqlSigningKeyStore:
    def all(self, conn: Connection) -> list[StoredSigningKey]:
        rows = conn.execute(select(signing_keys).order_by(signing_keys.c.activates_at)).all()
        return [
            StoredSigningKey(
                kid=r.kid,
                alg=r.alg,
                public_jwk=dict(r.public_jwk),
                private_jwk_sealed=bytes(r.private_jwk_sealed),
                created_at=r.created_at,
                activates_at=r.activates_at,
                deactivated_at=r.deactivated_at,
                retired_at=r.retired_at,
            )
            for r in rows
        ]

    def add(self, conn: Connection, key: StoredSigningKey) -> None:
        conn.execute(
            insert(signing_keys).values(
                kid=key.kid,
                alg=key.alg,
                public_jwk=key.public_jwk,
                private_jwk_sealed=key.private_jwk_sealed,
                created_at=key.created_at,
                activates_at=key.activates_at,
                deactivated_at=key.deactivated_at,
                retired_at=key.retired_at,
            )
        )

    def deactivate(self, conn: Connection, kid: str, when: float) -> None:
        conn.execute(
            update(signing_keys)
            .where(
                signing_keys.c.kid == kid,
                or_(signing_keys.c.deactivated_at.is_(None), signing_keys.c.deactivated_at > when),
            )
            .values(deactivated_at=when)
        )

    def retire(self, conn: Connection, kid: str, when: float) -> bool:
        result = conn.execute(
            update(signing_keys)
            .where(signing_keys.c.kid == kid, signing_keys.c.retired_at.is_(None))
            .values(retired_at=when, deactivated_at=when)
        )
        return bool(result.rowcount)

    def lock(self, conn: Connection, name: str, now: float) -> None:
        """Take a row lock named ``name`` for the rest of the caller's transaction."""
        result = conn.execute(update(server_state).where(server_state.c.name == name).values(updated_at=now))
        if result.rowcount:
            return
        try:
            with conn.begin_nested():
                conn.execute(insert(server_state).values(name=name, value=None, updated_at=now))
        except IntegrityError:
            conn.execute(update(server_state).where(server_state.c.name == name).values(updated_at=now))
