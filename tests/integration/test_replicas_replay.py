"""Single-use values are single use across replicas (DESIGN.md security invariants).

One client assertion (RFC 7523 §3 ``jti``, RFC 7521 §4.2) or one DPoP proof
(RFC 9449 §11.1) is sent at the same moment to two server processes that share
one database: PostgreSQL, and SQLite in WAL mode shared by both processes.
Exactly one request wins; the other is refused.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tessera.sdk.agent import AgentClient
from tessera.sdk.proofs import client_assertion, dpop_proof, load_private_jwk
from tests.integration.helpers import ASSERTION_TYPE, assert_error, register_agent
from tests.support import ServerProcess

pytestmark = pytest.mark.integration

ROUNDS = 4


def race(
    servers: tuple[ServerProcess, ServerProcess], send: Callable[[httpx.Client], httpx.Response]
) -> list[httpx.Response]:
    """Call ``send`` against both servers at once (warm keep-alive connections, one barrier)."""
    clients = [httpx.Client(base_url=s.url, timeout=30) for s in servers]
    for client in clients:
        assert client.get("/healthz").status_code == 200  # open the connection before the race
    barrier = threading.Barrier(len(clients))
    results: list[httpx.Response | BaseException | None] = [None] * len(clients)

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = send(clients[index])
        except BaseException as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for client in clients:
        client.close()
    responses: list[httpx.Response] = []
    for result in results:
        if not isinstance(result, httpx.Response):
            raise AssertionError(f"request did not complete: {result!r}")
        responses.append(result)
    return responses


def winner_and_loser(responses: list[httpx.Response]) -> httpx.Response:
    statuses = sorted(r.status_code for r in responses)
    assert statuses[0] == 200, [r.text for r in responses]
    assert statuses.count(200) == 1, "both replicas accepted the same single-use value"
    return next(r for r in responses if r.status_code != 200)


@pytest.fixture
def agent(replicas: tuple[ServerProcess, ServerProcess]) -> tuple[str, Any, str, str]:
    first, _ = replicas
    with first.admin() as admin:
        agent_id, private_jwk, _ = register_agent(admin, "racer", scopes=["jobs:run"])
    key, kid, alg = load_private_jwk(private_jwk)
    return agent_id, key, kid, alg


def test_one_client_assertion_wins_on_one_replica_only(
    replicas: tuple[ServerProcess, ServerProcess], agent: tuple[str, Any, str, str]
) -> None:
    agent_id, key, kid, alg = agent
    issuer = replicas[0].url
    for _ in range(ROUNDS):
        assertion = client_assertion(key, kid, alg, client_id=agent_id, audience=issuer)
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        }
        responses = race(replicas, lambda client, form=form: client.post("/oauth2/token", data=form))
        loser = winner_and_loser(responses)
        body = assert_error(loser, 401, "invalid_client")
        assert "already been used" in body["error_description"]


def test_one_dpop_proof_wins_on_one_replica_only(
    replicas: tuple[ServerProcess, ServerProcess], agent: tuple[str, Any, str, str]
) -> None:
    agent_id, key, kid, alg = agent
    issuer = replicas[0].url
    for _ in range(ROUNDS):
        proof = dpop_proof(key, alg, method="POST", url=f"{issuer}/oauth2/token")

        def send(client: httpx.Client, proof: str = proof) -> httpx.Response:
            # A fresh assertion per request, so only the proof is shared.
            form = {
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": client_assertion(key, kid, alg, client_id=agent_id, audience=issuer),
            }
            return client.post("/oauth2/token", data=form, headers={"DPoP": proof})

        loser = winner_and_loser(race(replicas, send))
        body = assert_error(loser, 400, "invalid_dpop_proof")
        assert "already been used" in body["error_description"]


def test_client_assertion_at_introspection_is_single_use_across_replicas(
    replicas: tuple[ServerProcess, ServerProcess], agent: tuple[str, Any, str, str]
) -> None:
    agent_id, key, kid, alg = agent
    issuer = replicas[0].url
    form = {
        "token": "any-token",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": client_assertion(key, kid, alg, client_id=agent_id, audience=issuer),
    }
    responses = race(replicas, lambda client: client.post("/oauth2/introspect", data=form))
    loser = winner_and_loser(responses)
    assert_error(loser, 401, "invalid_client")
    winner = next(r for r in responses if r.status_code == 200)
    assert winner.json() == {"active": False}


def test_dpop_nonce_from_one_replica_is_accepted_by_the_other(start_replicas: Any) -> None:
    """RFC 9449 §8 nonces are derived from the shared master key, so any replica accepts them."""
    a, b = start_replicas(TESSERA_DPOP_NONCE_REQUIRED="true")
    with a.admin() as admin:
        agent_id, private_jwk, _ = register_agent(admin, "nonce", scopes=["jobs:run"])
    key, kid, alg = load_private_jwk(private_jwk)
    issuer = a.url

    def request(server: ServerProcess, nonce: str | None) -> httpx.Response:
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": client_assertion(key, kid, alg, client_id=agent_id, audience=issuer),
        }
        proof = dpop_proof(key, alg, method="POST", url=f"{issuer}/oauth2/token", nonce=nonce)
        return httpx.post(f"{server.url}/oauth2/token", data=form, headers={"DPoP": proof})

    challenge = request(a, None)
    assert_error(challenge, 400, "use_dpop_nonce")
    nonce = challenge.headers["dpop-nonce"]
    accepted = request(b, nonce)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["token_type"] == "DPoP"
    assert_error(request(b, "bm90LWEtbm9uY2U"), 400, "use_dpop_nonce")


def test_one_dpop_proof_at_the_authzen_api_wins_on_one_replica_only(
    replicas: tuple[ServerProcess, ServerProcess],
) -> None:
    """A DPoP-bound caller's proof is single use across replicas at the AuthZEN API too."""
    first, _ = replicas
    with first.admin() as admin:
        agent_id, private_jwk, _ = register_agent(admin, "pep", scopes=["authzen"])
    key, _kid, alg = load_private_jwk(private_jwk)
    client = AgentClient(first.url, agent_id, private_jwk)
    try:
        token = client.fetch_token(scope="authzen")
    finally:
        client.close()
    assert token.token_type == "DPoP"
    issuer = first.url
    question = {
        "subject": {"type": "Agent", "id": agent_id},
        "action": {"name": "read"},
        "resource": {"type": "Resource", "id": "doc-1"},
    }
    for _ in range(ROUNDS):
        proof = dpop_proof(
            key, alg, method="POST", url=f"{issuer}/access/v1/evaluation", access_token=token.access_token
        )
        headers = {"Authorization": f"DPoP {token.access_token}", "DPoP": proof}
        responses = race(
            replicas,
            lambda client, headers=headers: client.post(
                "/access/v1/evaluation", json=question, headers=headers
            ),
        )
        loser = winner_and_loser(responses)
        body = assert_error(loser, 401, "invalid_dpop_proof")
        assert "already been used" in body["error_description"]
