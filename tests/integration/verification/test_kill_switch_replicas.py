"""The kill switch across two server processes sharing one database (PostgreSQL and SQLite).

A kill made through replica A: B's introspection, B's token endpoint and B's
decisions refuse the agent, and an SDK verifier following B's revocation feed
refuses its token. Polls within a bound: a propagation check, not a timing test.
"""

from __future__ import annotations

import httpx
import pytest

from tessera.sdk.agent import AgentClient, TokenError
from tessera.sdk.revocations import RevocationFollower
from tessera.sdk.verifier import TokenVerifier, VerificationError
from tests.integration.conftest import Replicas
from tests.integration.helpers import assert_error, eventually, introspect, register_agent

pytestmark = pytest.mark.integration


def fetch(url: str, agent_id: str, key: dict[str, object], scope: str | None = None) -> str:
    client = AgentClient(url, agent_id, key)
    try:
        return client.fetch_token(scope=scope).access_token if scope else client.fetch_token().access_token
    finally:
        client.close()


def test_a_kill_through_one_replica_stops_the_agent_on_the_other(replicas: Replicas) -> None:
    a, b = replicas
    with a.admin() as admin:
        agent_id, key, _ = register_agent(admin, "target", scopes=["x"])
        other_id, other_key, _ = register_agent(admin, "bystander", scopes=["x"])
        pep_id, pep_key, _ = register_agent(admin, "pep", scopes=["authzen"])
    token = fetch(b.url, agent_id, key)
    bystander = fetch(b.url, other_id, other_key)
    # The PEP authenticates to b's feed as itself: scope authzen, audience and DPoP htu the
    # issuer's (a's url, as a load balancer's would be for every replica).
    pep = AgentClient(b.url, pep_id, pep_key)
    pep_token = pep.fetch_token(scope="authzen", resources=[a.url])
    follower = RevocationFollower(
        b.url, lambda m, u: pep.auth_headers(m, u.replace(b.url, a.url), pep_token), wait=2.0
    )
    verifier = TokenVerifier.for_server(a.url, revocations=follower)
    try:
        follower.poll_once()
        assert verifier.verify_token(token).client_id == agent_id

        with a.admin() as admin:
            response = admin.post("/admin/v1/kill", json={"agent": agent_id, "reason": "incident 7"})
        assert response.status_code == 201, response.text
        rule = response.json()
        assert set(rule) == {
            "id",
            "scope",
            "target",
            "reason",
            "revoked_tokens",
            "created_at",
            "released_at",
            "released_reason",
        }
        assert rule["scope"] == "agent"
        assert rule["target"] == agent_id
        assert rule["revoked_tokens"] == 1

        eventually(lambda: not introspect(b.url, token, admin=b.admin_token)["active"], "kill seen on b")
        with pytest.raises(TokenError) as refused:
            fetch(b.url, agent_id, key)
        assert refused.value.error == "unauthorized_client"
        assert rule["id"] in refused.value.description
        assert introspect(b.url, bystander, admin=b.admin_token)["active"]

        def sdk_refuses() -> bool:
            follower.poll_once(wait=1.0)
            try:
                verifier.verify_token(token)
            except VerificationError:
                return True
            return False

        eventually(sdk_refuses, "kill seen by the SDK through b's revocation feed")
        assert verifier.verify_token(bystander).client_id == other_id

        with b.admin() as admin:
            listed = admin.get("/admin/v1/kill").json()["kills"]
            assert [k["id"] for k in listed] == [rule["id"]]
            assert_error(
                admin.request("DELETE", f"/admin/v1/kill/{rule['id']}", json={}), 400, "invalid_request"
            )
            released = admin.request("DELETE", f"/admin/v1/kill/{rule['id']}", json={"reason": "contained"})
            assert released.status_code == 200, released.text
            assert released.json()["released_reason"] == "contained"
        eventually(lambda: fetch(a.url, agent_id, key), "release seen on a")
    finally:
        follower.stop()
        pep.close()


def test_the_kill_api_validates_its_input(replicas: Replicas) -> None:
    a, _ = replicas
    with a.admin() as admin:
        agent_id, _, _ = register_agent(admin, "x", scopes=["x"])
        for body in (
            {"reason": "no target"},
            {"agent": agent_id, "task": "T-1", "reason": "two targets"},
            {"agent": agent_id},
            {"agent": agent_id, "reason": ""},
            {"agent": agent_id, "reason": "x", "extra": 1},
            {"task": "x" * 400, "reason": "long"},
        ):
            assert_error(admin.post("/admin/v1/kill", json=body), 400, "invalid_request")
        assert_error(
            admin.post("/admin/v1/kill", json={"agent": "agt_nobody", "reason": "x"}), 404, "not_found"
        )
        assert_error(
            admin.request("DELETE", "/admin/v1/kill/kill_nothing", json={"reason": "x"}), 404, "not_found"
        )
        assert_error(admin.get("/admin/v1/agents/agt_nobody/risk"), 404, "not_found")
        risk = admin.get(f"/admin/v1/agents/{agent_id}/risk").json()
        assert risk == {"agent_id": agent_id, "score": 0, "reasons": [], "learning": True, "updated_at": None}
        assert_error(admin.post(f"/admin/v1/agents/{agent_id}/release", json={}), 400, "invalid_request")
        for params in ({"after": "-1"}, {"wait": "31"}, {"after": "x"}):
            assert_error(admin.get("/events/v1/revocations", params=params), 400, "invalid_request")
        snapshot = admin.get("/events/v1/revocations").json()
        assert snapshot["reset"] is True
        assert set(snapshot) == {"cursor", "reset", "revoked", "agents", "kills"}
        nothing = admin.get("/events/v1/revocations", params={"after": str(snapshot["cursor"]), "wait": "0"})
        assert nothing.status_code in (200, 204)
        huge = {"yaml": "#" * (70 * 1024)}
        assert admin.put("/admin/v1/playbooks", json=huge).status_code == 413
    for method, path in (
        ("POST", "/admin/v1/kill"),
        ("GET", "/admin/v1/kill"),
        ("GET", f"/admin/v1/agents/{agent_id}/risk"),
        ("PUT", "/admin/v1/playbooks"),
        ("POST", "/admin/v1/receivers"),
    ):
        assert_error(httpx.request(method, f"{a.url}{path}", json={}), 401)
    assert_error(httpx.get(f"{a.url}/events/v1/revocations"), 401)


def test_playbooks_and_receivers_through_the_api(replicas: Replicas) -> None:
    a, b = replicas
    with a.admin() as admin:
        assert admin.get("/admin/v1/playbooks").json()["source"] == "default"
        bad = admin.post("/admin/v1/playbooks/validate", json={"yaml": "playbooks: [{name: x}]"})
        assert "playbook 'x'" in assert_error(bad, 400, "invalid_request")["error_description"]
        text = "playbooks: [{name: watch, when: {risk_at_least: 30}, actions: [alert], cooldown: 60}]"
        assert admin.post("/admin/v1/playbooks/validate", json={"yaml": text}).json()["valid"]
        applied = admin.put("/admin/v1/playbooks", json={"yaml": text})
        assert applied.status_code == 200, applied.text
        assert_error(admin.post("/admin/v1/receivers", json={"url": "ftp://x"}), 400, "invalid_request")
        assert_error(admin.post("/admin/v1/receivers", json={"url": "https://u:p@x.example/"}), 400)
        added = admin.post(
            "/admin/v1/receivers", json={"url": "https://soc.example/events", "description": "soc"}
        )
        assert added.status_code == 201, added.text
    with b.admin() as admin:
        eventually(lambda: admin.get("/admin/v1/playbooks").json()["source"] == "applied", "playbooks on b")
        assert admin.get("/admin/v1/playbooks").json()["playbooks"][0]["name"] == "watch"
        eventually(lambda: admin.get("/admin/v1/receivers").json()["receivers"], "receivers on b")
        receiver_id = added.json()["id"]
        assert admin.delete(f"/admin/v1/receivers/{receiver_id}").status_code == 200
        assert_error(admin.delete(f"/admin/v1/receivers/{receiver_id}"), 404, "not_found")
