from __future__ import annotations

import pytest

from tessera.runtime import Runtime
from tests.unit.helpers import Client, register


@pytest.fixture
def client(runtime: Runtime) -> Client:
    return register(runtime)
