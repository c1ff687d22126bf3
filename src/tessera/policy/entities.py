"""The entities the PDP knows, indexed by uid, and the per-request slice it passes to Cedar.

Sources: the bundle's static ``entities.json``, resources registered through the
API, and agents from the registry (with their owners as ``Owner`` parents).
Each entity is kept as its Cedar JSON form; a decision gets only the slice it
needs (the principal and resource with their ancestors), so a change to one
entity never re-parses the whole set.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from tessera.identity.agents import Agent

AGENT_TYPE = "Agent"
OWNER_TYPE = "Owner"


@dataclass(frozen=True, slots=True)
class Uid:
    type: str
    id: str

    @property
    def key(self) -> str:
        return f"{self.type}::{self.id}"

    def as_json(self) -> dict[str, str]:
        return {"type": self.type, "id": self.id}

    @classmethod
    def from_json(cls, value: Any) -> Uid:
        if (
            isinstance(value, dict)
            and isinstance(value.get("type"), str)
            and isinstance(value.get("id"), str)
        ):
            return cls(value["type"], value["id"])
        if isinstance(value, dict) and "__entity" in value:
            return cls.from_json(value["__entity"])
        raise ValueError(f"not an entity uid: {str(value)[:80]}")


def agent_entity(agent: Agent) -> dict[str, Any]:
    """An agent as a Cedar entity: registry fields as attributes, free attributes as tags."""
    return {
        "uid": {"type": AGENT_TYPE, "id": agent.id},
        "attrs": {
            "name": agent.name,
            "owner": agent.owner,
            "segment": agent.segment or "",
            "state": agent.state.value,
            "scopes": list(agent.scopes),
            "labels": list(agent.labels),
            # The jurisdiction the agent runs under: its ``region`` attribute (a federated
            # identity gets its trusted issuer's), "" when it has none.
            "region": agent.attributes.get("region", ""),
        },
        "parents": [{"type": OWNER_TYPE, "id": agent.owner}],
        "tags": dict(agent.attributes),
    }


def owner_entity(email: str) -> dict[str, Any]:
    return {"uid": {"type": OWNER_TYPE, "id": email}, "attrs": {"email": email}, "parents": []}


class EntityIndex:
    """Thread-safe map of uid → entity JSON, from three layers (bundle, resources, agents)."""

    def __init__(self) -> None:
        self._static: dict[str, dict[str, Any]] = {}
        self._resources: dict[str, dict[str, Any]] = {}
        self._agents: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        #: Bumped on every change, so a copy elsewhere (the SDK's PDP) knows to refresh.
        self.generation = 0

    def _bump(self) -> None:
        self.generation += 1

    def export(self) -> dict[str, list[dict[str, Any]]]:
        """The resources and agents layers (the bundle's static entities travel with the bundle)."""
        with self._lock:
            return {"resources": list(self._resources.values()), "agents": list(self._agents.values())}

    def set_agent_entities(self, entities: list[dict[str, Any]]) -> None:
        index = {Uid.from_json(e["uid"]).key: e for e in entities}
        with self._lock:
            self._agents = index
            self._bump()

    def set_static(self, entities: list[dict[str, Any]]) -> None:
        index = {Uid.from_json(e["uid"]).key: e for e in entities}
        with self._lock:
            self._static = index
            self._bump()

    def set_resources(self, entities: list[dict[str, Any]]) -> None:
        index = {Uid.from_json(e["uid"]).key: e for e in entities}
        with self._lock:
            self._resources = index
            self._bump()

    def put_resource(self, entity: dict[str, Any]) -> None:
        with self._lock:
            self._resources = {**self._resources, Uid.from_json(entity["uid"]).key: entity}
            self._bump()

    def remove_resource(self, uid: Uid) -> None:
        with self._lock:
            self._resources = {k: v for k, v in self._resources.items() if k != uid.key}
            self._bump()

    def put_agent(self, agent: Agent) -> None:
        entity = agent_entity(agent)
        with self._lock:
            self._agents = {**self._agents, Uid(AGENT_TYPE, agent.id).key: entity}
            self._bump()

    def set_agents(self, agents: list[Agent]) -> None:
        index = {Uid(AGENT_TYPE, a.id).key: agent_entity(a) for a in agents}
        with self._lock:
            self._agents = index
            self._bump()

    def get(self, uid: Uid) -> dict[str, Any] | None:
        key = uid.key
        found = self._agents.get(key) or self._resources.get(key) or self._static.get(key)
        if found is None and uid.type == OWNER_TYPE:
            return owner_entity(uid.id)
        return found

    def of_type(self, entity_type: str) -> list[Uid]:
        """Every known uid of one type (for AuthZEN search), agents and resources included."""
        prefix = f"{entity_type}::"
        keys = {
            k
            for layer in (self._static, self._resources, self._agents)
            for k in layer
            if k.startswith(prefix)
        }
        return [Uid(entity_type, key[len(prefix) :]) for key in sorted(keys)]

    def slice(
        self, uids: list[Uid], overrides: dict[str, dict[str, Any]] | None = None
    ) -> list[dict[str, Any]]:
        """The entities for ``uids`` and all their ancestors; ``overrides`` replace indexed ones.

        Every ancestor, however deep: a cut-off hierarchy would hide a forbid on a far
        ancestor. Each entity is visited once, so parent cycles end.
        """
        overrides = overrides or {}
        found: dict[str, dict[str, Any]] = {}
        frontier = list(uids)
        while frontier:
            next_frontier: list[Uid] = []
            for uid in frontier:
                if uid.key in found:
                    continue
                entity = overrides.get(uid.key) or self.get(uid)
                if entity is None:
                    continue
                found[uid.key] = entity
                for parent in entity.get("parents", []):
                    try:
                        next_frontier.append(Uid.from_json(parent))
                    except ValueError:
                        continue
            frontier = next_frontier
        for key, entity in overrides.items():
            found.setdefault(key, entity)
        return list(found.values())
