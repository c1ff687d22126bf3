"""The revocation feed for locally verifying PEPs: what makes a signature-valid token dead.

Every worker keeps the recent entries of three change-feed kinds in memory —
revoked tokens (``tokens.revoked``), agent lifecycle (``agent``) and kill
rules (``kill``) — fed by its change follower, so serving the feed touches no
database. A client (``tessera.sdk.revocations.RevocationFollower``) first asks
for a snapshot (``after=0``), then long-polls with the cursor it was given.
Cursors are the change feed's sequence numbers, shared by all replicas. A
cursor older than what a worker holds gets a fresh snapshot (``reset``).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from tessera.events.change_feed import Change

FEED_KINDS = ("tokens.revoked", "agent", "kill")
CAPACITY = 10_000


class RevocationFeed:
    def __init__(
        self,
        *,
        snapshot: Callable[[], dict[str, Any]],
        owner_agents: Callable[[str], list[str]],
        start_at: int = 0,
        capacity: int = CAPACITY,
    ) -> None:
        self._snapshot = snapshot
        self._owner_agents = owner_agents
        self._entries: deque[dict[str, Any]] = deque(maxlen=capacity)
        self._cursor = start_at
        self._oldest = start_at
        self._lock = threading.Lock()

    def reset(self, position: int) -> None:
        """Start after ``position`` (the change feed's head when the follower starts)."""
        with self._lock:
            self._entries.clear()
            self._cursor = self._oldest = position

    @property
    def cursor(self) -> int:
        return self._cursor

    def on_change(self, change: Change) -> None:
        payload = dict(change.payload)
        if change.kind == "agent":
            payload = {"state": payload.get("state"), "expires_at": payload.get("expires_at")}
        elif change.kind == "kill" and payload.get("scope") == "owner":
            # A PEP does not know owners: name the owner's agents (as registered now).
            payload["agents"] = self._owner_agents(str(payload.get("target", "")))[:1000]
        entry = {"seq": change.seq, "kind": change.kind, "subject": change.subject, "payload": payload}
        with self._lock:
            if len(self._entries) == self._entries.maxlen:
                self._oldest = self._entries[0]["seq"]
            self._entries.append(entry)
            self._cursor = max(self._cursor, change.seq)

    def since(self, after: int) -> dict[str, Any] | None:
        """Entries after ``after``; a snapshot if ``after`` is 0 or older than held; None if nothing new."""
        with self._lock:
            cursor = self._cursor
            if after <= 0 or after < self._oldest:
                return {"cursor": cursor, "reset": True, **self._snapshot()}
            entries = [e for e in self._entries if e["seq"] > after]
        if not entries:
            return None
        return {"cursor": max(cursor, entries[-1]["seq"]), "reset": False, "events": entries}
