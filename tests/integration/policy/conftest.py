"""Fixtures for the policy integration tests: servers whose zone table knows a corporate network."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import ServerProcess

ZONES = json.dumps({"10.0.0.0/8": "corporate", "127.0.0.0/8": "local"})
CORPORATE_IP = "10.1.2.3"


@pytest.fixture
def start_server(tmp_path: Path, database_url: str) -> Iterator[Callable[[], ServerProcess]]:
    """Start servers on one database, with the corporate zone table; all stopped at the end."""
    started: list[ServerProcess] = []

    def start() -> ServerProcess:
        proc = ServerProcess(
            home=tmp_path / f"home{len(started)}",
            database_url=database_url,
            env={"TESSERA_NETWORK_ZONES": ZONES},
        )
        if started:  # replicas share the first one's admin credential and master key
            proc.home = started[0].home
        started.append(proc)
        return proc.start()

    yield start
    for proc in reversed(started):
        proc.stop()


@pytest.fixture
def policy_server(start_server: Callable[[], ServerProcess]) -> ServerProcess:
    return start_server()
