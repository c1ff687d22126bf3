"""Redaction: after a full flow, no raw token, assertion, proof or secret is anywhere in the audit trail."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tessera.sdk.proofs import client_assertion, load_private_jwk
from tests.integration.audit.support import (
    ASSERTION_TYPE,
    TokenAttempt,
    audit_hmac,
    claims,
    eventually,
    new_agent,
    request_token,
    search,
    side_engine,
)
from tests.support import ServerProcess
from tests.unit.audit.helpers import rows

pytestmark = pytest.mark.integration


@pytest.fixture
def sink_path(tmp_path: Path) -> Path:
    return tmp_path / "siem" / "audit.jsonl"


@pytest.fixture
def secret_server(tmp_path: Path, database_url: str, sink_path: Path) -> Iterator[ServerProcess]:
    env = {"TESSERA_ALLOW_CLIENT_SECRET": "true", "TESSERA_AUDIT_FILE_SINK": str(sink_path)}
    proc = ServerProcess(home=tmp_path / "home", database_url=database_url, env=env).start()
    yield proc
    proc.stop()


def granted(attempt: TokenAttempt) -> str:
    assert attempt.response.status_code == 200, attempt.response.text
    return attempt.token


def test_no_secret_reaches_the_audit_trail(
    secret_server: ServerProcess, database_url: str, sink_path: Path
) -> None:
    server = secret_server
    token_url = f"{server.url}/oauth2/token"
    secrets_seen: dict[str, str] = {"admin token": server.admin_token}
    with server.admin() as admin, httpx.Client(timeout=10) as http:
        agent_id, private = new_agent(admin, "redaction")
        with_dpop = request_token(http, server, agent_id, private, dpop=True)
        bearer = request_token(http, server, agent_id, private)
        tokens = {"dpop token": granted(with_dpop), "bearer token": granted(bearer)}
        assert with_dpop.proof is not None
        secrets_seen.update(
            {
                "dpop proof": with_dpop.proof,
                "assertion 1": with_dpop.assertion,
                "assertion 2": bearer.assertion,
            }
        )

        introspected = http.post(
            f"{server.url}/oauth2/introspect",
            data={"token": tokens["dpop token"]},
            headers={"Authorization": f"Bearer {server.admin_token}"},
        )
        assert introspected.json()["active"] is True
        key, kid, alg = load_private_jwk(private)
        revoke_assertion = client_assertion(key, kid, alg, client_id=agent_id, audience=server.url)
        secrets_seen["revocation assertion"] = revoke_assertion
        revoked = http.post(
            f"{server.url}/oauth2/revoke",
            data={
                "token": tokens["bearer token"],
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": revoke_assertion,
            },
        )
        assert revoked.status_code == 200, revoked.text

        made = admin.post(f"/admin/v1/agents/{agent_id}/secret")
        assert made.status_code == 201, made.text
        client_secret = made.json()["client_secret"]
        secrets_seen["client secret"] = client_secret
        basic = http.post(
            token_url, data={"grant_type": "client_credentials"}, auth=(agent_id, client_secret)
        )
        post = http.post(
            token_url,
            data={"grant_type": "client_credentials", "client_id": agent_id, "client_secret": client_secret},
        )
        tokens["secret_basic token"] = basic.json()["access_token"]
        tokens["secret_post token"] = post.json()["access_token"]

        # Refused requests are recorded too, and must not carry what was sent either.
        wrong_secret = secrets.token_urlsafe(32)
        garbage = "eyJhbGciOiJFUzI1NiJ9." + secrets.token_urlsafe(40)
        wrong_admin = "tsr_admin_" + secrets.token_urlsafe(30)
        secrets_seen.update(
            {"wrong secret": wrong_secret, "garbage assertion": garbage, "wrong admin": wrong_admin}
        )
        refused = [
            http.post(token_url, data={"grant_type": "client_credentials"}, auth=(agent_id, wrong_secret)),
            http.post(
                token_url,
                data={
                    "grant_type": "client_credentials",
                    "client_assertion_type": ASSERTION_TYPE,
                    "client_assertion": garbage,
                },
            ),
            http.post(  # a replayed assertion
                token_url,
                data={
                    "grant_type": "client_credentials",
                    "client_assertion_type": ASSERTION_TYPE,
                    "client_assertion": with_dpop.assertion,
                },
            ),
        ]
        assert all(400 <= r.status_code < 500 for r in refused), [r.text for r in refused]
        assert (
            http.get(
                f"{server.url}/admin/v1/agents", headers={"Authorization": f"Bearer {wrong_admin}"}
            ).status_code
            == 401
        )

        eventually(lambda: len(search(admin, type="token.denied")) == 3, "three token.denied records")
        eventually(lambda: len(search(admin, type="admin.denied")) == 1, "one admin.denied record")
        eventually(lambda: len(search(admin, type="token.introspected")) == 1, "one introspection record")

        # Searching by the raw token finds its records (it is HMAC'd the same way on the way in).
        dpop_types = {r["type"] for r in search(admin, token=tokens["dpop token"])}
        assert dpop_types == {"token.issued", "token.introspected"}
        bearer_types = {r["type"] for r in search(admin, token=tokens["bearer token"])}
        assert bearer_types == {"token.issued", "token.revoked"}

    hmac = audit_hmac(server.home)
    jtis = {name: claims(token)["jti"] for name, token in tokens.items()}
    with side_engine(database_url) as engine:
        stored = rows(engine)
    issued = {r["token_hash"] for r in stored if r["type"] == "token.issued"}
    assert issued == {hmac(jti) for jti in jtis.values()}, "token_hash is the HMAC of the jti"

    for name, token in tokens.items():
        secrets_seen[name] = token
        secrets_seen[f"{name} signature"] = token.rsplit(".", 1)[1]
        secrets_seen[f"{name} jti"] = jtis[name]
    for name in ("dpop proof", "assertion 1", "assertion 2", "revocation assertion"):
        secrets_seen[f"{name} signature"] = secrets_seen[name].rsplit(".", 1)[1]

    eventually(lambda: sink_path.exists() and sink_path.read_text().count("token.denied") == 3, "sink output")
    forwarded = sink_path.read_text()
    # Not vacuous: every committed record is forwarded, those appended inside a caller's
    # transaction (token.issued, agent.*, token.revoked…) as well as the writer's.
    forwarded_types = {json.loads(line)["type"] for line in forwarded.splitlines()}
    assert forwarded_types >= {
        "token.denied",
        "admin.denied",
        "token.issued",
        "agent.created",
        "token.revoked",
    }
    everything = {
        "database": "\n".join(json.dumps(row, default=str) for row in stored),
        "jsonl sink": forwarded,
    }
    for where, text in everything.items():
        leaked = [name for name, value in secrets_seen.items() if value in text]
        assert not leaked, f"{', '.join(leaked)} found in the {where}"
