"""The risk engine: turns the event stream into baselines, findings and risk scores.

It runs on the event stream's thread, never on a request. For each agent
activity record it judges the observation against the agent's profile (the
detectors, then the online model), folds it into the profile, adds the
findings to the :class:`RiskBoard` and tells its listeners (the playbooks).

Replicas. Each replica scores the events it served. A score that moves by
``publish_delta`` points or more is written to ``agent_risk`` and published on
the change feed (``risk``); every replica merges those reasons into its board,
so the PDP everywhere sees the same score within one feed delay. Profiles are
snapshotted to ``agent_risk.profile`` every ``snapshot_interval`` seconds and
loaded at start, so a restart or a new replica starts from the shared baseline
(the last replica to snapshot an agent wins; see docs/continuous-verification.md).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from tessera.audit.records import AuditRecord
from tessera.clock import Clock
from tessera.detect.detectors import MODEL, Finding, Tuning, _once, evaluate, learn
from tessera.detect.model import AgentModel, features
from tessera.detect.observations import Observation, observe
from tessera.detect.profile import Profile
from tessera.detect.risk import Reason, RiskBoard, RiskView
from tessera.events.change_feed import Change, publish
from tessera.storage.database import reading, writing
from tessera.storage.risk import SqlRiskStore

log = logging.getLogger(__name__)
RISK_CHANGED = "risk"
#: Findings worth this many points keep the observation out of the baseline.
SUSPICIOUS_POINTS = 20.0
Listener = Callable[[Observation, list[Finding], RiskView], None]


class RiskEngine:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        board: RiskBoard,
        tuning: Tuning,
        *,
        known_agent: Callable[[str], bool],
        origin: str,
        publish_delta: int = 5,
        snapshot_interval: float = 30.0,
        model_window: int = 50,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self.board = board
        self.tuning = tuning
        self._known = known_agent
        self._origin = origin
        self._publish_delta = publish_delta
        self._snapshot_interval = snapshot_interval
        self._model_window = model_window
        self._profiles: dict[str, Profile] = {}
        self._models: dict[str, AgentModel] = {}
        self._published: dict[str, int] = {}
        self._dirty: set[str] = set()
        self._last_snapshot = clock.now()
        self._listeners: list[Listener] = []
        self._store = SqlRiskStore()
        self._lock = threading.RLock()

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    # --- state ---------------------------------------------------------------------------

    def load(self) -> None:
        with reading(self._engine) as conn:
            rows = self._store.load(conn)
        with self._lock:
            for row in rows:
                reasons = [Reason.from_json(r) for r in row.reasons]
                self.board.set(row.agent_id, reasons, learning=row.learning, updated_at=row.updated_at)
                self._published[row.agent_id] = row.score
                if row.profile:
                    self._profiles[row.agent_id] = Profile.from_json(row.agent_id, row.profile)

    def profile(self, agent_id: str) -> Profile | None:
        return self._profiles.get(agent_id)

    def learning(self, agent_id: str, now: float) -> bool:
        profile = self._profiles.get(agent_id)
        if profile is None:
            return True
        return profile.learning(now, events=self.tuning.learning_events, seconds=self.tuning.learning_seconds)

    def view(self, agent_id: str, now: float) -> RiskView:
        view = self.board.view(agent_id, now)
        learning = self.learning(agent_id, now)
        if view.learning != learning:
            view = RiskView(view.agent_id, view.score, view.reasons, learning, view.updated_at)
        return view

    # --- the stream ----------------------------------------------------------------------

    def handle(self, record: AuditRecord) -> None:
        if record.type in ("agent.released", "agent.resumed") and record.subject:
            self.reset(record.subject, record.ts_ms / 1000)
            return
        if record.type == "agent.decommissioned" and record.subject:
            with self._lock:
                self._profiles.pop(record.subject, None)
                self._models.pop(record.subject, None)
            return
        obs = observe(record)
        if obs is None or not self._known(obs.agent_id):
            return
        self.observe(obs)

    def observe(self, obs: Observation) -> RiskView:
        now = obs.at
        tuning = self.tuning
        with self._lock:
            profile = self._profiles.get(obs.agent_id)
            if profile is None:
                profile = self._profiles[obs.agent_id] = Profile(obs.agent_id, first_seen=now)
            learning = profile.learning(now, events=tuning.learning_events, seconds=tuning.learning_seconds)
            findings = evaluate(profile, obs, tuning, learning=learning)
            model = self._models.get(obs.agent_id)
            if model is None:
                model = self._models[obs.agent_id] = AgentModel(window_size=self._model_window)
            score = model.score_and_learn(features(profile, obs))
            if (
                not learning
                and score is not None
                and score >= tuning.model_threshold
                and not findings
                and _once(profile, MODEL, now, 60.0)
            ):
                findings.append(
                    Finding(
                        MODEL, tuning.points[MODEL], f"unusual combination of features (score {score:.2f})"
                    )
                )
            suspicious = sum(f.points for f in findings) >= SUSPICIOUS_POINTS
            learn(profile, obs, absorb=not suspicious)
            self._dirty.add(obs.agent_id)
            still_learning = profile.learning(
                now, events=tuning.learning_events, seconds=tuning.learning_seconds
            )
        reasons = [Reason(f.detector, f.points, f.detail, now) for f in findings]
        view = self.board.add(obs.agent_id, reasons, learning=still_learning, now=now)
        self._maybe_publish(view, now)
        for listener in self._listeners:
            try:
                listener(obs, findings, view)
            except Exception:
                log.exception("risk listener failed for agent %s", obs.agent_id)
        if self._clock.now() - self._last_snapshot >= self._snapshot_interval:
            self.snapshot()
        return view

    def reset(self, agent_id: str, now: float) -> None:
        """A person released or resumed the agent: its score starts again from 0."""
        self.board.set(agent_id, [], learning=self.learning(agent_id, now), updated_at=now)
        self._write(agent_id, 0, [], learning=self.learning(agent_id, now), now=now, reset=True)

    def _maybe_publish(self, view: RiskView, now: float) -> None:
        last = self._published.get(view.agent_id, 0)
        if abs(view.score - last) < self._publish_delta:
            return
        reasons = [r.to_json() for r in self.board.reasons(view.agent_id)]
        self._write(view.agent_id, view.score, reasons, learning=view.learning, now=now)

    def _write(
        self,
        agent_id: str,
        score: int,
        reasons: list[dict[str, Any]],
        *,
        learning: bool,
        now: float,
        reset: bool = False,
    ) -> None:
        try:
            with writing(self._engine) as conn:
                self._store.save_reasons(
                    conn, agent_id, score=score, reasons=reasons, learning=learning, now=now
                )
                payload = {"reasons": reasons, "learning": learning, "origin": self._origin, "reset": reset}
                publish(conn, RISK_CHANGED, agent_id, payload, self._clock.now())
            self._published[agent_id] = score
        except Exception:
            log.exception("publishing the risk of agent %s failed; will retry on its next change", agent_id)

    def on_change(self, change: Change) -> None:
        """Another replica's reasons (or a reset): merge them into this board."""
        if change.payload.get("origin") == self._origin:
            return
        reasons = [Reason.from_json(r) for r in change.payload.get("reasons", []) if isinstance(r, dict)]
        learning = bool(change.payload.get("learning", True))
        if change.payload.get("reset"):
            self.board.set(change.subject, [], learning=learning, updated_at=change.created_at)
            return
        known = {(r.detector, r.at, r.detail) for r in self.board.reasons(change.subject)}
        merged = self.board.reasons(change.subject) + [
            r for r in reasons if (r.detector, r.at, r.detail) not in known
        ]
        merged.sort(key=lambda r: r.at)
        self.board.set(change.subject, merged, learning=learning, updated_at=change.created_at)

    def snapshot(self) -> int:
        """Write the profiles changed since the last snapshot; returns how many."""
        with self._lock:
            dirty = [(a, self._profiles[a]) for a in self._dirty if a in self._profiles]
            self._dirty.clear()
            self._last_snapshot = self._clock.now()
            payloads = [(a, p.to_json(), self.learning(a, p.updated_at)) for a, p in dirty]
        if not payloads:
            return 0
        try:
            with writing(self._engine) as conn:
                for agent_id, profile, learning in payloads:
                    self._store.save_profile(
                        conn, agent_id, profile, learning=learning, now=self._clock.now()
                    )
        except Exception:
            log.exception("snapshotting %d risk profile(s) failed; will retry", len(payloads))
            with self._lock:
                self._dirty.update(a for a, _, _ in payloads)
            return 0
        return len(payloads)
