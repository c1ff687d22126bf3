"""The online model: river's Half-Space Trees over each agent's scaled features.

Half-Space Trees (Tan, Ting & Liu, 2011) score how isolated a point is in a
stream, learning as it goes; river's ``anomaly.HalfSpaceTrees`` expects
features in [0, 1], so every feature is scaled here with a fixed bound. The
model catches combinations no single rule flags (an ordinary resource at an
odd hour at an unusual rate). Its state lives in memory only: after a restart
it relearns within ``window_size`` events, while the rule baselines persist.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from tessera.detect.observations import Observation
from tessera.detect.profile import Profile


def features(profile: Profile, obs: Observation) -> dict[str, float]:
    hour = datetime.fromtimestamp(obs.at, UTC).hour + datetime.fromtimestamp(obs.at, UTC).minute / 60
    angle = 2 * math.pi * hour / 24
    rate = profile.rate_now(obs.at) + 1
    return {
        "hour_sin": (math.sin(angle) + 1) / 2,
        "hour_cos": (math.cos(angle) + 1) / 2,
        "rate": min(rate / (4 * max(profile.rate_baseline, 1.0)), 1.0),
        "denied": 1.0 if obs.denied else 0.0,
        "new_resource": 0.0 if obs.resource in profile.resources else 1.0,
        "new_zone": 0.0 if not obs.zone or obs.zone in profile.zones else 1.0,
        "depth": min(obs.delegation_depth / 5, 1.0),
        "beyond_task": 1.0 if obs.beyond_task else 0.0,
    }


class AgentModel:
    """One agent's Half-Space Trees; scores only once it has seen a full window."""

    def __init__(self, *, window_size: int = 50, seed: int = 7) -> None:
        # Imported here, on the detector's thread: river takes seconds to import, which
        # would otherwise delay every server start.
        from river import anomaly  # noqa: PLC0415

        self._trees = anomaly.HalfSpaceTrees(n_trees=10, height=6, window_size=window_size, seed=seed)
        self._window = window_size
        self.seen = 0

    def score_and_learn(self, x: dict[str, float]) -> float | None:
        score = float(self._trees.score_one(x))  # type: ignore[no-untyped-call]  # river is untyped if self.seen >= 2 * self._window else None
        self._trees.learn_one(x)  # type: ignore[no-untyped-call]  # river is untyped
        self.seen += 1
        return score
