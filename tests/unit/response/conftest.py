"""Two workers on one database (a replica's view through the change feed), on a manual clock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tessera.clock import ManualClock
from tessera.config import Settings
from tessera.runtime import Runtime


@pytest.fixture
def replica(settings: Settings, clock: ManualClock) -> Iterator[Runtime]:
    rt = Runtime(settings, clock=clock)
    rt.start(background=False)
    yield rt
    rt.stop()


ZONES = {"10.0.0.0/8": "corporate", "127.0.0.0/8": "local"}
FAST = {"network_zones": ZONES, "risk_learning_events": 10, "risk_half_life": 600.0}


@pytest.fixture
def responding(settings: Settings, clock: ManualClock) -> Iterator[Runtime]:
    """A runtime with a short learning period and a corporate zone; playbooks run in the stream."""
    rt = Runtime(settings.model_copy(update=FAST), clock=clock)
    rt.start(background=False)
    yield rt
    rt.stop()


@pytest.fixture
def responding_replica(settings: Settings, clock: ManualClock) -> Iterator[Runtime]:
    rt = Runtime(settings.model_copy(update=FAST), clock=clock)
    rt.start(background=False)
    yield rt
    rt.stop()
