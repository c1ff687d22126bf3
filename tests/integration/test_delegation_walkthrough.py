"""The walkthrough of docs/delegation.md, step by step: a real server, the example identity
provider (``examples/delegation/person_idp.py``) on loopback, and the ``tessera`` CLI."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import ServerProcess, free_port
from tests.unit.cli.conftest import Cli, base_env

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "delegation" / "person_idp.py"


class PersonIdp:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def token(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, str(SCRIPT), "--dir", str(self.directory), "token", *args],
            capture_output=True,
            check=True,
            timeout=60,
        )
        return done.stdout.decode().strip()

    def start(self) -> PersonIdp:
        self.process = subprocess.Popen(
            [sys.executable, str(SCRIPT), "--dir", str(self.directory), "serve", "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(300):  # bounded wait for the process to listen
            try:
                if httpx.get(f"{self.url}/jwks", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise AssertionError("the example identity provider did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def idp(tmp_path: Path) -> Iterator[PersonIdp]:
    provider = PersonIdp(tmp_path / "person-idp").start()
    yield provider
    provider.stop()


def test_person_agent_sub_agent_walkthrough(server: ServerProcess, idp: PersonIdp, tmp_path: Path) -> None:
    cli = Cli(
        {**base_env(tmp_path / "cli"), "TESSERA_URL": server.url, "TESSERA_ADMIN_TOKEN": server.admin_token},
        tmp_path,
    )
    assistant_key, researcher_key = tmp_path / "assistant.jwk", tmp_path / "researcher.jwk"
    assistant = cli.ok(
        "agent", "create", "assistant", "--owner", "alice@example.com", "--scopes", "crm:read crm:write",
        "--attr", "region=eu", "--generate-key", str(assistant_key),
    ).strip()  # fmt: skip
    researcher = cli.ok(
        "agent", "create", "researcher", "--owner", "alice@example.com", "--scopes", "crm:read",
        "--attr", "region=eu", "--generate-key", str(researcher_key),
    ).strip()  # fmt: skip
    cli.ok(
        "issuer", "add", idp.url, "--jwks-url", f"{idp.url}/jwks", "--allow-private-network",
        "--ephemeral", "--owner", "it@example.com", "--region", "eu",
    )  # fmt: skip
    person = idp.token(
        "--sub", "alice@example.com", "--audience", server.url, "--audience", "https://crm.example/api",
        "--scope", "crm:read crm:write", "--may-act", assistant,
    )  # fmt: skip
    first = cli.ok(
        "token", "exchange", "--agent", assistant, "--key", str(assistant_key), "--subject-token", person,
        "--subject-token-type", "jwt", "--resource", "https://crm.example/api", "--no-dpop",
    ).strip()  # fmt: skip
    second = cli.ok(
        "token", "exchange", "--agent", researcher, "--key", str(researcher_key),
        "--subject-token", first, "--scope", "crm:read",
    ).strip()  # fmt: skip
    body = cli.json("token", "introspect", second)
    alice = f"{idp.url}#alice@example.com"
    assert body["sub"] == alice
    assert body["act"] == {"sub": researcher, "act": {"sub": assistant}}
    assert body["delegation"] == {"depth": 2, "actors": [assistant, researcher], "subject": alice}
    assert body["aud"] == ["https://crm.example/api"]
    assert body["token_type"] == "DPoP"

    wider = cli.fails(
        "token", "exchange", "--agent", researcher, "--key", str(researcher_key),
        "--subject-token", first, "--scope", "crm:write",
    )  # fmt: skip
    assert wider == f"error: invalid_scope: scope 'crm:write' is not granted to agent '{researcher}'"
    direct = cli.fails(
        "token", "exchange", "--agent", researcher, "--key", str(researcher_key),
        "--subject-token", person, "--subject-token-type", "jwt",
    )  # fmt: skip
    assert (
        direct == f"error: invalid_grant: may_act does not allow agent '{researcher}' to act for the subject"
    )

    revoked = httpx.post(
        f"{server.url}/oauth2/revoke",
        headers={"Authorization": f"Bearer {server.admin_token}"},
        data={"token": person},
        timeout=10,
    )
    assert revoked.status_code == 200
    assert cli.ok("token", "introspect", first).split() == ["active", "no"]
    assert cli.ok("token", "introspect", second).split() == ["active", "no"]
    again = cli.fails(
        "token", "exchange", "--agent", assistant, "--key", str(assistant_key), "--subject-token", person,
        "--subject-token-type", "jwt",
    )  # fmt: skip
    assert again == "error: invalid_grant: subject token has been revoked"

    # Tasks: the assistant's task carries over to the researcher; closing it ends both tokens.
    cli.ok(
        "task", "open", "--agent", assistant, "--purpose", "prepare the quarterly account review",
        "--expires-in", "900", "--resource", "crm/accounts", "--action", "read", "--budget", "50",
        "--id", "review-q3",
    )  # fmt: skip
    person = idp.token(
        "--sub", "alice@example.com", "--audience", server.url, "--audience", "https://crm.example/api",
        "--scope", "crm:read crm:write", "--may-act", assistant,
    )  # fmt: skip
    first = cli.ok(
        "token", "exchange", "--agent", assistant, "--key", str(assistant_key), "--subject-token", person,
        "--subject-token-type", "jwt", "--resource", "https://crm.example/api", "--task", "review-q3",
        "--no-dpop",
    ).strip()  # fmt: skip
    second = cli.ok(
        "token", "exchange", "--agent", researcher, "--key", str(researcher_key),
        "--subject-token", first, "--scope", "crm:read",
    ).strip()  # fmt: skip
    details = cli.json("token", "introspect", second)["authorization_details"]
    assert details[0]["task_id"] == "review-q3"
    assert details[0]["purpose"] == "prepare the quarterly account review"
    assert cli.ok("task", "close", "review-q3", "--reason", "review delivered") == (
        "review-q3: closed; revoked 2 token(s)\n"
    )
    assert cli.json("token", "introspect", second) == {"active": False}
