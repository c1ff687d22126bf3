"""Per-agent response controls set by playbooks: required approvals and a token lifetime cap.

``approvals_remaining`` makes the PDP's next N decisions for the agent deny
with the ``approval_required`` reason (and ``context.approval_required`` true),
until a person's approval flow takes them over (see
docs/continuous-verification.md). ``ttl_cap`` bounds the lifetime of every
token issued to the agent. Both live in ``agent_responses``, are held in memory
on every worker and change through the feed (``agent.response``). Each worker
counts the approvals it enforces, so across R replicas an agent is refused at
least N and at most R·N times.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, delete, select

from tessera.events.change_feed import Change, publish
from tessera.storage.database import reading
from tessera.storage.tables import agent_responses
from tessera.storage.upsert import upsert

RESPONSE_CHANGED = "agent.response"


@dataclass(frozen=True, slots=True)
class Control:
    approvals_remaining: int = 0
    ttl_cap: int | None = None
    reason: str | None = None


class ResponseControls:
    def __init__(self) -> None:
        self._controls: dict[str, Control] = {}
        self._lock = threading.Lock()

    def load(self, engine: Engine) -> None:
        with reading(engine) as conn:
            rows = conn.execute(select(agent_responses)).all()
        with self._lock:
            self._controls = {r.agent_id: Control(r.approvals_remaining, r.ttl_cap, r.reason) for r in rows}

    def get(self, agent_id: str) -> Control:
        return self._controls.get(agent_id) or Control()

    def approval_required(self, agent_id: str) -> bool:
        control = self._controls.get(agent_id)
        return control is not None and control.approvals_remaining > 0

    def consume_approval(self, agent_id: str) -> bool:
        """True if this request is one of the N that need approval (and counts it)."""
        with self._lock:
            control = self._controls.get(agent_id)
            if control is None or control.approvals_remaining <= 0:
                return False
            self._controls[agent_id] = Control(
                control.approvals_remaining - 1, control.ttl_cap, control.reason
            )
            return True

    def ttl_cap(self, agent_id: str) -> int | None:
        control = self._controls.get(agent_id)
        return control.ttl_cap if control else None

    def set(self, agent_id: str, control: Control) -> None:
        with self._lock:
            if control.approvals_remaining <= 0 and control.ttl_cap is None:
                self._controls.pop(agent_id, None)
            else:
                self._controls[agent_id] = control

    def on_change(self, change: Change) -> None:
        payload = change.payload
        cap = payload.get("ttl_cap")
        self.set(
            change.subject,
            Control(
                int(payload.get("approvals_remaining", 0)), int(cap) if cap else None, payload.get("reason")
            ),
        )


def save_control(conn: Connection, agent_id: str, control: Control, now: float) -> None:
    """Write the agent's controls and publish them, in the caller's transaction."""
    if control.approvals_remaining <= 0 and control.ttl_cap is None:
        conn.execute(delete(agent_responses).where(agent_responses.c.agent_id == agent_id))
    else:
        row = {
            "agent_id": agent_id,
            "approvals_remaining": control.approvals_remaining,
            "ttl_cap": control.ttl_cap,
            "reason": (control.reason or "")[:500],
            "updated_at": now,
        }
        upsert(conn, agent_responses, ("agent_id",), row)
    payload = {
        "approvals_remaining": control.approvals_remaining,
        "ttl_cap": control.ttl_cap,
        "reason": (control.reason or "")[:200],
    }
    publish(conn, RESPONSE_CHANGED, agent_id, payload, now)
