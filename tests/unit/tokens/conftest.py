from __future__ import annotations

import pytest

from tessera.runtime import Runtime
from tests.unit.helpers import Client, register


@pytest.fixture
def client(runtime: Runtime) -> Client:
    """An active agent with one ES256 key and the scopes tickets:read and tickets:write."""
    return register(runtime)
