"""Crash: ``kill -9`` the server under load; every acknowledged record survives and the chain verifies."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.audit.support import (
    audit_hmac,
    claims,
    eventually,
    new_agent,
    request_token,
    search,
    side_engine,
    verify,
)
from tests.support import ServerProcess
from tests.unit.audit.helpers import rows

pytestmark = pytest.mark.integration

TOKEN_WORKERS = 4
REQUESTS_PER_WORKER = 500  # a bound: the server is killed long before the workers run out
KILL_AFTER_TOKENS = 60
KILL_AFTER_AGENTS = 8


class Load:
    """Clients hammering the server; they keep what the server acknowledged, and stop on the first error."""

    def __init__(self, server: ServerProcess, agents: list[tuple[str, dict[str, Any]]]) -> None:
        self.server = server
        self.agents = agents
        self.tokens: list[str] = []
        self.created: list[str] = []
        self.threads = [threading.Thread(target=self.issue, args=(n,)) for n in range(TOKEN_WORKERS)]
        self.threads.append(threading.Thread(target=self.administer))

    def issue(self, n: int) -> None:
        agent_id, private = self.agents[n % len(self.agents)]
        with httpx.Client(timeout=30) as http:
            for _ in range(REQUESTS_PER_WORKER):
                try:
                    attempt = request_token(http, self.server, agent_id, private, dpop=n % 2 == 0)
                except httpx.HTTPError:
                    return
                if attempt.response.status_code == 200:
                    self.tokens.append(attempt.token)

    def administer(self) -> None:
        with self.server.admin() as admin:
            for n in range(REQUESTS_PER_WORKER):
                try:
                    response = admin.post(
                        "/admin/v1/agents", json={"name": f"load{n}", "owner": "o@example.com"}
                    )
                except httpx.HTTPError:
                    return
                if response.status_code == 201:
                    self.created.append(response.json()["id"])

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def join(self) -> None:
        for thread in self.threads:
            thread.join()


def test_kill_9_under_load_loses_no_acknowledged_record(tmp_path: Path, database_url: str) -> None:
    home = tmp_path / "home"
    server = ServerProcess(home=home, database_url=database_url).start()
    try:
        with server.admin() as admin:
            agents = [new_agent(admin, f"crash{i}") for i in range(2)]
        load = Load(server, agents)
        load.start()
        eventually(
            lambda: len(load.tokens) >= KILL_AFTER_TOKENS and len(load.created) >= KILL_AFTER_AGENTS,
            "load under way",
        )
        assert server.process is not None
        server.process.kill()  # SIGKILL: no shutdown, no flush, mid-request
        server.process.wait()
        load.join()
    finally:
        server.stop()
    tokens, created = list(load.tokens), list(load.created)

    restarted = ServerProcess(home=home, database_url=database_url).start()
    try:
        hmac = audit_hmac(home)
        with side_engine(database_url) as engine:
            stored = rows(engine)
        issued = {r["token_hash"] for r in stored if r["type"] == "token.issued"}
        missing_tokens = [t for t in tokens if hmac(claims(t)["jti"]) not in issued]
        assert not missing_tokens, (
            f"{len(missing_tokens)} of {len(tokens)} acknowledged tokens have no record"
        )
        recorded_agents = {r["subject"] for r in stored if r["type"] == "agent.created"}
        missing_agents = [a for a in created if a not in recorded_agents]
        assert not missing_agents, (
            f"{len(missing_agents)} of {len(created)} acknowledged agents have no record"
        )
        with restarted.admin() as admin:
            # The same through the API, for the last acknowledged ones: the likeliest to be lost.
            for token in tokens[-5:]:
                assert [r["type"] for r in search(admin, token=token)] == ["token.issued"]
            for agent_id in created[-3:]:
                assert search(admin, agent=agent_id, type="agent.created")
            report = verify(admin)
            assert report["ok"] is True, report
            assert report["records"] >= len(stored)  # and the reads recorded since
            # And the restarted server extends the same chain.
            agent_id, private = agents[0]
            with httpx.Client(timeout=10) as http:
                after = request_token(http, restarted, agent_id, private).response
                assert after.status_code == 200, (after.text, restarted.log_tail())
            assert verify(admin)["ok"] is True
    finally:
        restarted.stop()
