"""A runtime whose learning period is short, with a corporate zone, and a second worker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tessera.clock import ManualClock
from tessera.config import Settings
from tessera.runtime import Runtime

ZONES = {"10.0.0.0/8": "corporate", "127.0.0.0/8": "local"}
FAST = {"network_zones": ZONES, "risk_learning_events": 10, "risk_half_life": 600.0}


@pytest.fixture
def detecting(settings: Settings, clock: ManualClock) -> Iterator[Runtime]:
    rt = Runtime(settings.model_copy(update=FAST), clock=clock)
    rt.start(background=False)
    yield rt
    rt.stop()


@pytest.fixture
def detecting_replica(settings: Settings, clock: ManualClock) -> Iterator[Runtime]:
    rt = Runtime(settings.model_copy(update=FAST), clock=clock)
    rt.start(background=False)
    yield rt
    rt.stop()
