"""Fixtures for integration tests: replicas sharing one database, a long-lived SQLite server."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tessera.identity.admin_credentials import ADMIN_TOKEN_PREFIX, write_secret_file
from tessera.tokens.sealing import b64url_encode
from tests.support import ServerProcess

Replicas = tuple[ServerProcess, ServerProcess]


@pytest.fixture
def start_replicas(tmp_path: Path, database_url: str) -> Iterator[Callable[..., Replicas]]:
    """Start two server processes behind one issuer, sharing a database, master key and admin token.

    As replicas behind a load balancer: both answer for the same issuer identifier (the
    first one's URL), so an assertion or DPoP proof made for one is valid at the other.
    On SQLite they share one WAL-mode file (created and migrated by whichever starts
    first). Keyword arguments are extra ``TESSERA_*`` settings for both.
    """
    started: list[ServerProcess] = []

    def start(**settings: str) -> Replicas:
        home = tmp_path / f"home{len(started)}"
        # Shared secrets, as a deployment gives its replicas: the master key in the environment,
        # the admin token in the shared home (both adopt it). They start at the same time.
        write_secret_file(home / "admin-token", ADMIN_TOKEN_PREFIX + secrets.token_urlsafe(32))
        first = ServerProcess(home=home, database_url=database_url)
        env = {"TESSERA_ISSUER": first.url, "TESSERA_MASTER_KEY": b64url_encode(secrets.token_bytes(32))}
        env.update(settings)
        first.env.update(env)
        second = ServerProcess(home=home, database_url=database_url, env=dict(env))
        for proc in (first, second):
            started.append(proc.spawn())
        for proc in (first, second):
            proc.wait_healthy()
        return first, second

    yield start
    for proc in started:
        proc.terminate()
    for proc in started:
        proc.stop()


@pytest.fixture
def replicas(start_replicas: Callable[..., Replicas]) -> Replicas:
    return start_replicas()


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server on SQLite for a whole module, for checks that do not depend on the store."""
    base = tmp_path_factory.mktemp("server")
    proc = ServerProcess(home=base / "home", database_url=f"sqlite:///{base / 'tessera.db'}").start()
    yield proc
    proc.stop()
