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
