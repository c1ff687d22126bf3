"""The Kubernetes-style federated workload of docs/federation.md, run as written, over HTTP.

A real server process; the example issuer (``examples/federation/workload_issuer.py``)
serving its JWKS on loopback and printing projected service-account tokens; the
``tessera issuer`` CLI registering it; ``curl``'s requests made with httpx. On
SQLite and PostgreSQL.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tessera.federation.identities import ephemeral_agent_id
from tessera.tokens.grants.jwt_bearer import GRANT_TYPE
from tests.support import ServerProcess, free_port
from tests.unit.cli.conftest import Cli, base_env

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "federation" / "workload_issuer.py"
SUBJECT = "system:serviceaccount:payments:reporter"


class WorkloadIssuer:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def run(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, str(SCRIPT), "--dir", str(self.directory), *args],
            capture_output=True,
            check=True,
            timeout=60,
        )
        return done.stdout.decode().strip()

    def start(self) -> WorkloadIssuer:
        self.process = subprocess.Popen(
            [sys.executable, str(SCRIPT), "--dir", str(self.directory), "serve", "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(300):  # bounded wait for the process to listen
            try:
                if httpx.get(f"{self.url}/openid/v1/jwks", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise AssertionError("the example issuer did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def workload_issuer(tmp_path: Path) -> Iterator[WorkloadIssuer]:
    issuer = WorkloadIssuer(tmp_path / "workload-issuer").start()
    yield issuer
    issuer.stop()


def token_request(server: ServerProcess, assertion: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/oauth2/token", data={"grant_type": GRANT_TYPE, "assertion": assertion}, timeout=10
    )


def test_kubernetes_style_workload_end_to_end(
    server: ServerProcess, workload_issuer: WorkloadIssuer, tmp_path: Path
) -> None:
    cli = Cli(
        {**base_env(tmp_path / "cli"), "TESSERA_URL": server.url, "TESSERA_ADMIN_TOKEN": server.admin_token},
        tmp_path,
    )
    metadata = httpx.get(f"{server.url}/.well-known/oauth-authorization-server").json()
    assert GRANT_TYPE in metadata["grant_types_supported"]

    added = cli.json(
        "issuer", "add", workload_issuer.url,
        "--jwks-url", f"{workload_issuer.url}/openid/v1/jwks",
        "--allow-private-network",
        "--audience", server.url,
        "--require", "claims['kubernetes.io'].namespace=payments",
        "--map", "namespace=claims['kubernetes.io'].namespace",
        "--map", "service_account=claims['kubernetes.io'].serviceaccount.name",
        "--ephemeral", "--owner", "platform@example.com", "--scope", "reports:read",
        "--region", "eu",
        "--jti-policy", "ignored",
    )  # fmt: skip
    assert added["issuer"] == workload_issuer.url

    sa_token = workload_issuer.run("token", "--audience", server.url)
    response = token_request(server, sa_token)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["token_type"], body["scope"]) == ("Bearer", "reports:read")
    # A projected token is presented again and again until the kubelet rotates it.
    assert token_request(server, sa_token).status_code == 200

    with server.admin() as admin:
        introspected = admin.post("/oauth2/introspect", data={"token": body["access_token"]}).json()
        agent_id = ephemeral_agent_id(workload_issuer.url, SUBJECT)
        assert introspected["active"] is True
        assert introspected["sub"] == agent_id
        agent = admin.get(f"/admin/v1/agents/{agent_id}").json()
    assert agent["labels"] == ["federated"]
    assert agent["attributes"]["namespace"] == "payments"
    assert agent["attributes"]["federated_subject"] == SUBJECT
    assert agent["attributes"]["region"] == "eu"

    # Another namespace's token does not satisfy the required claim.
    other = workload_issuer.run("token", "--audience", server.url, "--namespace", "billing")
    refused = token_request(server, other)
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"
    assert "required claim" in refused.json()["error_description"]
    # A token for another audience is refused.
    elsewhere = workload_issuer.run("token", "--audience", "https://elsewhere.example")
    assert "is not an accepted audience" in token_request(server, elsewhere).json()["error_description"]

    assert cli.ok("issuer", "remove", added["id"]) == f"{added['id']}: removed\n"
    gone = token_request(server, sa_token)
    assert gone.status_code == 400
    assert gone.json() == {
        "error": "invalid_grant",
        "error_description": f"issuer '{workload_issuer.url}' is not trusted",
    }
