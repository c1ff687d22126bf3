"""Each detector on a crafted sequence, against a baseline learned from ordinary work (no sleeps)."""

from __future__ import annotations

from datetime import UTC, datetime

from tessera.detect import detectors as d
from tessera.detect.detectors import Tuning, evaluate, learn
from tessera.detect.observations import Observation
from tessera.detect.profile import Profile

#: Monday 2026-11-23 09:00 UTC: the baseline is office hours.
MONDAY_9 = datetime(2026, 11, 23, 9, tzinfo=UTC).timestamp()
TUNING = Tuning(learning_events=20, learning_seconds=10 * 86400)


def ordinary(at: float, n: int = 0, **overrides: object) -> Observation:
    fields: dict[str, object] = {
        "agent_id": "agt_1",
        "at": at,
        "kind": "decision",
        "action": "read",
        "resource": f'Resource::"doc-{n % 5}"',
        "resource_type": "Resource",
        "zone": "corporate",
    }
    fields.update(overrides)
    return Observation(**fields)  # type: ignore[arg-type]


def baseline(events: int = 200) -> tuple[Profile, float]:
    """A profile that read doc-0..4 from the corporate zone, one request a minute, 09:00-12:20."""
    profile = Profile("agt_1", first_seen=MONDAY_9)
    at = MONDAY_9
    for n in range(events):
        at = MONDAY_9 + n * 60
        learn(profile, ordinary(at, n))
    return profile, at


def detectors_of(profile: Profile, obs: Observation, *, learning: bool = False) -> list[str]:
    return [f.detector for f in evaluate(profile, obs, TUNING, learning=learning)]


def test_ordinary_work_raises_nothing() -> None:
    profile, at = baseline()
    for n in range(20):
        assert detectors_of(profile, ordinary(at + 60 * (n + 1), n)) == []
        learn(profile, ordinary(at + 60 * (n + 1), n))


def test_first_access_to_a_resource_and_to_a_resource_type() -> None:
    profile, at = baseline()
    assert detectors_of(profile, ordinary(at + 60, resource='Resource::"doc-99"')) == [d.NEW_RESOURCE]
    other_type = ordinary(at + 120, resource='Secret::"k"', resource_type="Secret")
    assert detectors_of(profile, other_type) == [d.NEW_RESOURCE_TYPE]


def test_a_finding_fires_once_per_cause_not_on_every_event() -> None:
    profile, at = baseline()
    new = ordinary(at + 60, resource='Resource::"doc-99"')
    assert detectors_of(profile, new) == [d.NEW_RESOURCE]
    assert detectors_of(profile, ordinary(at + 61, resource='Resource::"doc-99"')) == []


def test_an_action_outside_the_usual_set() -> None:
    profile, at = baseline()
    assert detectors_of(profile, ordinary(at + 60, action="delete")) == [d.NEW_ACTION]


def test_a_rate_spike_against_its_own_history() -> None:
    profile, at = baseline()
    found: list[str] = []
    for i in range(40):  # 40 requests in 20 seconds against a usual one a minute
        obs = ordinary(at + 60 + i * 0.5, i)
        found += detectors_of(profile, obs)
        learn(profile, obs)
    assert d.RATE_SPIKE in found
    assert all(f == d.RATE_SPIKE for f in found)


def test_activity_outside_usual_hours() -> None:
    profile, _ = baseline()
    three_am = datetime(2026, 11, 24, 3, tzinfo=UTC).timestamp()
    assert detectors_of(profile, ordinary(three_am)) == [d.OFF_HOURS]


def test_a_new_network_zone() -> None:
    profile, at = baseline()
    assert detectors_of(profile, ordinary(at + 60, zone="unknown")) == [d.NEW_ZONE]


def test_a_burst_of_denials_counts_even_while_learning() -> None:
    profile = Profile("agt_1", first_seen=MONDAY_9)
    found: list[str] = []
    for i in range(5):
        obs = ordinary(MONDAY_9 + i, i, denied=True)
        found += detectors_of(profile, obs, learning=True)
        learn(profile, obs)
    assert found == [d.DENIAL_BURST]


def test_denials_spread_out_are_not_a_burst() -> None:
    profile, at = baseline()
    for i in range(10):
        obs = ordinary(at + 61 * (i + 1), i, denied=True)
        assert d.DENIAL_BURST not in detectors_of(profile, obs)
        learn(profile, obs)


def test_a_sudden_jump_in_delegation_depth() -> None:
    profile, at = baseline()
    assert detectors_of(profile, ordinary(at + 60, delegation_depth=2)) == [d.DELEGATION_JUMP]


def test_attempts_beyond_the_tasks_declared_resources_count_while_learning() -> None:
    profile = Profile("agt_1", first_seen=MONDAY_9)
    obs = ordinary(MONDAY_9, beyond_task=True, task_id="T-1")
    assert detectors_of(profile, obs, learning=True) == [d.BEYOND_TASK]


def test_baseline_detectors_are_silent_while_learning() -> None:
    profile, at = baseline(events=5)
    odd = ordinary(at + 60, resource='Secret::"k"', resource_type="Secret", zone="elsewhere", action="delete")
    assert detectors_of(profile, odd, learning=True) == []
    assert profile.learning(at, events=TUNING.learning_events, seconds=TUNING.learning_seconds)


def test_learning_ends_after_n_events_or_t_seconds() -> None:
    profile, at = baseline(events=20)
    assert not profile.learning(at, events=20, seconds=10 * 86400)
    young, _ = baseline(events=3)
    assert young.learning(MONDAY_9 + 3600, events=20, seconds=7200)
    assert not young.learning(MONDAY_9 + 7200, events=20, seconds=7200)


def test_suspicious_events_do_not_become_the_norm() -> None:
    profile, at = baseline()
    learn(profile, ordinary(at + 60, zone="elsewhere"), absorb=False)
    assert "elsewhere" not in profile.zones
    learn(profile, ordinary(at + 60, resource='Resource::"doc-7"', denied=True))
    assert 'Resource::"doc-7"' not in profile.resources


def test_a_profile_survives_its_json_snapshot() -> None:
    profile, at = baseline()
    copy = Profile.from_json("agt_1", profile.to_json())
    assert copy.resources == profile.resources
    assert copy.zones == profile.zones
    assert copy.hours == profile.hours
    assert copy.rate_baseline == profile.rate_baseline
    assert detectors_of(copy, ordinary(at + 60, zone="unknown")) == [d.NEW_ZONE]
