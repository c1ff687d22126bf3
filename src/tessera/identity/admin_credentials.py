"""The bootstrap admin credential.

On first start (no credential in the database) the server creates a random admin
token, stores only its SHA-256, writes the token to ``$TESSERA_HOME/admin-token``
with mode 0600 and prints it once. If ``TESSERA_ADMIN_TOKEN`` is set on the
server, or the file already exists (a wiped database), that token is adopted.
Replicas see the same credential through the database.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from sqlalchemy import Engine, insert, select

from tessera.clock import Clock
from tessera.events.change_feed import publish
from tessera.storage.database import reading, writing
from tessera.storage.signing_keys import SqlSigningKeyStore
from tessera.storage.tables import admin_credentials
from tessera.tokens.sealing import token_hash

ADMIN_CHANGED = "admin"
ADMIN_TOKEN_PREFIX = "tsr_admin_"
MIN_TOKEN_LENGTH = 24


def write_secret_file(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    os.chmod(tmp, 0o600)
    tmp.replace(path)


class AdminCredentials:
    def __init__(self, engine: Engine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock
        self._hashes: frozenset[str] = frozenset()

    def load(self) -> None:
        with reading(self._engine) as conn:
            rows = conn.execute(
                select(admin_credentials.c.token_hash).where(admin_credentials.c.revoked_at.is_(None))
            ).all()
        self._hashes = frozenset(row.token_hash for row in rows)

    def bootstrap(self, path: Path, preset: str | None) -> str | None:
        """Make sure one credential exists; return the token if this call created it."""
        adopted = preset or (path.read_text().strip() if path.exists() else None)
        if adopted is not None and len(adopted) < MIN_TOKEN_LENGTH:
            raise ValueError(f"admin token must be at least {MIN_TOKEN_LENGTH} characters")
        now = self._clock.now()
        created: str | None = None
        with writing(self._engine) as conn:
            SqlSigningKeyStore().lock(conn, "admin-bootstrap", now)
            existing = conn.execute(
                select(admin_credentials.c.token_hash).where(admin_credentials.c.revoked_at.is_(None))
            ).all()
            hashes = {row.token_hash for row in existing}
            token = adopted
            if token is None and not hashes:
                token = ADMIN_TOKEN_PREFIX + secrets.token_urlsafe(32)
                created = token
            if token is not None and token_hash(token) not in hashes and (not hashes or adopted is not None):
                conn.execute(
                    insert(admin_credentials).values(
                        id=f"adm_{secrets.token_hex(8)}", token_hash=token_hash(token), created_at=now
                    )
                )
                publish(conn, ADMIN_CHANGED, "admin", {"reason": "bootstrap"}, now)
        if created is not None:
            write_secret_file(path, created)
        self.load()
        return created

    def verify(self, token: str | None) -> bool:
        if not token or len(token) > 512:
            return False
        candidate = token_hash(token)
        return any(hmac.compare_digest(candidate, known) for known in self._hashes)
