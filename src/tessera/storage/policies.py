"""SQL store of policy bundle versions, the active version, and registered resources.

Contract: a bundle is stored once under its content hash and never changed;
``activate`` sets the one active version (a ``server_state`` row) in the caller's
transaction, which also publishes the change so every worker switches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from tessera.policy.bundle import Bundle
from tessera.storage.tables import policy_bundles, resources, server_state

ACTIVE_POLICY = "policy.active"


@dataclass(frozen=True, slots=True)
class StoredVersion:
    version: str
    created_at: float
    activated_at: float | None
    files: dict[str, str]


@dataclass(frozen=True, slots=True)
class StoredResource:
    type: str
    id: str
    attributes: dict[str, Any]
    parents: list[dict[str, str]]
    created_at: float
    updated_at: float

    def entity(self) -> dict[str, Any]:
        return {
            "uid": {"type": self.type, "id": self.id},
            "attrs": dict(self.attributes),
            "parents": list(self.parents),
        }


class SqlPolicyStore:
    def save(self, conn: Connection, bundle: Bundle, now: float) -> bool:
        """Store a version if new; returns False if that content was stored before."""
        try:
            with conn.begin_nested():
                conn.execute(
                    insert(policy_bundles).values(version=bundle.version, files=bundle.files, created_at=now)
                )
        except IntegrityError:
            return False
        return True

    def get(self, conn: Connection, version: str) -> StoredVersion | None:
        row = conn.execute(select(policy_bundles).where(policy_bundles.c.version == version)).first()
        if row is None:
            return None
        return StoredVersion(row.version, row.created_at, row.activated_at, dict(row.files))

    def versions(self, conn: Connection) -> list[StoredVersion]:
        rows = conn.execute(select(policy_bundles).order_by(policy_bundles.c.created_at.desc())).all()
        return [StoredVersion(r.version, r.created_at, r.activated_at, dict(r.files)) for r in rows]

    def active(self, conn: Connection) -> str | None:
        row = conn.execute(select(server_state.c.value).where(server_state.c.name == ACTIVE_POLICY)).first()
        return bytes(row.value).decode() if row and row.value else None

    def activate(self, conn: Connection, version: str, now: float) -> None:
        value = version.encode()
        result = conn.execute(
            update(server_state)
            .where(server_state.c.name == ACTIVE_POLICY)
            .values(value=value, updated_at=now)
        )
        if not result.rowcount:
            conn.execute(insert(server_state).values(name=ACTIVE_POLICY, value=value, updated_at=now))
        conn.execute(
            update(policy_bundles).where(policy_bundles.c.version == version).values(activated_at=now)
        )


class SqlResourceStore:
    def put(self, conn: Connection, resource: StoredResource) -> bool:
        """Insert or replace; returns True if it was new."""
        existing = self.get(conn, resource.type, resource.id)
        if existing is None:
            conn.execute(
                insert(resources).values(
                    type=resource.type,
                    id=resource.id,
                    attributes=resource.attributes,
                    parents=resource.parents,
                    created_at=resource.created_at,
                    updated_at=resource.updated_at,
                )
            )
            return True
        conn.execute(
            update(resources)
            .where(resources.c.type == resource.type, resources.c.id == resource.id)
            .values(attributes=resource.attributes, parents=resource.parents, updated_at=resource.updated_at)
        )
        return False

    def get(self, conn: Connection, type_: str, id_: str) -> StoredResource | None:
        row = conn.execute(select(resources).where(resources.c.type == type_, resources.c.id == id_)).first()
        return _resource(row) if row else None

    def list(self, conn: Connection, type_: str | None = None) -> list[StoredResource]:
        query = select(resources).order_by(resources.c.type, resources.c.id)
        if type_ is not None:
            query = query.where(resources.c.type == type_)
        return [_resource(r) for r in conn.execute(query)]

    def remove(self, conn: Connection, type_: str, id_: str) -> bool:
        result = conn.execute(delete(resources).where(resources.c.type == type_, resources.c.id == id_))
        return bool(result.rowcount)


def _resource(row: Any) -> StoredResource:
    return StoredResource(
        row.type, row.id, dict(row.attributes), list(row.parents), row.created_at, row.updated_at
    )
