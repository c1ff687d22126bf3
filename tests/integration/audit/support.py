"""Helpers for the audit integration tests: agents and tokens over HTTP, and a side door to the database."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine

from tessera.audit.records import SecretHasher
from tessera.config import Settings
from tessera.sdk.proofs import (
    client_assertion,
    dpop_proof,
    generate_private_jwk,
    load_private_jwk,
    public_jwk,
)
from tessera.storage.database import create_database_engine
from tessera.tokens.sealing import Sealer, load_or_create_master_key
from tests.support import ServerProcess

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: How long an asynchronous record may take to show up; a bound on a loop, not a timing assertion.
BOUND = 10.0


def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + BOUND
    while not check():
        assert time.monotonic() < deadline, f"never observed: {what}"
        time.sleep(0.05)


@contextmanager
def side_engine(database_url: str) -> Iterator[Engine]:
    """An engine of the test's own on the server's database, bypassing Tessera."""
    engine = create_database_engine(database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def audit_hmac(home: Path) -> SecretHasher:
    """The per-install audit key, derived as the server does, from the master key in its home."""
    key = load_or_create_master_key(None, Settings(home=home).master_key_path)
    return SecretHasher(Sealer(key).derive("tessera/audit-hmac/v1"))


def new_agent(admin: httpx.Client, name: str = "worker", **fields: Any) -> tuple[str, dict[str, Any]]:
    private = generate_private_jwk()
    body = {
        "name": name,
        "owner": "ops@example.com",
        "jwks": [public_jwk(private)],
        "scopes": ["a"],
        **fields,
    }
    response = admin.post("/admin/v1/agents", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"], private


@dataclass
class TokenAttempt:
    response: httpx.Response
    assertion: str
    proof: str | None

    @property
    def token(self) -> str:
        return str(self.response.json()["access_token"])


def request_token(
    http: httpx.Client, server: ServerProcess, agent_id: str, private: dict[str, Any], *, dpop: bool = False
) -> TokenAttempt:
    """A client_credentials request with a fresh private_key_jwt assertion (and a DPoP proof)."""
    key, kid, alg = load_private_jwk(private)
    assertion = client_assertion(key, kid, alg, client_id=agent_id, audience=server.url)
    url = f"{server.url}/oauth2/token"
    proof = dpop_proof(key, alg, method="POST", url=url) if dpop else None
    response = http.post(
        url,
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        },
        headers={"DPoP": proof} if proof else {},
    )
    return TokenAttempt(response, assertion, proof)


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    value: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return value


def search(admin: httpx.Client, **params: str) -> list[dict[str, Any]]:
    response = admin.get("/admin/v1/audit/records", params={"limit": "1000", **params})
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["records"]
    return found


def verify(admin: httpx.Client) -> dict[str, Any]:
    response = admin.get("/admin/v1/audit/verify")
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


def one_line_503(response: httpx.Response) -> str:
    assert response.status_code == 503, (response.status_code, response.text)
    body = response.json()
    assert body["error"] == "temporarily_unavailable", body
    assert "access_token" not in body
    description = str(body["error_description"])
    assert description
    assert "\n" not in description
    assert "audit" in description
    return description
