"""Fixtures for the policy tests: a runtime whose zone table knows a corporate network."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tessera.clock import ManualClock
from tessera.config import Settings
from tessera.runtime import Runtime

CORPORATE_IP = "10.1.2.3"
INTERNET_IP = "203.0.113.7"
ZONES = {"10.0.0.0/8": "corporate", "127.0.0.0/8": "local"}


@pytest.fixture
def zoned_runtime(settings: Settings, clock: ManualClock) -> Iterator[Runtime]:
    """Like ``runtime``, with 10.0.0.0/8 as the ``corporate`` zone."""
    rt = Runtime(settings.model_copy(update={"network_zones": ZONES}), clock=clock)
    rt.start(background=False)
    yield rt
    rt.stop()


@pytest.fixture
def second_runtime(settings: Settings, clock: ManualClock) -> Iterator[Runtime]:
    """Another worker on the same database (as a replica would be); ``follower.poll_once`` syncs it."""
    rt = Runtime(settings, clock=clock)
    rt.start(background=False)
    yield rt
    rt.stop()
