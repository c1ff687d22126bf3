"""``--url`` pacing: the timeline replayed at a given speed against the real clock."""

from __future__ import annotations

from tessera.clock import ManualClock
from tessera.simulate.driver import RealTime


def paced(speed: float) -> tuple[RealTime, ManualClock, list[float]]:
    clock = ManualClock(1000.0)
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    return RealTime(speed, now=clock.now, sleep=sleep), clock, slept


def test_speed_maps_simulated_seconds_to_real_ones() -> None:
    timeline, clock, slept = paced(60.0)
    timeline.advance_to(5_000.0)  # the start: nothing to wait for
    timeline.advance_to(5_600.0)  # ten simulated minutes later: ten real seconds
    assert slept == [10.0]
    clock.advance(25.0)  # the requests themselves took longer than the gap
    timeline.advance_to(6_200.0)
    assert slept == [10.0]  # already late: no waiting
    assert timeline.now() == clock.now()


def test_speed_zero_never_waits() -> None:
    timeline, _clock, slept = paced(0.0)
    for at in (0.0, 3600.0, 86400.0):
        timeline.advance_to(at)
    assert slept == []
