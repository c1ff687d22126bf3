"""What makes a signature-valid token inactive, held in memory on every worker.

- a revoked ``jti`` (RFC 7009), kept until the token would have expired anyway;
- an agent that is no longer usable (suspended, quarantined, decommissioned, expired);
- a retired signing key (handled by the key ring, which no longer finds the kid).

The state is loaded at start and kept current by the change feed; writes go to
the database first, then to the local copy, so this worker sees them at once and
others within one feed poll (or at once, on PostgreSQL's NOTIFY).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, insert, select, update

from tessera.events.change_feed import Change, publish
from tessera.identity.agents import Agent, LifecycleState
from tessera.storage.database import reading
from tessera.storage.tables import agents, issued_tokens, revoked_external_tokens

TOKENS_REVOKED = "tokens.revoked"
AGENT_CHANGED = "agent"


@dataclass(frozen=True, slots=True)
class AgentStatus:
    state: LifecycleState
    expires_at: float | None

    def usable_at(self, now: float) -> bool:
        return self.state is LifecycleState.ACTIVE and (self.expires_at is None or now < self.expires_at)


class RevocationState:
    def __init__(self) -> None:
        self._revoked: dict[str, float] = {}
        self._agents: dict[str, AgentStatus] = {}
        self._lock = threading.Lock()

    def load(self, engine: Engine, now: float) -> None:
        with reading(engine) as conn:
            revoked = conn.execute(
                select(issued_tokens.c.jti, issued_tokens.c.expires_at).where(
                    issued_tokens.c.revoked_at.is_not(None), issued_tokens.c.expires_at >= now - 3600
                )
            ).all()
            statuses = conn.execute(select(agents.c.id, agents.c.state, agents.c.expires_at)).all()
            external = conn.execute(
                select(revoked_external_tokens.c.token_id, revoked_external_tokens.c.expires_at).where(
                    revoked_external_tokens.c.expires_at >= now - 3600
                )
            ).all()
        with self._lock:
            self._revoked = {row.jti: row.expires_at for row in revoked}
            self._revoked.update({row.token_id: row.expires_at for row in external})
            self._agents = {
                row.id: AgentStatus(LifecycleState(row.state), row.expires_at) for row in statuses
            }

    def is_jti_revoked(self, jti: str) -> bool:
        return jti in self._revoked

    def agent_usable(self, agent_id: str, now: float) -> bool:
        status = self._agents.get(agent_id)
        return status is not None and status.usable_at(now)

    def agent_state(self, agent_id: str) -> str | None:
        status = self._agents.get(agent_id)
        return status.state.value if status else None

    def mark_revoked(self, jtis: dict[str, float]) -> None:
        with self._lock:
            self._revoked.update(jtis)

    def set_agent(self, agent_id: str, state: LifecycleState, expires_at: float | None) -> None:
        with self._lock:
            self._agents[agent_id] = AgentStatus(state, expires_at)

    def revoked_tokens(self) -> dict[str, float]:
        """Every revoked ``jti`` still held, with when it would have expired."""
        return dict(self._revoked)

    def unusable_agents(self, now: float) -> dict[str, str]:
        """Agents whose tokens are dead whatever their signature: id → state (or ``expired``)."""
        return {
            agent_id: status.state.value if status.state is not LifecycleState.ACTIVE else "expired"
            for agent_id, status in list(self._agents.items())
            if not status.usable_at(now)
        }

    def prune(self, now: float, leeway: float) -> None:
        with self._lock:
            self._revoked = {jti: exp for jti, exp in self._revoked.items() if exp + leeway >= now}

    # --- change feed handlers ------------------------------------------------------------

    def on_tokens_revoked(self, change: Change) -> None:
        self.mark_revoked({str(k): float(v) for k, v in change.payload.get("tokens", {}).items()})

    def on_agent_changed(self, change: Change) -> None:
        payload = change.payload
        if "state" in payload:
            expires = payload.get("expires_at")
            self.set_agent(
                change.subject, LifecycleState(payload["state"]), float(expires) if expires else None
            )

    @property
    def revoked_count(self) -> int:
        return len(self._revoked)


def agent_change_payload(agent: Agent) -> dict[str, object]:
    return {"state": agent.state.value, "expires_at": agent.expires_at}


_CHUNK = 500


def _mark(conn: Connection, jtis: list[str], now: float, reason: str) -> None:
    for start in range(0, len(jtis), _CHUNK):
        conn.execute(
            update(issued_tokens)
            .where(
                issued_tokens.c.jti.in_(jtis[start : start + _CHUNK]), issued_tokens.c.revoked_at.is_(None)
            )
            .values(revoked_at=now, revoked_reason=reason[:500])
        )


def _descendants(conn: Connection, roots: set[str], now: float, reason: str) -> dict[str, float]:
    """Revoke every live token exchanged from ``roots``, transitively (RFC 8693 lineage).

    Level by level: each level's rows are updated (and so locked) before their own
    children are looked up, so an exchange recording a child of a locked parent
    either commits first and is found, or waits and then sees its parent revoked.
    ``seen`` stops any cycle; each level is read in chunks, so fan-out is bounded
    by the chunk size per query, not per level.
    """
    revoked: dict[str, float] = {}
    seen = set(roots)
    frontier = sorted(roots)
    while frontier:
        children: list[tuple[str, float, bool]] = []
        for start in range(0, len(frontier), _CHUNK):
            rows = conn.execute(
                select(issued_tokens.c.jti, issued_tokens.c.expires_at, issued_tokens.c.revoked_at).where(
                    issued_tokens.c.parent_jti.in_(frontier[start : start + _CHUNK]),
                    issued_tokens.c.expires_at >= now - 60,
                )
            ).all()
            children.extend((row.jti, row.expires_at, row.revoked_at is None) for row in rows)
        fresh = [(jti, exp, live) for jti, exp, live in children if jti not in seen]
        seen.update(jti for jti, _, _ in fresh)
        live = {jti: exp for jti, exp, is_live in fresh if is_live}
        _mark(conn, list(live), now, reason)
        revoked.update(live)
        frontier = sorted(jti for jti, _, _ in fresh)
    return revoked


def revoke_tokens(
    conn: Connection,
    *,
    now: float,
    reason: str,
    jti: str | None = None,
    agent_id: str | None = None,
    task_id: str | None = None,
    subject: str | None = None,
) -> dict[str, float]:
    """Mark live tokens revoked in the caller's transaction and publish them on the feed.

    Exactly one of ``jti``, ``agent_id``, ``task_id`` or ``subject`` (the chain's
    original subject, ``issued_tokens.subject``) selects the tokens; every token
    exchanged from them (``parent_jti``, transitively) is revoked with them. ``jti``
    may also be the id of an external subject token, which has no row of its own but
    may have descendants. Returns ``{jti: expires_at}`` of the tokens newly revoked.
    """
    selectors = [s for s in (jti, agent_id, task_id, subject) if s is not None]
    if len(selectors) != 1:
        raise ValueError("revoke_tokens needs exactly one of jti, agent_id, task_id, subject")
    condition = (
        issued_tokens.c.jti == jti
        if jti is not None
        else issued_tokens.c.agent_id == agent_id
        if agent_id is not None
        else issued_tokens.c.task_id == task_id
        if task_id is not None
        else issued_tokens.c.subject == subject
    )
    selected = conn.execute(
        select(issued_tokens.c.jti, issued_tokens.c.expires_at, issued_tokens.c.revoked_at).where(
            condition, issued_tokens.c.expires_at >= now - 60
        )
    ).all()
    revoked = {row.jti: row.expires_at for row in selected if row.revoked_at is None}
    _mark(conn, list(revoked), now, reason)
    roots = {row.jti for row in selected}
    if jti is not None:
        roots.add(jti)
    cascade_reason = f"{reason} (cascade: derived from a revoked token)"
    revoked.update(_descendants(conn, roots, now, cascade_reason))
    if not revoked:
        return {}
    selector = jti or agent_id or task_id or subject or ""
    publish(conn, TOKENS_REVOKED, selector[:200], {"tokens": revoked, "reason": reason[:200]}, now)
    return revoked


def revoke_external_token(
    conn: Connection, *, token_id: str, expires_at: float, now: float, reason: str
) -> dict[str, float]:
    """Remember an external subject token as revoked and revoke every token derived from it.

    ``token_id`` is the id token exchange gives the external token (its ``parent_jti``).
    The returned map includes ``token_id`` itself, so it is refused at exchange on
    every replica until it would have expired anyway.
    """
    known = conn.execute(
        select(revoked_external_tokens.c.token_id).where(revoked_external_tokens.c.token_id == token_id)
    ).first()
    if known is None:
        conn.execute(
            insert(revoked_external_tokens).values(
                token_id=token_id, expires_at=expires_at, revoked_at=now, reason=reason[:500]
            )
        )
        publish(
            conn, TOKENS_REVOKED, token_id, {"tokens": {token_id: expires_at}, "reason": reason[:200]}, now
        )
    derived = revoke_tokens(conn, now=now, reason=reason, jti=token_id)
    return {**({token_id: expires_at} if known is None else {}), **derived}
