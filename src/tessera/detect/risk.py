"""Risk scores: the reasons that raised an agent's risk, decaying back over time.

Each reason keeps the points it added and when; its weight now is
``points · 2^(-(now - at) / half_life)``. The score is the sum, capped at 100
and rounded. Because decay is computed from ``at``, every replica holding the
same reasons computes the same score at the same moment, whoever observed them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

MAX_REASONS = 50
MIN_POINTS = 0.5


@dataclass(frozen=True, slots=True)
class Reason:
    detector: str
    points: float
    detail: str
    at: float

    def weight(self, now: float, half_life: float) -> float:
        return float(self.points * 0.5 ** (max(now - self.at, 0.0) / half_life))

    def to_json(self) -> dict[str, Any]:
        return {"detector": self.detector, "points": self.points, "detail": self.detail, "at": self.at}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Reason:
        return cls(str(value["detector"]), float(value["points"]), str(value["detail"]), float(value["at"]))


@dataclass(frozen=True, slots=True)
class RiskView:
    agent_id: str
    score: int
    #: (reason, its weight now), heaviest first
    reasons: tuple[tuple[Reason, float], ...]
    learning: bool
    updated_at: float

    @property
    def detectors(self) -> list[str]:
        return sorted({reason.detector for reason, _ in self.reasons})


@dataclass
class _Entry:
    reasons: list[Reason] = field(default_factory=list)
    learning: bool = True
    updated_at: float = 0.0


class RiskBoard:
    """Every agent's current reasons, held in memory on each worker (the PDP reads it)."""

    def __init__(self, half_life: float) -> None:
        self.half_life = half_life
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def view(self, agent_id: str, now: float) -> RiskView:
        entry = self._entries.get(agent_id)
        if entry is None:
            return RiskView(agent_id, 0, (), True, 0.0)
        weighted = [(r, r.weight(now, self.half_life)) for r in entry.reasons]
        weighted = sorted((rw for rw in weighted if rw[1] >= MIN_POINTS), key=lambda rw: -rw[1])
        score = min(100, round(sum(w for _, w in weighted)))
        return RiskView(agent_id, score, tuple(weighted), entry.learning, entry.updated_at)

    def score(self, agent_id: str, now: float) -> int:
        return self.view(agent_id, now).score if agent_id in self._entries else 0

    def add(self, agent_id: str, reasons: list[Reason], *, learning: bool, now: float) -> RiskView:
        with self._lock:
            entry = self._entries.setdefault(agent_id, _Entry())
            kept = [r for r in entry.reasons if r.weight(now, self.half_life) >= MIN_POINTS]
            entry.reasons = (kept + reasons)[-MAX_REASONS:]
            entry.learning = learning
            entry.updated_at = now
        return self.view(agent_id, now)

    def set(self, agent_id: str, reasons: list[Reason], *, learning: bool, updated_at: float) -> None:
        with self._lock:
            self._entries[agent_id] = _Entry(list(reasons)[-MAX_REASONS:], learning, updated_at)

    def reasons(self, agent_id: str) -> list[Reason]:
        entry = self._entries.get(agent_id)
        return list(entry.reasons) if entry else []

    def forget(self, agent_id: str) -> None:
        with self._lock:
            self._entries.pop(agent_id, None)

    def agents(self) -> list[str]:
        return list(self._entries)
