"""The agent store's contract.

- ``add`` inserts a new agent with its keys; an existing id raises ``Conflict``.
- ``get`` returns the agent with all its keys (removed ones too, marked), or None.
- ``set_state`` changes the lifecycle state in the caller's transaction.
- Keys are never deleted: ``remove_key`` stamps ``removed_at`` so history stays.
- Every mutation happens inside the ``Connection`` the caller passes, so the
  change-feed entry and token revocations commit atomically with it.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import Connection

from tessera.identity.agents import Agent, AgentKey, LifecycleState


class AgentRepository(Protocol):
    def add(self, conn: Connection, agent: Agent) -> None: ...
    def get(self, conn: Connection, agent_id: str) -> Agent | None: ...
    def list(
        self, conn: Connection, *, owner: str | None = None, state: LifecycleState | None = None
    ) -> list[Agent]: ...
    def set_state(
        self, conn: Connection, agent_id: str, state: LifecycleState, reason: str | None, now: float
    ) -> None: ...
    def add_key(self, conn: Connection, agent_id: str, key: AgentKey) -> None: ...
    def remove_key(self, conn: Connection, agent_id: str, kid: str, now: float) -> bool: ...
    def update(self, conn: Connection, agent_id: str, fields: dict[str, object], now: float) -> None: ...
    def set_secret_hash(
        self, conn: Connection, agent_id: str, secret_hash: str | None, now: float
    ) -> None: ...
