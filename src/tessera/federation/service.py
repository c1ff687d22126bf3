"""Registering trusted issuers, and the in-memory registry every token request reads.

A registration commits with its change-feed entry (``issuer.changed``) and its
audit record in one transaction; every worker and replica reloads its registry
from the feed and drops the issuer's cached keys, so a removed issuer stops being
trusted everywhere within the feed's latency.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Engine

from tessera.audit.service import Auditor, RequestContext, event
from tessera.clock import Clock
from tessera.errors import NotFound, ValidationFailed
from tessera.events.change_feed import Change, publish
from tessera.federation.issuers import TrustedIssuer, parse_issuer
from tessera.ids import IdGenerator
from tessera.storage.database import reading, writing
from tessera.storage.trusted_issuers import SqlTrustedIssuerStore, StoredIssuer

log = logging.getLogger(__name__)
ISSUER_CHANGED = "issuer.changed"
_SYSTEM = RequestContext()


class TrustedIssuerService:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        ids: IdGenerator,
        *,
        default_audiences: tuple[str, ...],
        ttl_cap: int,
        auditor: Auditor | None = None,
        on_forget: Callable[[str], None] | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._ids = ids
        self._default_audiences = default_audiences
        self._ttl_cap = ttl_cap
        self._auditor = auditor
        self._on_forget = on_forget
        self._store = SqlTrustedIssuerStore()
        self._by_issuer: dict[str, TrustedIssuer] = {}
        self._lock = threading.Lock()

    # --- the hot path ------------------------------------------------------------------------

    def find(self, iss: str) -> TrustedIssuer | None:
        """The registration whose ``issuer`` is exactly ``iss`` (no normalisation), from memory."""
        return self._by_issuer.get(iss)

    # --- loading -----------------------------------------------------------------------------

    def _parse(self, stored: StoredIssuer) -> TrustedIssuer:
        return parse_issuer(
            stored.config,
            id_=stored.id,
            created_at=stored.created_at,
            updated_at=stored.updated_at,
            default_audiences=self._default_audiences,
            ttl_cap=self._ttl_cap,
        )

    def load(self) -> None:
        with reading(self._engine) as conn:
            rows = self._store.list(conn)
        registry: dict[str, TrustedIssuer] = {}
        for stored in rows:
            try:
                registry[stored.issuer] = self._parse(stored)
            except ValidationFailed as exc:  # stored by an older version, say: not trusted, but loud
                log.error("trusted issuer %s is not valid and is ignored: %s", stored.id, exc.description)
        with self._lock:
            self._by_issuer = registry

    def on_change(self, change: Change) -> None:
        self.load()
        if self._on_forget is not None:
            self._on_forget(change.subject)

    # --- admin operations --------------------------------------------------------------------

    def add(self, spec: Mapping[str, Any], context: RequestContext = _SYSTEM) -> TrustedIssuer:
        now = self._clock.now()
        issuer = parse_issuer(
            spec,
            id_=self._ids.new("iss"),
            created_at=now,
            updated_at=now,
            default_audiences=self._default_audiences,
            ttl_cap=self._ttl_cap,
        )
        stored = StoredIssuer(issuer.id, issuer.issuer, issuer.config(), now, now)
        with writing(self._engine) as conn:
            self._store.add(conn, stored)
            publish(conn, ISSUER_CHANGED, issuer.id, {"issuer": issuer.issuer}, now)
            if self._auditor is not None:
                self._auditor.record_in(
                    conn,
                    event(
                        "issuer.added",
                        context,
                        subject=issuer.id,
                        data={
                            "issuer": issuer.issuer,
                            "jwks_url": issuer.jwks_url,
                            "static_jwks": issuer.jwks is not None,
                            "audiences": list(issuer.audiences),
                            "subject": issuer.subject.kind.value,
                            "region": issuer.region,
                            "allow_private_network": issuer.allow_private_network,
                        },
                    ),
                )
        self.load()
        return issuer

    def get(self, id_: str) -> TrustedIssuer:
        with reading(self._engine) as conn:
            stored = self._store.get(conn, id_)
        if stored is None:
            raise NotFound(f"no trusted issuer '{id_[:80]}'")
        return self._parse(stored)

    def list(self) -> list[TrustedIssuer]:
        with reading(self._engine) as conn:
            rows = self._store.list(conn)
        return [self._parse(stored) for stored in rows]

    def remove(self, id_: str, context: RequestContext = _SYSTEM) -> None:
        now = self._clock.now()
        with writing(self._engine) as conn:
            stored = self._store.get(conn, id_)
            if stored is None or not self._store.remove(conn, id_):
                raise NotFound(f"no trusted issuer '{id_[:80]}'")
            publish(conn, ISSUER_CHANGED, id_, {"issuer": stored.issuer, "removed": True}, now)
            if self._auditor is not None:
                self._auditor.record_in(
                    conn, event("issuer.removed", context, subject=id_, data={"issuer": stored.issuer})
                )
        self.load()
        if self._on_forget is not None:
            self._on_forget(id_)
