"""Fail closed over HTTP: with the audit store unwritable the server answers 503 and changes nothing."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import Engine

from tests.integration.audit.support import (
    new_agent,
    one_line_503,
    request_token,
    search,
    side_engine,
    verify,
)
from tests.support import ServerProcess
from tests.unit.audit.helpers import audit_down, rows

pytestmark = pytest.mark.integration


def changes(engine: Engine) -> list[str]:
    """Ids of the records that stand for an issued token or a change (reads are recorded asynchronously)."""
    return [
        r["id"]
        for r in rows(engine)
        if r["type"].split(".")[0] in ("token", "agent", "key")
        and r["type"] not in ("token.introspected", "token.denied")
    ]


def introspect(server: ServerProcess, token: str) -> bool:
    response = httpx.post(
        f"{server.url}/oauth2/introspect",
        data={"token": token},
        headers={"Authorization": f"Bearer {server.admin_token}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return bool(response.json()["active"])


def test_an_unwritable_audit_store_stops_issuing_and_changes(
    server: ServerProcess, database_url: str
) -> None:
    with server.admin() as admin, httpx.Client(timeout=30) as http, side_engine(database_url) as engine:
        agent_id, private = new_agent(admin)
        live = request_token(http, server, agent_id, private).token
        agents_before = admin.get("/admin/v1/agents").json()["agents"]
        changes_before = changes(engine)

        with audit_down(engine):
            # No token leaves the server unrecorded.
            for dpop in (False, True):
                attempt = request_token(http, server, agent_id, private, dpop=dpop)
                assert "token.issued" in one_line_503(attempt.response)
                assert "eyJ" not in attempt.response.text
            # Admin changes are refused whole: the change and its record, or neither.
            one_line_503(admin.post("/admin/v1/agents", json={"name": "ghost", "owner": "o@example.com"}))
            one_line_503(admin.post(f"/admin/v1/agents/{agent_id}/suspend", json={"reason": "incident"}))
            one_line_503(admin.post("/admin/v1/tokens/revoke", json={"agent_id": agent_id}))
            one_line_503(admin.post("/admin/v1/keys/rotate", json={}))
            # Reads still answer.
            assert admin.get("/admin/v1/agents").json()["agents"] == agents_before
            assert introspect(server, live) is True, "a refused revocation leaves the token live"

        assert changes(engine) == changes_before
        assert admin.get("/admin/v1/agents").json()["agents"] == agents_before
        assert admin.get(f"/admin/v1/agents/{agent_id}").json()["state"] == "active"
        assert introspect(server, live) is True

        # Restored: the same operations go through, recorded, and the chain is consistent.
        fresh = request_token(http, server, agent_id, private)
        assert fresh.response.status_code == 200, fresh.response.text
        suspended = admin.post(f"/admin/v1/agents/{agent_id}/suspend", json={"reason": "incident"})
        assert suspended.status_code == 200, suspended.text
        assert introspect(server, live) is False
        assert [r["type"] for r in search(admin, agent=agent_id, type="agent.suspended")] == [
            "agent.suspended"
        ]
        report = verify(admin)
        assert report["ok"] is True, report
