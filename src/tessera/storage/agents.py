"""SQL implementation of ``tessera.identity.repository.AgentRepository``."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from tessera.errors import Conflict
from tessera.identity.agents import Agent, AgentKey, LifecycleState
from tessera.storage.tables import agent_keys, agents

# Built once: every token request looks its agent up, and building a statement costs
# more than running it.
_GET_AGENT = select(agents).where(agents.c.id == bindparam("agent_id"))
_GET_KEYS = select(agent_keys).where(agent_keys.c.agent_id == bindparam("agent_id"))


def _key_from_row(row: Any) -> AgentKey:
    return AgentKey(
        kid=row.kid,
        alg=row.alg,
        jwk=dict(row.jwk),
        created_at=row.created_at,
        expires_at=row.expires_at,
        removed_at=row.removed_at,
    )


def _agent_from_row(row: Any, keys: list[AgentKey]) -> Agent:
    return Agent(
        id=row.id,
        name=row.name,
        owner=row.owner,
        description=row.description,
        attributes=dict(row.attributes),
        segment=row.segment,
        labels=tuple(row.labels),
        scopes=tuple(row.scopes),
        resource_uris=tuple(row.resource_uris),
        max_ttl=row.max_ttl,
        require_dpop=bool(row.require_dpop),
        state=LifecycleState(row.state),
        created_at=row.created_at,
        updated_at=row.updated_at,
        expires_at=row.expires_at,
        state_reason=row.state_reason,
        secret_hash=row.secret_hash,
        keys=tuple(sorted(keys, key=lambda k: k.created_at)),
    )


class SqlAgentRepository:
    def add(self, conn: Connection, agent: Agent) -> None:
        try:
            with conn.begin_nested():
                conn.execute(
                    insert(agents).values(
                        id=agent.id,
                        name=agent.name,
                        owner=agent.owner,
                        description=agent.description,
                        attributes=agent.attributes,
                        segment=agent.segment,
                        labels=list(agent.labels),
                        scopes=list(agent.scopes),
                        resource_uris=list(agent.resource_uris),
                        max_ttl=agent.max_ttl,
                        require_dpop=agent.require_dpop,
                        state=agent.state.value,
                        state_reason=agent.state_reason,
                        secret_hash=agent.secret_hash,
                        created_at=agent.created_at,
                        updated_at=agent.updated_at,
                        expires_at=agent.expires_at,
                    )
                )
        except IntegrityError as exc:
            raise Conflict(f"agent '{agent.id}' already exists") from exc
        for key in agent.keys:
            self.add_key(conn, agent.id, key)

    def get(self, conn: Connection, agent_id: str) -> Agent | None:
        row = conn.execute(_GET_AGENT, {"agent_id": agent_id}).first()
        if row is None:
            return None
        key_rows = conn.execute(_GET_KEYS, {"agent_id": agent_id}).all()
        return _agent_from_row(row, [_key_from_row(k) for k in key_rows])

    def list(
        self, conn: Connection, *, owner: str | None = None, state: LifecycleState | None = None
    ) -> list[Agent]:
        query = select(agents).order_by(agents.c.created_at, agents.c.id)
        if owner is not None:
            query = query.where(agents.c.owner == owner.lower())
        if state is not None:
            query = query.where(agents.c.state == state.value)
        rows = conn.execute(query).all()
        if not rows:
            return []
        keys: dict[str, list[AgentKey]] = defaultdict(list)
        ids = [row.id for row in rows]
        for chunk_start in range(0, len(ids), 500):
            chunk = ids[chunk_start : chunk_start + 500]
            for key_row in conn.execute(select(agent_keys).where(agent_keys.c.agent_id.in_(chunk))):
                keys[key_row.agent_id].append(_key_from_row(key_row))
        return [_agent_from_row(row, keys[row.id]) for row in rows]

    def set_state(
        self, conn: Connection, agent_id: str, state: LifecycleState, reason: str | None, now: float
    ) -> None:
        conn.execute(
            update(agents)
            .where(agents.c.id == agent_id)
            .values(state=state.value, state_reason=reason, updated_at=now)
        )

    def add_key(self, conn: Connection, agent_id: str, key: AgentKey) -> None:
        try:
            with conn.begin_nested():
                conn.execute(
                    insert(agent_keys).values(
                        agent_id=agent_id,
                        kid=key.kid,
                        alg=key.alg,
                        jwk=key.jwk,
                        created_at=key.created_at,
                        expires_at=key.expires_at,
                        removed_at=key.removed_at,
                    )
                )
        except IntegrityError as exc:
            raise Conflict(f"agent '{agent_id}' already has a key with kid '{key.kid}'") from exc
        conn.execute(update(agents).where(agents.c.id == agent_id).values(updated_at=key.created_at))

    def remove_key(self, conn: Connection, agent_id: str, kid: str, now: float) -> bool:
        result = conn.execute(
            update(agent_keys)
            .where(
                agent_keys.c.agent_id == agent_id,
                agent_keys.c.kid == kid,
                agent_keys.c.removed_at.is_(None),
            )
            .values(removed_at=now)
        )
        return bool(result.rowcount)

    def update(self, conn: Connection, agent_id: str, fields: dict[str, object], now: float) -> None:
        """Replace the given columns (tuples stored as JSON lists)."""
        values = {k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()}
        conn.execute(update(agents).where(agents.c.id == agent_id).values(**values, updated_at=now))

    def set_secret_hash(self, conn: Connection, agent_id: str, secret_hash: str | None, now: float) -> None:
        conn.execute(
            update(agents).where(agents.c.id == agent_id).values(secret_hash=secret_hash, updated_at=now)
        )
