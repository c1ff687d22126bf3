"""Lifecycle and key changes made on one replica reach the other through the change feed.

Each check polls replica B until the change made through replica A is visible,
within a generous bound: a propagation check, not a timing assertion.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest

from tessera.sdk.agent import AgentClient, TokenError
from tests.integration.conftest import Replicas
from tests.integration.helpers import assertion_form, eventually, introspect, jwt_parts, register_agent
from tests.support import ServerProcess

pytestmark = pytest.mark.integration


def jwks_kids(server: ServerProcess) -> set[str]:
    response = httpx.get(f"{server.url}/.well-known/jwks.json")
    assert response.status_code == 200
    return {key["kid"] for key in response.json()["keys"]}


def is_active(server: ServerProcess, token: str) -> bool:
    active: bool = introspect(server.url, token, admin=server.admin_token)["active"]
    return active


def fetch(server: ServerProcess, agent_id: str, key: dict[str, Any]) -> str:
    client = AgentClient(server.url, agent_id, key)
    try:
        return client.fetch_token().access_token
    finally:
        client.close()


def test_lifecycle_changes_on_a_reach_b(replicas: Replicas) -> None:
    a, b = replicas
    with a.admin() as admin:
        agents = {
            transition: register_agent(admin, transition, scopes=["x"])[:2]
            for transition in ("suspend", "quarantine", "decommission")
        }
    tokens = {name: fetch(b, *agent) for name, agent in agents.items()}
    for token in tokens.values():
        assert is_active(b, token)

    with a.admin() as admin:
        for transition, (agent_id, _) in agents.items():
            response = admin.post(f"/admin/v1/agents/{agent_id}/{transition}", json={"reason": "test"})
            assert response.status_code == 200, response.text
            assert response.json()["revoked_tokens"] == 1

    for transition, token in tokens.items():
        eventually(lambda token=token: not is_active(b, token), f"{transition} seen on replica b")
    for transition, (agent_id, key) in agents.items():
        with pytest.raises(TokenError) as refused:
            fetch(b, agent_id, key)
        assert refused.value.error == "unauthorized_client", transition

    # Resuming on A lets B issue again; the token revoked by the suspension stays dead.
    agent_id, key = agents["suspend"]
    with a.admin() as admin:
        assert admin.post(f"/admin/v1/agents/{agent_id}/resume").status_code == 200
    fresh = fetch(b, agent_id, key)
    eventually(lambda: is_active(b, fresh), "resume seen on replica b")
    assert not is_active(b, tokens["suspend"])
    assert not is_active(a, tokens["suspend"])


def test_revocation_on_a_reaches_b(replicas: Replicas) -> None:
    a, b = replicas
    with a.admin() as admin:
        agent_id, key, _ = register_agent(admin, scopes=["x"])
    client = AgentClient(b.url, agent_id, key)
    try:
        single = client.fetch_token().access_token
        tasked = [client.fetch_token(task={"task_id": "T-9", "purpose": "batch"}).access_token for _ in "ab"]
        other_task = client.fetch_token(task={"task_id": "T-10", "purpose": "batch"}).access_token
    finally:
        client.close()

    # RFC 7009 at A, by the client itself, for a token B issued.
    revoked = httpx.post(
        f"{a.url}/oauth2/revoke", data={"token": single, **assertion_form(key, agent_id, a.url)}
    )
    assert revoked.status_code == 200, revoked.text
    eventually(lambda: not is_active(b, single), "rfc 7009 revocation seen on b")

    # Revocation by task through A's admin API.
    with a.admin() as admin:
        by_task = admin.post("/admin/v1/tokens/revoke", json={"task_id": "T-9"})
    assert by_task.status_code == 200, by_task.text
    assert by_task.json()["revoked"] == 2
    for token in tasked:
        eventually(lambda token=token: not is_active(b, token), "task revocation seen on b")
    assert is_active(b, other_task)
    assert is_active(a, other_task)


def test_retiring_a_signing_key_on_a_kills_its_tokens_on_b(replicas: Replicas) -> None:
    a, b = replicas
    with a.admin() as admin:
        agent_id, key, _ = register_agent(admin, scopes=["x"])
    token = fetch(b, agent_id, key)
    kid = jwt_parts(token)[0]["kid"]
    assert kid in jwks_kids(b)
    assert is_active(b, token)

    with a.admin() as admin:
        retired = admin.post(f"/admin/v1/keys/{kid}/retire")
        assert retired.status_code == 200, retired.text
        states = {k["kid"]: k["state"] for k in admin.get("/admin/v1/keys").json()["keys"]}
    assert states[kid] == "retired"
    assert "active" in states.values(), "a new signing key replaces the retired one"
    assert kid not in jwks_kids(a)
    assert not is_active(a, token)

    eventually(lambda: not is_active(b, token), "retired key's token inactive on b")
    eventually(lambda: kid not in jwks_kids(b), "retired key gone from b's jwks")

    def new_token_from_b() -> str | None:
        fresh = fetch(b, agent_id, key)
        return fresh if jwt_parts(fresh)[0]["kid"] != kid else None

    fresh = eventually(new_token_from_b, "b signs with the replacement key")
    assert is_active(a, fresh)


def test_rotated_key_is_published_before_it_signs(start_replicas: Any) -> None:
    a, b = start_replicas(TESSERA_SIGNING_KEY_PUBLISH_DELAY="2")
    with a.admin() as admin:
        agent_id, key, _ = register_agent(admin, scopes=["x"])
    old_token = fetch(a, agent_id, key)
    old_kid = jwt_parts(old_token)[0]["kid"]

    with a.admin() as admin:
        rotated = admin.post("/admin/v1/keys/rotate")
    assert rotated.status_code == 201, rotated.text
    new_kid = rotated.json()["kid"]
    activates_at = datetime.fromisoformat(rotated.json()["activates_at"]).timestamp()
    assert new_kid != old_kid
    assert {old_kid, new_kid} <= jwks_kids(a)
    eventually(lambda: new_kid in jwks_kids(b), "new key published on b")

    def signed_by_new_key(server: ServerProcess) -> bool:
        header, claims = jwt_parts(fetch(server, agent_id, key))
        if header["kid"] != new_kid:
            return False
        assert claims["iat"] >= int(activates_at), "the new key signed before its activation time"
        return True

    for server in (a, b):
        eventually(lambda server=server: signed_by_new_key(server), f"new key signing on {server.url}")
    # The old key keeps verifying its tokens, on both replicas, and stays published.
    assert is_active(a, old_token)
    assert is_active(b, old_token)
    assert old_kid in jwks_kids(b)
