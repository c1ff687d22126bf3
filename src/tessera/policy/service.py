"""Applying, rolling back and listing policy versions; registering resources.

Apply and rollback commit the new active version, its audit record and a
change-feed entry in one transaction; every worker then compiles (or reuses
the compiled copy of) that version and swaps it in atomically.
"""

from __future__ import annotations

import difflib
import json
import re
import threading
from dataclasses import dataclass
from importlib import resources as package_files
from typing import Any

import cedarpy
from sqlalchemy import Engine

from tessera.audit.service import Auditor, RequestContext, event
from tessera.clock import Clock
from tessera.errors import NotFound, ValidationFailed
from tessera.events.change_feed import Change, publish
from tessera.policy.bundle import Bundle, bundle_from_files
from tessera.policy.compiled import CompiledBundle, compile_bundle
from tessera.policy.entities import Uid
from tessera.policy.pdp import PolicyDecisionPoint
from tessera.storage.database import reading, writing
from tessera.storage.policies import SqlPolicyStore, SqlResourceStore, StoredResource, StoredVersion

POLICY_CHANGED = "policy"
RESOURCE_CHANGED = "resource"
_SYSTEM = RequestContext()
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(::[A-Za-z_][A-Za-z0-9_]*)*$")
_COMPILED_CACHE = 8


def starter_bundle() -> Bundle:
    """The starter bundle shipped with Tessera (``tessera policy init`` writes it out)."""
    root = package_files.files("tessera.policy") / "starter"
    files: dict[str, str] = {}
    for entry in root.iterdir():
        if entry.is_file() and entry.name.endswith((".cedar", ".cedarschema", ".json")):
            files[entry.name] = entry.read_text(encoding="utf-8")
    tests = root / "tests"
    for entry in tests.iterdir():
        if entry.is_file() and entry.name.endswith((".yaml", ".yml")):
            files[f"tests/{entry.name}"] = entry.read_text(encoding="utf-8")
    return bundle_from_files(files)


@dataclass(frozen=True, slots=True)
class VersionInfo:
    version: str
    created_at: float
    activated_at: float | None
    active: bool
    files: list[str]


class _PolicyStateService:
    """What the policy and resource services share: storage, time, the PDP and the audit log."""

    def __init__(
        self, engine: Engine, clock: Clock, pdp: PolicyDecisionPoint, auditor: Auditor | None
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._pdp = pdp
        self._auditor = auditor


class PolicyService(_PolicyStateService):
    def __init__(
        self, engine: Engine, clock: Clock, pdp: PolicyDecisionPoint, auditor: Auditor | None
    ) -> None:
        super().__init__(engine, clock, pdp, auditor)
        self._store = SqlPolicyStore()
        self._compiled: dict[str, CompiledBundle] = {}
        self._lock = threading.Lock()

    def _compile(self, bundle: Bundle) -> CompiledBundle:
        with self._lock:
            cached = self._compiled.get(bundle.version)
        if cached is not None:
            return cached
        compiled = compile_bundle(bundle)
        with self._lock:
            if len(self._compiled) >= _COMPILED_CACHE:
                self._compiled.pop(next(iter(self._compiled)))
            self._compiled[bundle.version] = compiled
        return compiled

    def ensure_active(self) -> str:
        """Load the active version into the PDP; on a fresh database, apply the starter bundle."""
        with reading(self._engine) as conn:
            active = self._store.active(conn)
            stored = self._store.get(conn, active) if active else None
        if stored is None:
            return self.apply(starter_bundle(), _SYSTEM, note="starter bundle")
        self._pdp.activate(self._compile(Bundle(stored.files)))
        return stored.version

    def apply(self, bundle: Bundle, context: RequestContext, note: str | None = None) -> str:
        """Validate, store under the content hash, activate atomically and record it."""
        compiled = self._compile(bundle)
        now = self._clock.now()
        with writing(self._engine) as conn:
            previous = self._store.active(conn)
            self._store.save(conn, bundle, now)
            self._store.activate(conn, bundle.version, now)
            publish(conn, POLICY_CHANGED, bundle.version, {"previous": previous}, now)
            if self._auditor is not None:
                self._auditor.record_in(
                    conn,
                    event(
                        "policy.applied",
                        context,
                        reason=note,
                        data={
                            "version": bundle.version,
                            "previous": previous,
                            "policies": len(compiled.policies),
                        },
                    ),
                )
        self._pdp.activate(compiled)
        return bundle.version

    def rollback(self, version: str, context: RequestContext) -> str:
        with reading(self._engine) as conn:
            stored = self._store.get(conn, version) or self._by_prefix(conn, version)
        if stored is None:
            raise NotFound(f"no policy version '{version[:64]}'")
        compiled = self._compile(Bundle(stored.files))
        now = self._clock.now()
        with writing(self._engine) as conn:
            previous = self._store.active(conn)
            self._store.activate(conn, stored.version, now)
            publish(conn, POLICY_CHANGED, stored.version, {"previous": previous, "rollback": True}, now)
            if self._auditor is not None:
                self._auditor.record_in(
                    conn,
                    event(
                        "policy.rolled_back", context, data={"version": stored.version, "previous": previous}
                    ),
                )
        self._pdp.activate(compiled)
        return stored.version

    def _by_prefix(self, conn: Any, prefix: str) -> StoredVersion | None:
        if len(prefix) < 4:
            return None
        matches = [v for v in self._store.versions(conn) if v.version.startswith(prefix)]
        if len(matches) > 1:
            raise ValidationFailed(f"version prefix '{prefix}' is ambiguous")
        return matches[0] if matches else None

    def on_change(self, change: Change) -> None:
        """Change-feed handler: switch to the version another worker activated."""
        with reading(self._engine) as conn:
            active = self._store.active(conn)
            stored = self._store.get(conn, active) if active else None
        if stored is not None and stored.version != self._pdp.version:
            self._pdp.activate(self._compile(Bundle(stored.files)))

    def versions(self) -> list[VersionInfo]:
        with reading(self._engine) as conn:
            active = self._store.active(conn)
            stored = self._store.versions(conn)
        return [
            VersionInfo(v.version, v.created_at, v.activated_at, v.version == active, sorted(v.files))
            for v in stored
        ]

    def bundle(self, version: str) -> Bundle:
        with reading(self._engine) as conn:
            stored = self._store.get(conn, version) or self._by_prefix(conn, version)
        if stored is None:
            raise NotFound(f"no policy version '{version[:64]}'")
        return Bundle(stored.files)

    def diff(self, a: str, b: str) -> str:
        """A unified diff of two versions' files."""
        left, right = self.bundle(a), self.bundle(b)
        chunks: list[str] = []
        for name in sorted(set(left.files) | set(right.files)):
            before = left.files.get(name, "").splitlines(keepends=True)
            after = right.files.get(name, "").splitlines(keepends=True)
            chunks.extend(
                difflib.unified_diff(before, after, f"{left.version}/{name}", f"{right.version}/{name}")
            )
        return "".join(chunks)


def validate_uid(type_: str, id_: str) -> Uid:
    if not _NAME.match(type_) or len(type_) > 128:
        raise ValidationFailed(f"invalid entity type '{type_[:60]}'")
    if not id_ or len(id_) > 256 or any(ord(c) < 32 for c in id_):
        raise ValidationFailed("entity id must be 1-256 printable characters")
    return Uid(type_, id_)


class ResourceService(_PolicyStateService):
    def __init__(
        self, engine: Engine, clock: Clock, pdp: PolicyDecisionPoint, auditor: Auditor | None
    ) -> None:
        super().__init__(engine, clock, pdp, auditor)
        self._store = SqlResourceStore()

    def load(self) -> None:
        with reading(self._engine) as conn:
            self._pdp.entities.set_resources([r.entity() for r in self._store.list(conn)])

    def put(
        self,
        type_: str,
        id_: str,
        attributes: dict[str, Any],
        parents: list[tuple[str, str]],
        context: RequestContext = _SYSTEM,
    ) -> StoredResource:
        validate_uid(type_, id_)
        parent_uids = [validate_uid(t, i).as_json() for t, i in parents]
        now = self._clock.now()
        resource = StoredResource(type_, id_, dict(attributes), parent_uids, now, now)
        try:
            # Refuse what Cedar cannot read (floats, nulls): stored, it would deny every decision near it.
            cedarpy.Entities.from_json_str(json.dumps([resource.entity()]))
        except ValueError as exc:
            raise ValidationFailed(
                f'attributes of {type_}::"{id_[:80]}" are not cedar values (no floats or nulls)'
            ) from exc
        with writing(self._engine) as conn:
            created = self._store.put(conn, resource)
            if not created:
                resource = self._store.get(conn, type_, id_) or resource  # keeps its created_at
            publish(conn, RESOURCE_CHANGED, f"{type_}::{id_}", {"type": type_, "id": id_}, now)
            if self._auditor is not None:
                self._auditor.record_in(
                    conn,
                    event(
                        "resource.added" if created else "resource.updated",
                        context,
                        subject=f"{type_}::{id_}",
                        data={"attributes": sorted(attributes), "parents": len(parents)},
                    ),
                )
        self._pdp.entities.put_resource(resource.entity())
        return resource

    def remove(self, type_: str, id_: str, context: RequestContext = _SYSTEM) -> None:
        now = self._clock.now()
        with writing(self._engine) as conn:
            if not self._store.remove(conn, type_, id_):
                raise NotFound(f'no resource {type_}::"{id_[:80]}"')
            publish(
                conn, RESOURCE_CHANGED, f"{type_}::{id_}", {"type": type_, "id": id_, "removed": True}, now
            )
            if self._auditor is not None:
                self._auditor.record_in(conn, event("resource.removed", context, subject=f"{type_}::{id_}"))
        self._pdp.entities.remove_resource(Uid(type_, id_))

    def list(self, type_: str | None = None) -> list[StoredResource]:
        with reading(self._engine) as conn:
            return self._store.list(conn, type_)

    def on_change(self, change: Change) -> None:
        type_, id_ = str(change.payload.get("type")), str(change.payload.get("id"))
        with reading(self._engine) as conn:
            stored = self._store.get(conn, type_, id_)
        if stored is None:
            self._pdp.entities.remove_resource(Uid(type_, id_))
        else:
            self._pdp.entities.put_resource(stored.entity())
