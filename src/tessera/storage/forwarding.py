"""The shared audit-forwarding cursor and the lease that picks one forwarding replica.

One ``server_state`` row holds ``{"owner", "lease_until", "position"}`` as JSON. A
replica forwards only while it holds the lease; the position (the last forwarded
``seq``) survives restarts and moves to whichever replica takes the lease over.

Contract: ``claim`` returns the position to forward from when the caller holds (or
just took) the lease, else ``None``; ``advance`` moves the position and renews the
lease, and returns ``False`` if the lease was lost meanwhile. Both run in the
caller's write transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select, update

from tessera.storage.tables import server_state

FORWARDING_STATE = "audit-forwarding"


@dataclass(frozen=True, slots=True)
class Lease:
    owner: str
    lease_until: float
    position: int


def _encode(lease: Lease) -> bytes:
    return json.dumps(
        {"owner": lease.owner, "lease_until": lease.lease_until, "position": lease.position}
    ).encode()


class SqlForwardingLease:
    def read(self, conn: Connection, *, lock: bool = False) -> Lease | None:
        query = select(server_state.c.value).where(server_state.c.name == FORWARDING_STATE)
        if lock:
            query = query.with_for_update()  # PostgreSQL; SQLite writers are serialised anyway
        row = conn.execute(query).first()
        if row is None or not row.value:
            return None
        data = json.loads(bytes(row.value))
        return Lease(str(data["owner"]), float(data["lease_until"]), int(data["position"]))

    def claim(self, conn: Connection, owner: str, now: float, ttl: float, start: int) -> int | None:
        """Take or renew the lease; ``start`` is the position when no cursor exists yet."""
        current = self.read(conn, lock=True)
        if current is None:
            conn.execute(
                insert(server_state).values(
                    name=FORWARDING_STATE, value=_encode(Lease(owner, now + ttl, start)), updated_at=now
                )
            )
            return start
        if current.owner != owner and current.lease_until > now:
            return None
        self._write(conn, Lease(owner, now + ttl, current.position), now)
        return current.position

    def advance(self, conn: Connection, owner: str, position: int, now: float, ttl: float) -> bool:
        current = self.read(conn, lock=True)
        if current is None or current.owner != owner:
            return False
        self._write(conn, Lease(owner, now + ttl, max(position, current.position)), now)
        return True

    def release(self, conn: Connection, owner: str, now: float) -> None:
        current = self.read(conn, lock=True)
        if current is not None and current.owner == owner:
            self._write(conn, Lease(owner, now, current.position), now)

    @staticmethod
    def _write(conn: Connection, lease: Lease, now: float) -> None:
        conn.execute(
            update(server_state)
            .where(server_state.c.name == FORWARDING_STATE)
            .values(value=_encode(lease), updated_at=now)
        )
