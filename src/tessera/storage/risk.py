"""Risk rows: each agent's current reasons (shared by replicas) and its baseline snapshot."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select, update

from tessera.storage.tables import agent_risk
from tessera.storage.upsert import upsert


@dataclass(frozen=True, slots=True)
class RiskRow:
    agent_id: str
    score: int
    reasons: list[dict[str, Any]]
    learning: bool
    profile: dict[str, Any] | None
    updated_at: float


class SqlRiskStore:
    def save_reasons(
        self,
        conn: Connection,
        agent_id: str,
        *,
        score: int,
        reasons: list[dict[str, Any]],
        learning: bool,
        now: float,
    ) -> None:
        row = {
            "agent_id": agent_id,
            "score": score,
            "reasons": reasons,
            "learning": learning,
            "updated_at": now,
        }
        upsert(conn, agent_risk, ("agent_id",), row)

    def save_profile(
        self, conn: Connection, agent_id: str, profile: dict[str, Any], *, learning: bool, now: float
    ) -> None:
        done = conn.execute(
            update(agent_risk)
            .where(agent_risk.c.agent_id == agent_id)
            .values(profile=profile, learning=learning)
        ).rowcount
        if not done:
            row = {
                "agent_id": agent_id,
                "score": 0,
                "reasons": [],
                "learning": learning,
                "profile": profile,
                "updated_at": now,
            }
            upsert(conn, agent_risk, ("agent_id",), row)

    def load(self, conn: Connection) -> list[RiskRow]:
        return [
            RiskRow(r.agent_id, r.score, list(r.reasons or []), bool(r.learning), r.profile, r.updated_at)
            for r in conn.execute(select(agent_risk)).all()
        ]

    def get(self, conn: Connection, agent_id: str) -> RiskRow | None:
        r = conn.execute(select(agent_risk).where(agent_risk.c.agent_id == agent_id)).first()
        if r is None:
            return None
        return RiskRow(r.agent_id, r.score, list(r.reasons or []), bool(r.learning), r.profile, r.updated_at)
