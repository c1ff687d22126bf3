"""Registered receivers of security event tokens (RFC 8935 push endpoints).

Receivers come from ``TESSERA_SET_RECEIVERS`` (config) and from the admin API
(``set_receivers`` table, cached in memory, kept current by the feed).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import Engine, delete, select

from tessera.audit.service import Auditor, RequestContext, event
from tessera.clock import Clock
from tessera.errors import NotFound, ValidationFailed
from tessera.events.change_feed import Change, publish
from tessera.ids import IdGenerator
from tessera.storage.database import reading, writing
from tessera.storage.tables import set_receivers

RECEIVERS_CHANGED = "receivers"
MAX_URL = 2000


@dataclass(frozen=True, slots=True)
class Receiver:
    id: str
    url: str
    description: str
    created_at: float


def validate_url(url: str, what: str = "receiver url") -> str:
    parts = urlsplit(url)
    if len(url) > MAX_URL or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationFailed(f"{what} must be an http(s) url, got '{url[:80]}'")
    if parts.username or parts.password:
        raise ValidationFailed(f"{what} must not carry credentials, got '{parts.hostname}'")
    if parts.fragment:
        raise ValidationFailed(f"{what} must not have a fragment, got '{url[:80]}'")
    return url


class Receivers:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        ids: IdGenerator,
        auditor: Auditor | None,
        *,
        configured: list[str],
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._ids = ids
        self._auditor = auditor
        self._configured = [validate_url(u, "TESSERA_SET_RECEIVERS entry") for u in configured]
        self._registered: list[Receiver] = []
        self._lock = threading.Lock()

    def load(self) -> None:
        with reading(self._engine) as conn:
            rows = conn.execute(select(set_receivers).order_by(set_receivers.c.created_at)).all()
        with self._lock:
            self._registered = [Receiver(r.id, r.url, r.description, r.created_at) for r in rows]

    def on_change(self, _change: Change) -> None:
        self.load()

    def urls(self) -> list[str]:
        return list(dict.fromkeys([*self._configured, *(r.url for r in self._registered)]))

    def registered(self) -> list[Receiver]:
        return list(self._registered)

    @property
    def configured(self) -> list[str]:
        return list(self._configured)

    def add(self, url: str, description: str, context: RequestContext) -> Receiver:
        validate_url(url)
        if len(description) > 500:
            raise ValidationFailed("description must be at most 500 characters")
        receiver = Receiver(self._ids.new("rcv"), url, description, self._clock.now())
        with writing(self._engine) as conn:
            conn.execute(
                set_receivers.insert().values(
                    id=receiver.id, url=url, description=description, created_at=receiver.created_at
                )
            )
            publish(conn, RECEIVERS_CHANGED, receiver.id, {"added": receiver.id}, receiver.created_at)
            if self._auditor is not None:
                self._auditor.record_in(
                    conn, event("receiver.added", context, data={"id": receiver.id, "url": url[:300]})
                )
        self.load()
        return receiver

    def remove(self, receiver_id: str, context: RequestContext) -> None:
        now = self._clock.now()
        with writing(self._engine) as conn:
            gone = conn.execute(delete(set_receivers).where(set_receivers.c.id == receiver_id)).rowcount
            if not gone:
                raise NotFound(f"receiver '{receiver_id[:64]}' not found")
            publish(conn, RECEIVERS_CHANGED, receiver_id, {"removed": receiver_id}, now)
            if self._auditor is not None:
                self._auditor.record_in(conn, event("receiver.removed", context, data={"id": receiver_id}))
        self.load()
