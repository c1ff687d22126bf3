"""The audit API on a real server, both stores: verify, export and check offline, prune, catch tampering."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tessera.audit.verify import keys_from_jwks, verify_export
from tests.integration.audit.support import eventually, new_agent, request_token, search, side_engine, verify
from tests.support import ServerProcess
from tests.unit.audit.helpers import rewrite_body, rows

pytestmark = pytest.mark.integration


def export(admin: httpx.Client, **params: str) -> list[str]:
    response = admin.get("/admin/v1/audit/export", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    return response.text.splitlines()


def test_search_verify_export_prune_and_tamper(server: ServerProcess, database_url: str) -> None:
    """One server per store for the whole API (starts are the slow part)."""
    check_admin_credential_required(server)
    with server.admin() as admin, httpx.Client(timeout=10) as http:
        agent_id, private = new_agent(admin)
        tokens = [request_token(http, server, agent_id, private).token for _ in range(3)]
        assert verify(admin)["ok"] is True

        created = search(admin, agent=agent_id, type="agent.created")
        assert [r["subject"] for r in created] == [agent_id]
        assert len(search(admin, agent=agent_id, type="token.*")) == 3
        assert len(search(admin, token=tokens[0])) == 1

        # The auditor's copy: the export and the public JWKS, fetched without any credential.
        lines = export(admin)
        jwks = http.get(f"{server.url}/.well-known/audit-jwks.json").json()
        report = verify_export(lines, keys_from_jwks(json.loads(json.dumps(jwks))))
        assert report.ok, report.problem
        # The route signs the head first; only reads recorded asynchronously may trail unsigned.
        assert report.checkpoints_verified >= 1

        # A partial export (the last hour) is widened to checkpoints and verifies just the same.
        partial = export(admin, since="1h", until=(datetime.now(UTC) + timedelta(hours=1)).isoformat())
        assert json.loads(partial[0])["requested"]["since"] is not None
        assert verify_export(partial, keys_from_jwks(jwks)).ok

        # Prune everything up to the newest checkpoint: the rest still verifies, the pruning is recorded.
        assert admin.post("/admin/v1/audit/checkpoint").status_code == 201
        before = (datetime.now(UTC) + timedelta(seconds=5)).isoformat()
        pruned = admin.post("/admin/v1/audit/prune", json={"before": before})
        assert pruned.status_code == 200, pruned.text
        assert pruned.json()["pruned"] > 0
        assert search(admin, type="audit.pruned")
        after_prune = verify(admin)
        assert after_prune["ok"] is True, after_prune
        assert after_prune["first_seq"] == pruned.json()["anchor_seq"] + 1
        assert verify_export(export(admin), keys_from_jwks(jwks)).ok

        for _ in range(3):
            request_token(http, server, agent_id, private)
        with side_engine(database_url) as engine:
            target = rows(engine)[-2]
            rewrite_body(engine, target["seq"], reason="nothing happened")
        report_json = verify(admin)
        assert report_json["ok"] is False
        assert (report_json["bad_seq"], report_json["bad_id"]) == (target["seq"], target["id"])
        assert "modified" in report_json["problem"]
        assert not verify_export(export(admin), keys_from_jwks(jwks)).ok


def check_admin_credential_required(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        for method, path in [
            ("GET", "/admin/v1/audit/records"),
            ("GET", "/admin/v1/audit/verify"),
            ("GET", "/admin/v1/audit/export"),
            ("POST", "/admin/v1/audit/prune"),
            ("POST", "/admin/v1/audit/checkpoint"),
            ("GET", "/admin/v1/audit/jwks"),
        ]:
            response = http.request(method, path, headers={"Authorization": "Bearer tsr_admin_wrong"})
            assert response.status_code == 401, (path, response.text)
        assert http.get("/.well-known/audit-jwks.json").status_code == 200
    with server.admin() as admin:
        # Refused calls are recorded without waiting (asynchronously).
        eventually(lambda: len(search(admin, type="admin.denied")) == 6, "six admin.denied records")
        denied = search(admin, type="admin.denied")
    assert all(r["actor"]["type"] == "admin" and r["actor"]["id"] is None for r in denied)
