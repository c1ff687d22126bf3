"""``tessera issuer …``: registering trusted issuers through the admin API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.federation_issuer import LocalIssuer
from tests.support import ServerProcess
from tests.unit.cli.conftest import Cli


@pytest.fixture
def local_issuer() -> Iterator[LocalIssuer]:
    issuer = LocalIssuer().start()
    yield issuer
    issuer.stop()


def test_add_list_show_remove(cli: Cli, server: ServerProcess, local_issuer: LocalIssuer) -> None:
    out = cli.ok(
        "issuer", "add", local_issuer.issuer,
        "--jwks-url", local_issuer.jwks_url, "--allow-private-network",
        "--audience", server.url,
        "--require", "claims['kubernetes.io'].namespace=payments", "--require", "jti",
        "--map", "namespace=claims['kubernetes.io'].namespace",
        "--ephemeral", "--owner", "platform@example.com", "--scope", "reports:read", "--max-ttl", "120",
        "--region", "eu", "--alg", "ES256", "--max-lifetime", "900", "--jti-policy", "required",
    )  # fmt: skip
    issuer_id = out.split(":")[0]
    assert out == f"{issuer_id}: trusting '{local_issuer.issuer}'\n"
    shown = cli.json("issuer", "show", issuer_id)
    assert shown["required_claims"] == [
        {"claim": "claims['kubernetes.io'].namespace", "equals": "payments"},
        {"claim": "jti"},
    ]
    assert shown["attributes"] == {"namespace": "claims['kubernetes.io'].namespace"}
    assert shown["subject"] == {
        "type": "ephemeral",
        "owner": "platform@example.com",
        "scopes": ["reports:read"],
        "segment": None,
        "max_ttl": 120,
        "require_dpop": False,
    }
    assert (shown["algorithms"], shown["max_token_lifetime"], shown["region"]) == (["ES256"], 900, "eu")
    assert (shown["jti_policy"], shown["allow_private_network"]) == ("required", True)
    table = cli.ok("issuer", "show", issuer_id)
    assert local_issuer.jwks_url in table

    jwks_file = Path(cli.workdir) / "jwks.json"
    jwks_file.write_text(json.dumps(local_issuer.jwks()))
    static = cli.json(
        "issuer", "add", "spiffe://example.org", "--jwks-file", str(jwks_file), "--agent", "agt_fixed",
    )  # fmt: skip
    assert static["jwks"] == local_issuer.jwks()
    assert static["audiences"] == [server.url, f"{server.url}/oauth2/token"]

    spec = Path(cli.workdir) / "ci.json"
    spec.write_text(
        json.dumps(
            {
                "issuer": "https://token.actions.example",
                "jwks_url": "https://token.actions.example/.well-known/jwks",
                "required_claims": [{"claim": "repository", "equals": "acme/app"}],
                "subject": {"type": "claim", "claim": "repository", "agents": {"acme/app": "agt_ci"}},
            }
        )
    )
    from_file = cli.json("issuer", "add", "--file", str(spec))
    assert from_file["subject"]["agents"] == {"acme/app": "agt_ci"}

    listed = cli.json("issuer", "list")["issuers"]
    assert [i["id"] for i in listed] == [issuer_id, static["id"], from_file["id"]]
    table = cli.ok("issuer", "list")
    assert "3 trusted issuer(s)" in table
    assert "static (1 keys)" in table
    assert "agt_fixed" in table

    assert cli.json("issuer", "remove", static["id"]) == {"id": static["id"], "removed": True}
    assert cli.ok("issuer", "remove", issuer_id) == f"{issuer_id}: removed\n"
    assert [i["id"] for i in cli.json("issuer", "list")["issuers"]] == [from_file["id"]]
    with server.admin() as admin:
        records = admin.get("/admin/v1/audit/records", params={"type": "issuer.*"}).json()["records"]
    assert [r["type"] for r in records[:4]] == [
        "issuer.removed",
        "issuer.removed",
        "issuer.added",
        "issuer.added",
    ]


def test_issuer_errors(cli: Cli, local_issuer: LocalIssuer) -> None:
    base = ("issuer", "add", local_issuer.issuer, "--jwks-url", local_issuer.jwks_url)
    assert cli.fails(*base, "--agent", "agt_1") == (
        f"error: invalid_request: jwks_url '{local_issuer.jwks_url}' must use https "
        "(http only with allow_private_network)"
    )
    assert cli.fails(*base, "--allow-private-network") == (
        "error: give exactly one of --agent, --subject-map-claim or --ephemeral"
    )
    assert cli.fails(*base, "--ephemeral") == (
        "error: --ephemeral needs --owner EMAIL (who answers for these identities)"
    )
    assert cli.fails(*base, "--agent", "a", "--alg", "HS256", "--allow-private-network").startswith(
        "error: invalid_request: algorithm 'HS256' is not accepted"
    )
    assert cli.fails(*base, "--agent", "a", "--map", "ns", "--allow-private-network") == (
        "error: malformed --map 'ns': expected ATTR=PATH"
    )
    assert cli.fails(*base, "--agent", "a", "--map", "ns=__import__('os')", "--allow-private-network") == (
        "error: invalid_request: claim path '__import__('os')' must start with 'claims'"
    )
    assert (
        cli.fails("issuer", "add", "x", "--agent", "a")
        == "error: give exactly one of --jwks-url and --jwks-file"
    )
    assert cli.fails("issuer", "show", "iss_nope") == "error: not_found: no trusted issuer 'iss_nope'"
    assert cli.fails("issuer", "remove", "iss_nope") == "error: not_found: no trusted issuer 'iss_nope'"


def test_issuer_routes_require_the_admin_credential(server: ServerProcess) -> None:
    for method, path in (
        ("GET", "/admin/v1/issuers"),
        ("POST", "/admin/v1/issuers"),
        ("DELETE", "/admin/v1/issuers/x"),
    ):
        response = httpx.request(method, f"{server.url}{path}", json={}, timeout=10)
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"
