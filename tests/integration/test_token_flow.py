"""The flow as a user runs it, over HTTP against a real server, on SQLite and PostgreSQL.

Admin registers agents; an agent gets a DPoP-bound, task-bound token with the SDK;
introspection answers only those entitled to see it (RFC 7662 §4); revocation
(RFC 7009) makes it inactive; and a storage failure while revoking is reported
(503), never a silent 200.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from sqlalchemy import text

from tessera.sdk.agent import AgentClient, TokenError
from tessera.storage.database import create_database_engine, writing
from tests.integration.helpers import (
    assert_error,
    assertion_form,
    introspect,
    jwt_parts,
    register_agent,
)
from tests.support import ServerProcess

pytestmark = pytest.mark.integration

API = "https://api.example/tickets"
TASK = {"task_id": "T-42", "purpose": "triage new tickets", "resources": [API], "actions": ["read"]}


def test_register_fetch_introspect_revoke(server: ServerProcess) -> None:
    with server.admin() as admin:
        agent_id, key, view = register_agent(admin, "triage", scopes=["tickets:read", "tickets:write"])
        rs_id, rs_key, _ = register_agent(admin, "tickets-api", resource_uris=[API])
        other_id, other_key, _ = register_agent(admin, "bystander")
    assert view["state"] == "active"
    assert view["client_id"] == agent_id

    agent = AgentClient(server.url, agent_id, key)
    try:
        token = agent.fetch_token(scope="tickets:read", resources=[API], task=TASK)
    finally:
        agent.close()
    assert token.token_type == "DPoP"
    assert token.expires_in == 300
    assert token.scope == "tickets:read"
    assert token.authorization_details[0]["task_id"] == "T-42"
    header, claims = jwt_parts(token.access_token)
    assert header["typ"] == "at+jwt"
    assert claims["aud"] == API
    assert claims["cnf"]["jkt"]

    issuer = server.url
    own = introspect(server.url, token.access_token, **assertion_form(key, agent_id, issuer))
    assert own["active"] is True
    assert own["client_id"] == agent_id
    assert own["sub"] == agent_id
    assert own["scope"] == "tickets:read"
    assert own["aud"] == [API]
    assert own["token_type"] == "DPoP"
    assert own["cnf"] == claims["cnf"]
    assert own["authorization_details"][0]["task_id"] == "T-42"
    assert own["exp"] - own["iat"] == 300

    assert introspect(server.url, token.access_token, admin=server.admin_token) == own
    assert introspect(server.url, token.access_token, **assertion_form(rs_key, rs_id, issuer)) == own
    assert introspect(server.url, token.access_token, **assertion_form(other_key, other_id, issuer)) == {
        "active": False
    }
    # Forged, unknown and malformed tokens are exactly inactive, even to the admin.
    forged = token.access_token[:-6] + ("AAAAAA" if not token.access_token.endswith("AAAAAA") else "BBBBBB")
    for bogus in (forged, "not-a-token", "a.b.c", token.access_token + "x" * 10000):
        assert introspect(server.url, bogus, admin=server.admin_token) == {"active": False}

    # Another agent may not revoke it: an error, and the token stays live.
    refused = httpx.post(
        f"{server.url}/oauth2/revoke",
        data={"token": token.access_token, **assertion_form(other_key, other_id, issuer)},
    )
    assert_error(refused, 400, "unauthorized_client")
    assert introspect(server.url, token.access_token, admin=server.admin_token)["active"] is True

    revoked = httpx.post(
        f"{server.url}/oauth2/revoke",
        data={"token": token.access_token, **assertion_form(key, agent_id, issuer)},
    )
    assert revoked.status_code == 200, revoked.text
    for auth in ({"admin": server.admin_token}, assertion_form(key, agent_id, issuer)):
        assert introspect(server.url, token.access_token, **auth) == {"active": False}

    # RFC 7009 §2.2: revoking an already revoked or unknown token is still a 200.
    again = httpx.post(
        f"{server.url}/oauth2/revoke",
        data={"token": token.access_token},
        headers={"Authorization": f"Bearer {server.admin_token}"},
    )
    assert again.status_code == 200
    unknown = httpx.post(
        f"{server.url}/oauth2/revoke",
        data={"token": "not-a-token"},
        headers={"Authorization": f"Bearer {server.admin_token}"},
    )
    assert unknown.status_code == 200


def test_introspection_and_revocation_require_authentication(server: ServerProcess) -> None:
    with server.admin() as admin:
        agent_id, key, _ = register_agent(admin, scopes=["a"])
    agent = AgentClient(server.url, agent_id, key)
    try:
        token = agent.fetch_token().access_token
    finally:
        agent.close()
    for endpoint in ("/oauth2/introspect", "/oauth2/revoke"):
        anonymous = httpx.post(f"{server.url}{endpoint}", data={"token": token})
        assert_error(anonymous, 401, "invalid_client")
        wrong_admin = httpx.post(
            f"{server.url}{endpoint}", data={"token": token}, headers={"Authorization": "Bearer nope"}
        )
        assert_error(wrong_admin, 401, "invalid_client")
        assert wrong_admin.headers["www-authenticate"].startswith("Bearer")
    assert introspect(server.url, token, admin=server.admin_token)["active"] is True


@contextmanager
def issued_tokens_unavailable(database_url: str) -> Iterator[None]:
    """Make the token store fail: rename ``issued_tokens`` away, and back afterwards."""
    engine = create_database_engine(database_url)
    try:
        with writing(engine) as conn:
            conn.execute(text("ALTER TABLE issued_tokens RENAME TO issued_tokens_away"))
        try:
            yield
        finally:
            with writing(engine) as conn:
                conn.execute(text("ALTER TABLE issued_tokens_away RENAME TO issued_tokens"))
    finally:
        engine.dispose()


def test_storage_failure_while_revoking_is_an_error(server: ServerProcess, database_url: str) -> None:
    with server.admin() as admin:
        agent_id, key, _ = register_agent(admin, scopes=["a"])
    agent = AgentClient(server.url, agent_id, key)
    try:
        token = agent.fetch_token().access_token
        with issued_tokens_unavailable(database_url):
            failed = httpx.post(
                f"{server.url}/oauth2/revoke",
                data={"token": token, **assertion_form(key, agent_id, server.url)},
            )
            assert_error(failed, 503, "temporarily_unavailable")
            with server.admin() as admin:
                by_admin = admin.post("/admin/v1/tokens/revoke", json={"agent_id": agent_id})
            assert_error(by_admin, 503, "temporarily_unavailable")
            # Issuing fails closed too: no token is handed out that could not be recorded.
            with pytest.raises(TokenError) as refused:
                agent.fetch_token()
            assert refused.value.status == 503
            assert introspect(server.url, token, admin=server.admin_token)["active"] is True
        # Once storage is back, the same revocation succeeds and takes effect.
        retried = httpx.post(
            f"{server.url}/oauth2/revoke",
            data={"token": token, **assertion_form(key, agent_id, server.url)},
        )
        assert retried.status_code == 200
        assert introspect(server.url, token, admin=server.admin_token) == {"active": False}
    finally:
        agent.close()


def test_storage_failure_during_a_revoking_transition_is_an_error(
    server: ServerProcess, database_url: str
) -> None:
    """The kill switch must not half-happen: a 503 with a reason, the agent unchanged, tokens live."""
    transitions = ("suspend", "quarantine", "decommission")
    with server.admin() as admin:
        agents = {name: register_agent(admin, name, scopes=["a"])[:2] for name in transitions}
        tokens = {}
        for name, (agent_id, key) in agents.items():
            client = AgentClient(server.url, agent_id, key)
            try:
                tokens[name] = client.fetch_token().access_token
            finally:
                client.close()
        with issued_tokens_unavailable(database_url):
            for name, (agent_id, _) in agents.items():
                failed = admin.post(f"/admin/v1/agents/{agent_id}/{name}")
                assert_error(failed, 503, "temporarily_unavailable")
                # The same keep-alive connection still serves the next request.
                assert admin.get(f"/admin/v1/agents/{agent_id}").json()["state"] == "active"
        for name, (agent_id, _) in agents.items():
            assert introspect(server.url, tokens[name], admin=server.admin_token)["active"] is True
            done = admin.post(f"/admin/v1/agents/{agent_id}/{name}")
            assert done.status_code == 200, done.text
            assert introspect(server.url, tokens[name], admin=server.admin_token) == {"active": False}
