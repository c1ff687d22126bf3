"""An agent's behaviour baseline: what it touches, how fast, when, from where.

Plain data, serialisable to JSON (the ``agent_risk.profile`` column), bounded
in size: sets hold at most ``MAX_ITEMS`` entries each.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

MAX_ITEMS = 500
RATE_WINDOW = 60.0
DENIAL_WINDOW = 60.0


@dataclass
class Profile:
    agent_id: str
    first_seen: float
    events: int = 0
    resources: set[str] = field(default_factory=set)
    resource_types: set[str] = field(default_factory=set)
    actions: set[str] = field(default_factory=set)
    zones: set[str] = field(default_factory=set)
    hours: list[int] = field(default_factory=lambda: [0] * 24)
    max_depth: int = 0
    #: Typical number of events in a ``RATE_WINDOW`` (an exponentially weighted mean).
    rate_baseline: float = 0.0
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=2000))
    denials: deque[float] = field(default_factory=lambda: deque(maxlen=200))
    #: When each detector last fired, per detail key: keeps one cause from scoring every event.
    fired: dict[str, float] = field(default_factory=dict)
    updated_at: float = 0.0

    def learning(self, now: float, *, events: int, seconds: float) -> bool:
        """Learning until ``events`` observations or ``seconds`` since first seen, whichever first."""
        return self.events < events and now - self.first_seen < seconds

    def rate_now(self, now: float) -> int:
        while self.recent and self.recent[0] <= now - RATE_WINDOW:
            self.recent.popleft()
        return len(self.recent)

    def denials_now(self, now: float) -> int:
        while self.denials and self.denials[0] <= now - DENIAL_WINDOW:
            self.denials.popleft()
        return len(self.denials)

    def hour_share(self, hour: int) -> float:
        total = sum(self.hours)
        return self.hours[hour] / total if total else 1.0

    def to_json(self) -> dict[str, Any]:
        return {
            "first_seen": self.first_seen,
            "events": self.events,
            "resources": sorted(self.resources),
            "resource_types": sorted(self.resource_types),
            "actions": sorted(self.actions),
            "zones": sorted(self.zones),
            "hours": list(self.hours),
            "max_depth": self.max_depth,
            "rate_baseline": self.rate_baseline,
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_json(cls, agent_id: str, value: dict[str, Any]) -> Profile:
        hours = [int(h) for h in value.get("hours", [])][:24]
        return cls(
            agent_id=agent_id,
            first_seen=float(value.get("first_seen", 0.0)),
            events=int(value.get("events", 0)),
            resources=set(map(str, value.get("resources", [])))
            if len(value.get("resources", [])) <= MAX_ITEMS
            else set(),
            resource_types=set(map(str, value.get("resource_types", []))),
            actions=set(map(str, value.get("actions", []))),
            zones=set(map(str, value.get("zones", []))),
            hours=hours + [0] * (24 - len(hours)),
            max_depth=int(value.get("max_depth", 0)),
            rate_baseline=float(value.get("rate_baseline", 0.0)),
            updated_at=float(value.get("updated_at", 0.0)),
        )


def remember(items: set[str], item: str) -> None:
    if item and len(items) < MAX_ITEMS:
        items.add(item)
