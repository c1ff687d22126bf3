"""The interpretable detectors: each compares one observation with the agent's own baseline.

A detector returns a :class:`Finding` (detector name, points, a one-line
detail) or nothing. Baseline detectors stay silent while the profile is
learning; the absolute ones (a burst of denials, access beyond the task's
declared resources) judge from the first event. See docs/continuous-verification.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tessera.detect.observations import Observation
from tessera.detect.profile import Profile, remember

NEW_RESOURCE = "new_resource"
NEW_RESOURCE_TYPE = "new_resource_type"
NEW_ACTION = "new_action"
RATE_SPIKE = "rate_spike"
OFF_HOURS = "off_hours"
NEW_ZONE = "new_zone"
DENIAL_BURST = "denial_burst"
DELEGATION_JUMP = "delegation_jump"
BEYOND_TASK = "beyond_task"
MODEL = "model"

DEFAULT_POINTS: dict[str, float] = {
    NEW_RESOURCE: 8,
    NEW_RESOURCE_TYPE: 20,
    NEW_ACTION: 15,
    RATE_SPIKE: 30,
    OFF_HOURS: 10,
    NEW_ZONE: 40,
    DENIAL_BURST: 35,
    DELEGATION_JUMP: 25,
    BEYOND_TASK: 30,
    MODEL: 10,
}
DETECTORS = tuple(DEFAULT_POINTS)


@dataclass(frozen=True, slots=True)
class Tuning:
    """Thresholds and weights; every field has a ``TESSERA_RISK_*`` setting or a documented default."""

    learning_events: int = 50
    learning_seconds: float = 86400.0
    half_life: float = 900.0
    points: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_POINTS))
    rate_factor: float = 3.0
    rate_floor: int = 10
    rate_refire: float = 10.0
    off_hours_share: float = 0.02
    denial_burst: int = 5
    depth_jump: int = 1
    model_threshold: float = 0.85


@dataclass(frozen=True, slots=True)
class Finding:
    detector: str
    points: float
    detail: str


def _once(profile: Profile, key: str, now: float, every: float) -> bool:
    """True if ``key`` has not fired within ``every`` seconds (and marks it fired)."""
    last = profile.fired.get(key)
    if last is not None and now - last < every:
        return False
    profile.fired[key] = now
    if len(profile.fired) > 1000:
        for stale in sorted(profile.fired, key=profile.fired.__getitem__)[:500]:
            del profile.fired[stale]
    return True


def _denial_burst(profile: Profile, obs: Observation, tuning: Tuning) -> Finding | None:
    count = profile.denials_now(obs.at) + 1
    if obs.denied and count >= tuning.denial_burst and _once(profile, DENIAL_BURST, obs.at, 60.0):
        return Finding(DENIAL_BURST, tuning.points[DENIAL_BURST], f"{count} denials within 60 s")
    return None


def _beyond_task(profile: Profile, obs: Observation, tuning: Tuning) -> Finding | None:
    if not obs.beyond_task:
        return None
    detail = f"'{obs.resource[:120]}' is outside task '{obs.task_id[:80]}'"
    return Finding(BEYOND_TASK, tuning.points[BEYOND_TASK], detail)


def _new_resource(profile: Profile, obs: Observation, tuning: Tuning) -> Finding | None:
    kind = obs.resource_type
    if kind and kind not in profile.resource_types:
        if _once(profile, f"{NEW_RESOURCE_TYPE}:{kind}", obs.at, 3600.0):
            detail = f"first access to type '{kind[:80]}'"
            return Finding(NEW_RESOURCE_TYPE, tuning.points[NEW_RESOURCE_TYPE], detail)
        return None
    new = bool(obs.resource) and obs.resource not in profile.resources
    if new and _once(profile, f"{NEW_RESOURCE}:{obs.resource}", obs.at, 3600.0):
        return Finding(NEW_RESOURCE, tuning.points[NEW_RESOURCE], f"first access to '{obs.resource[:120]}'")
    return None


def _new_action(profile: Profile, obs: Observation, tuning: Tuning) -> Finding | None:
    new = bool(obs.action) and obs.action not in profile.actions
    if new and _once(profile, f"{NEW_ACTION}:{obs.action}", obs.at, 3600.0):
        return Finding(
            NEW_ACTION, tuning.points[NEW_ACTION], f"action '{obs.action[:80]}' outside its usual set"
        )
    return None


def _rate_spike(profile: Profile, obs: Observation, tuning: Tuning) -> Finding | None:
    rate = profile.rate_now(obs.at) + 1
    usual = profile.rate_baseline
    limit = max(tuning.rate_factor * usual, usual + tuning.rate_floor)
    if rate > limit and _once(profile, RATE_SPIKE, obs.at, tuning.rate_refire):
        detail = f"{rate} events in 60 s against a usual {usual:.1f}"
        return Finding(RATE_SPIKE, tuning.points[RATE_SPIKE], detail)
    return None


def _off_hours(profile: Profile, obs: Observation, tuning: Tuning) -> Finding | None:
    hour = datetime.fromtimestamp(obs.at, UTC).hour
    rare = profile.hour_share(hour) < tuning.off_hours_share
    if rare and _once(profile, f"{OFF_HOURS}:{hour}", obs.at, 3600.0):
        detail = f"active at {hour:02d}:00 UTC, outside its usual hours"
        return Finding(OFF_HOURS, tuning.points[OFF_HOURS], detail)
    return None


def _new_zone(profile: Profile, obs: Observation, tuning: Tuning) -> Finding | None:
    new = bool(obs.zone) and obs.zone not in profile.zones
    if new and _once(profile, f"{NEW_ZONE}:{obs.zone}", obs.at, 3600.0):
        return Finding(
            NEW_ZONE, tuning.points[NEW_ZONE], f"first request from network zone '{obs.zone[:80]}'"
        )
    return None


def _delegation_jump(profile: Profile, obs: Observation, tuning: Tuning) -> Finding | None:
    deeper = obs.delegation_depth >= profile.max_depth + max(tuning.depth_jump, 1)
    if deeper and _once(profile, f"{DELEGATION_JUMP}:{obs.delegation_depth}", obs.at, 3600.0):
        detail = f"delegation depth {obs.delegation_depth} against a usual maximum of {profile.max_depth}"
        return Finding(DELEGATION_JUMP, tuning.points[DELEGATION_JUMP], detail)
    return None


Detector = Callable[[Profile, Observation, Tuning], "Finding | None"]
#: Judge from the first event.
ABSOLUTE: tuple[Detector, ...] = (_denial_burst, _beyond_task)
#: Judge against the baseline, once learning is over.
BASELINE: tuple[Detector, ...] = (
    _new_resource,
    _new_action,
    _rate_spike,
    _off_hours,
    _new_zone,
    _delegation_jump,
)


def evaluate(profile: Profile, obs: Observation, tuning: Tuning, *, learning: bool) -> list[Finding]:
    """Every detector's finding for ``obs``, judged against ``profile`` as it was before it."""
    detectors = ABSOLUTE if learning else ABSOLUTE + BASELINE
    return [f for f in (detector(profile, obs, tuning) for detector in detectors) if f is not None]


def learn(profile: Profile, obs: Observation, *, absorb: bool = True) -> None:
    """Fold ``obs`` into the baseline. Denied attempts, and (``absorb`` off) suspicious
    ones, count toward rate and denials only: an attack must not become the norm."""
    now = obs.at
    rate = profile.rate_now(now)
    profile.recent.append(now)
    if obs.denied:
        profile.denials.append(now)
    elif absorb:
        remember(profile.resources, obs.resource)
        remember(profile.resource_types, obs.resource_type)
        remember(profile.actions, obs.action)
        remember(profile.zones, obs.zone)
        profile.hours[datetime.fromtimestamp(now, UTC).hour] += 1
        profile.max_depth = max(profile.max_depth, obs.delegation_depth)
    # The usual rate moves slowly, and not toward a spike in progress.
    weight = 0.2 if profile.events < 20 else 0.02
    if profile.events < 20 or rate <= max(3 * profile.rate_baseline, profile.rate_baseline + 10):
        profile.rate_baseline += weight * (rate + 1 - profile.rate_baseline)
    profile.events += 1
    profile.updated_at = now
