"""Servers for the AuthZEN certification scenario: the example bundle, as ``make authzen-example`` runs it.

``certification`` is configured like the Makefile target (``TESSERA_POLICY_BUNDLE`` and
``TESSERA_AUTHZEN_ALLOW_ANONYMOUS=true``); ``authenticated`` has the bundle but the
default (credentials required). A :class:`Harness` sends the scenario's requests as one
kind of caller: anonymous, the admin credential, or an agent's DPoP-bound token with
scope ``authzen``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tessera.sdk.agent import AgentClient, TokenResponse
from tests.integration.helpers import register_agent
from tests.support import ServerProcess

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "authzen-certification"
#: The settings ``make authzen-example`` passes to ``tessera serve``.
CERTIFICATION_ENV = {
    "TESSERA_POLICY_BUNDLE": str(EXAMPLE),
    "TESSERA_AUTHZEN_ALLOW_ANONYMOUS": "true",
}


def start(base: Path, **env: str) -> ServerProcess:
    server = ServerProcess(home=base / "home", database_url=f"sqlite:///{base / 'tessera.db'}", env=env)
    return server.start()


@pytest.fixture(scope="module")
def certification(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start(tmp_path_factory.mktemp("certification"), **CERTIFICATION_ENV)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def authenticated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start(tmp_path_factory.mktemp("authenticated"), TESSERA_POLICY_BUNDLE=str(EXAMPLE))
    yield server
    server.stop()


@dataclass
class Harness:
    """Sends requests to one server as one kind of caller; ``auth`` builds per-request headers."""

    base: str
    auth: Callable[[str, str], dict[str, str]] = field(default=lambda _method, _url: {})
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))
    closing: list[Callable[[], None]] = field(default_factory=list)

    def post(
        self, path: str, body: Any = None, *, headers: dict[str, str] | None = None, raw: bytes | None = None
    ) -> httpx.Response:
        url = f"{self.base}{path}"
        sent = {**self.auth("POST", url), **(headers or {})}
        if raw is not None:
            return self.http.post(url, content=raw, headers=sent)
        sent.setdefault("Content-Type", "application/json")
        return self.http.post(url, content=json.dumps(body).encode(), headers=sent)

    def get(self, path: str) -> httpx.Response:
        return self.http.get(f"{self.base}{path}")

    def close(self) -> None:
        for close in [self.http.close, *self.closing]:
            close()


def _agent_harness(server: ServerProcess) -> Harness:
    """An agent registered with scope ``authzen`` fetches a DPoP-bound token, as docs/authzen.md shows."""
    with server.admin() as admin:
        agent_id, private_jwk, _ = register_agent(admin, "authzen-pep", scopes=["authzen"])
    client = AgentClient(server.url, agent_id, private_jwk)
    token: TokenResponse = client.fetch_token(scope="authzen")
    assert token.token_type == "DPoP"
    harness = Harness(server.url, lambda method, url: client.auth_headers(method, url, token))
    harness.closing.append(client.close)
    return harness


@pytest.fixture(scope="module", params=["anonymous", "admin", "agent"])
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    """The scenario as the certification harness runs it (anonymous), and with each credential."""
    if request.param == "anonymous":
        server: ServerProcess = request.getfixturevalue("certification")
        harness = Harness(server.url)
    else:
        server = request.getfixturevalue("authenticated")
        if request.param == "admin":
            token = server.admin_token
            harness = Harness(server.url, lambda _method, _url: {"Authorization": f"Bearer {token}"})
        else:
            harness = _agent_harness(server)
    yield harness
    harness.close()
