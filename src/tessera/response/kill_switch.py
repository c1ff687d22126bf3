"""The kill switch: stop an agent, a task, everything a person delegated, or every agent of an owner.

A kill rule revokes every live token in its scope and blocks new ones until a
person releases it. Rules live in ``kill_rules``; every worker holds the active
ones in memory (:class:`KillRules`), kept current by the change feed (``kill``),
and checks them at issuance, in token validation and introspection, and in PDP
decisions. Issuance also re-reads the rules inside its own transaction, so a
replica that has not yet heard of a rule still refuses.

Scopes and what they match:

=============  ===========================================================
``agent``      tokens whose agent (``client_id``) is the target
``task``       tokens whose ``agent_task`` task id is the target
``delegator``  tokens whose original subject (``issued_tokens.subject``,
               the token's ``sub``) is the target: everything a person delegated
``owner``      tokens of every agent whose registered owner is the target
=============  ===========================================================
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection, Engine, and_, or_, select, update

from tessera.audit.service import Auditor, RequestContext, event, record_revocations
from tessera.clock import Clock
from tessera.errors import Conflict, NotFound, ValidationFailed
from tessera.events.change_feed import Change, publish
from tessera.ids import IdGenerator
from tessera.storage.database import is_postgres, reading, writing
from tessera.storage.tables import agents, issued_tokens, kill_rules
from tessera.tokens.revocation import RevocationState, revoke_tokens

KILL_CHANGED = "kill"
SCOPES = ("agent", "task", "delegator", "owner")
MAX_TARGET = 320
MAX_REASON = 500


@dataclass(frozen=True, slots=True)
class KillRule:
    id: str
    scope: str
    target: str
    reason: str
    revoked_tokens: int
    created_at: float
    released_at: float | None = None
    released_reason: str | None = None

    @property
    def active(self) -> bool:
        return self.released_at is None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "scope": self.scope,
            "target": self.target,
            "reason": self.reason,
            "revoked_tokens": self.revoked_tokens,
            "created_at": self.created_at,
            "released_at": self.released_at,
            "released_reason": self.released_reason,
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> KillRule:
        released = value.get("released_at")
        return cls(
            id=str(value["id"]),
            scope=str(value["scope"]),
            target=str(value["target"]),
            reason=str(value.get("reason", "")),
            revoked_tokens=int(value.get("revoked_tokens", 0)),
            created_at=float(value.get("created_at", 0.0)),
            released_at=float(released) if released is not None else None,
            released_reason=value.get("released_reason"),
        )


def _rule(row: Any) -> KillRule:
    return KillRule(
        row.id,
        row.scope,
        row.target,
        row.reason,
        row.revoked_tokens,
        row.created_at,
        row.released_at,
        row.released_reason,
    )


def validate_target(scope: str, target: str, reason: str) -> None:
    if scope not in SCOPES:
        raise ValidationFailed(f"unknown kill scope '{scope[:40]}'; use one of {', '.join(SCOPES)}")
    if not target or len(target) > MAX_TARGET or not target.isprintable():
        raise ValidationFailed(
            f"kill target must be 1-{MAX_TARGET} printable characters, got '{target[:60]}'"
        )
    if not reason.strip() or len(reason) > MAX_REASON:
        raise ValidationFailed(f"a reason of 1-{MAX_REASON} characters is required")


class KillRules:
    """The active rules, in memory on every worker: the hot-path check."""

    def __init__(self) -> None:
        self._active: dict[tuple[str, str], KillRule] = {}
        self._lock = threading.Lock()

    def load(self, engine: Engine) -> None:
        with reading(engine) as conn:
            rows = conn.execute(select(kill_rules).where(kill_rules.c.released_at.is_(None))).all()
        with self._lock:
            self._active = {(r.scope, r.target): _rule(r) for r in rows}

    def put(self, rule: KillRule) -> None:
        with self._lock:
            key = (rule.scope, rule.target)
            if rule.active:
                self._active.setdefault(key, rule)
            elif key in self._active and self._active[key].id == rule.id:
                del self._active[key]

    def active(self) -> list[KillRule]:
        return sorted(self._active.values(), key=lambda r: r.created_at)

    def blocking(
        self,
        *,
        agent_id: str | None = None,
        task_id: str | None = None,
        subject: str | None = None,
        owner: str | None = None,
    ) -> KillRule | None:
        """The first active rule that stops a request with these facts, or None."""
        if not self._active:
            return None
        for scope, value in (
            ("agent", agent_id),
            ("task", task_id),
            ("delegator", subject),
            ("owner", owner),
        ):
            if value:
                rule = self._active.get((scope, value))
                if rule is not None:
                    return rule
        return None

    def on_change(self, change: Change) -> None:
        self.put(KillRule.from_json(change.payload))


def blocking_in(
    conn: Connection, *, agent_id: str, task_id: str | None, subject: str | None, owner: str | None
) -> str | None:
    """Inside an issuing transaction: the id of an active rule in scope (the database's answer)."""
    pairs = [("agent", agent_id), ("task", task_id), ("delegator", subject), ("owner", owner)]
    matches = [and_(kill_rules.c.scope == s, kill_rules.c.target == v) for s, v in pairs if v]
    row = conn.execute(
        select(kill_rules.c.id).where(kill_rules.c.released_at.is_(None), or_(*matches)).limit(1)
    ).first()
    return str(row.id) if row else None


class KillSwitch:
    """Creating, listing and releasing kill rules (the admin API's and playbooks' entry point)."""

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        ids: IdGenerator,
        rules: KillRules,
        *,
        revocation: RevocationState,
        auditor: Auditor | None,
        listeners: list[Callable[[KillRule], None]] | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._ids = ids
        self.rules = rules
        self._revocation = revocation
        self._auditor = auditor
        self._listeners = listeners or []

    def kill(self, scope: str, target: str, reason: str, context: RequestContext) -> KillRule:
        validate_target(scope, target, reason)
        now = self._clock.now()
        with writing(self._engine) as conn:
            if (
                scope == "agent"
                and conn.execute(select(agents.c.id).where(agents.c.id == target)).first() is None
            ):
                raise NotFound(f"agent '{target[:64]}' not found")
            self._lock_agents(conn, scope, target, now)
            revoked = self._revoke(conn, scope, target, reason, now)
            rule = KillRule(self._ids.new("kill"), scope, target, reason, len(revoked), now)
            conn.execute(kill_rules.insert().values(**rule.to_json()))
            publish(conn, KILL_CHANGED, target[:200], rule.to_json(), now)
            if self._auditor is not None:
                self._auditor.record_in(
                    conn,
                    event(
                        "kill.created",
                        context,
                        subject=target[:200],
                        reason=reason,
                        data={
                            "id": rule.id,
                            "scope": scope,
                            "target": target,
                            "revoked_tokens": len(revoked),
                        },
                    ),
                )
                record_revocations(
                    self._auditor,
                    conn,
                    context,
                    revoked,
                    agent_id=target if scope == "agent" else None,
                    reason=f"kill switch {rule.id}",
                )
        self.rules.put(rule)
        self._revocation.mark_revoked(revoked)
        for listener in self._listeners:
            listener(rule)
        return rule

    def _lock_agents(self, conn: Connection, scope: str, target: str, now: float) -> None:
        """PostgreSQL: lock the agents in scope, so an issuance in flight either commits before
        the revocation below (and is revoked) or waits and then sees the rule."""
        if not is_postgres(self._engine):
            return  # SQLite serialises writers
        if scope == "agent":
            condition = agents.c.id == target
        elif scope == "owner":
            condition = agents.c.owner == target
        else:
            column = issued_tokens.c.task_id if scope == "task" else issued_tokens.c.subject
            holders = select(issued_tokens.c.agent_id).where(
                column == target, issued_tokens.c.expires_at >= now
            )
            condition = or_(agents.c.id.in_(holders), agents.c.id == target)
        conn.execute(select(agents.c.id).where(condition).order_by(agents.c.id).with_for_update())

    @staticmethod
    def _revoke(conn: Connection, scope: str, target: str, reason: str, now: float) -> dict[str, float]:
        note = f"kill switch: {reason}"[:500]
        if scope == "agent":
            return revoke_tokens(conn, now=now, reason=note, agent_id=target)
        if scope == "task":
            return revoke_tokens(conn, now=now, reason=note, task_id=target)
        if scope == "delegator":
            return revoke_tokens(conn, now=now, reason=note, subject=target)
        revoked: dict[str, float] = {}
        for row in conn.execute(select(agents.c.id).where(agents.c.owner == target)).all():
            revoked.update(revoke_tokens(conn, now=now, reason=note, agent_id=row.id))
        return revoked

    def list(self, *, include_released: bool = False) -> list[KillRule]:
        query = select(kill_rules).order_by(kill_rules.c.created_at)
        if not include_released:
            query = query.where(kill_rules.c.released_at.is_(None))
        with reading(self._engine) as conn:
            return [_rule(r) for r in conn.execute(query).all()]

    def release(self, rule_id: str, reason: str, context: RequestContext) -> KillRule:
        if not reason.strip() or len(reason) > MAX_REASON:
            raise ValidationFailed(
                f"a reason of 1-{MAX_REASON} characters is required to release a kill switch"
            )
        now = self._clock.now()
        with writing(self._engine) as conn:
            row = conn.execute(select(kill_rules).where(kill_rules.c.id == rule_id)).first()
            if row is None:
                raise NotFound(f"kill switch '{rule_id[:64]}' not found")
            if row.released_at is not None:
                raise Conflict(f"kill switch '{rule_id[:64]}' is already released")
            conn.execute(
                update(kill_rules)
                .where(kill_rules.c.id == rule_id)
                .values(released_at=now, released_reason=reason)
            )
            rule = replace(_rule(row), released_at=now, released_reason=reason)
            publish(conn, KILL_CHANGED, rule.target[:200], rule.to_json(), now)
            if self._auditor is not None:
                self._auditor.record_in(
                    conn,
                    event(
                        "kill.released",
                        context,
                        subject=rule.target[:200],
                        reason=reason,
                        data={"id": rule.id, "scope": rule.scope, "target": rule.target},
                    ),
                )
        self.rules.put(rule)
        return rule
