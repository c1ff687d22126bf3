"""Single-use values (client assertion and DPoP ``jti``s), claimed with an atomic insert.

Contract: ``claim`` inserts the key in the caller's transaction and raises
``AlreadyUsed`` if any process, on any replica, has committed it before; the
primary key makes the database the arbiter, so two replicas never both win.
Keys are SHA-256 hex of ``purpose|issuer|jti`` so their length is bounded.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import Connection, delete, insert
from sqlalchemy.exc import IntegrityError

from tessera.storage.tables import used_jtis


class AlreadyUsed(Exception):
    pass


def single_use_key(purpose: str, issuer: str, jti: str) -> str:
    return hashlib.sha256(f"{purpose}|{issuer}|{jti}".encode()).hexdigest()


class SqlSingleUseStore:
    def claim(self, conn: Connection, key: str, expires_at: float) -> None:
        try:
            with conn.begin_nested():
                conn.execute(insert(used_jtis).values(key=key, expires_at=expires_at))
        except IntegrityError as exc:
            raise AlreadyUsed(key) from exc

    def prune(self, conn: Connection, now: float) -> int:
        return int(conn.execute(delete(used_jtis).where(used_jtis.c.expires_at < now)).rowcount)
