"""What the detector reads from an audit record: one agent's action, as plain values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tessera.audit.records import AuditRecord

#: Record types that are an agent acting (a request decided, a token asked for).
ACTIVITY = frozenset({"decision", "token.issued", "token.denied"})


@dataclass(frozen=True, slots=True)
class Observation:
    agent_id: str
    at: float
    kind: str  # decision | token.issued | token.denied
    action: str = ""
    resource: str = ""
    resource_type: str = ""
    zone: str = ""
    denied: bool = False
    delegation_depth: int = 0
    beyond_task: bool = False
    task_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def resource_type_of(resource_key: str) -> str:
    """``Resource::"x"`` → ``Resource``; an audience URL → its scheme and host."""
    if "::" in resource_key:
        return resource_key.split("::", 1)[0]
    if "://" in resource_key:
        scheme, rest = resource_key.split("://", 1)
        return f"{scheme}://{rest.split('/', 1)[0]}"
    return resource_key


def observe(record: AuditRecord) -> Observation | None:
    """The observation an activity record carries, or None (not an agent's activity)."""
    if record.type not in ACTIVITY or not record.subject:
        return None
    if record.actor.get("type") != "agent" and record.type != "decision":
        return None
    data = record.data or {}
    at = record.ts_ms / 1000
    zone = str((record.network or {}).get("zone") or data.get("network_zone") or "")
    if record.type == "decision":
        resource = str(data.get("resource", ""))
        return Observation(
            agent_id=record.subject,
            at=at,
            kind="decision",
            action=str(data.get("action", "")),
            resource=resource,
            resource_type=resource_type_of(resource),
            zone=str(data.get("network_zone") or zone),
            denied=record.outcome == "deny",
            delegation_depth=_int(data.get("delegation_depth")),
            beyond_task=bool(data.get("beyond_task")),
            task_id=record.task_id or "",
        )
    if record.type == "token.denied" and data.get("error") == "invalid_client":
        # The caller never proved it is this agent: a claim anyone can make must not
        # raise someone else's risk.
        return None
    audiences = data.get("aud") if isinstance(data.get("aud"), list) else []
    resource = str(audiences[0]) if audiences else ""
    return Observation(
        agent_id=record.subject,
        at=at,
        kind=record.type,
        action="issue_token",
        resource=resource,
        resource_type=resource_type_of(resource) if resource else "",
        zone=zone,
        denied=record.type == "token.denied",
        delegation_depth=_int(data.get("delegation_depth")),
        task_id=record.task_id or "",
    )


def _int(value: Any) -> int:
    try:
        return max(int(value), 0)
    except (TypeError, ValueError):
        return 0
