"""The AuthZEN routes in process: who may call (admin, scoped Bearer or DPoP tokens, anonymous opt-in)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest

from tessera.clock import ManualClock
from tessera.config import Settings
from tessera.identity.agents import Transition
from tessera.runtime import Runtime
from tessera.server.app import create_app
from tessera.server.authzen import pdp_metadata
from tests.unit.helpers import Client, private_key, proof, register, request_token
from tests.unit.policy.authzen_support import decision_records, start_example_runtime

BASE = "http://tessera.test"
PATH = "/access/v1/evaluation"
QUESTION = {
    "subject": {"type": "user", "id": "alice"},
    "action": {"name": "read"},
    "resource": {"type": "record", "id": "record-1"},
}


class InProcess:
    """Requests to the app over httpx's ASGI transport, each run on its own event loop (no lifespan)."""

    def __init__(self, runtime: Runtime) -> None:
        self._app = create_app(runtime=runtime)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self._app)
            async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
                return await http.request(method, path, **kwargs)

        return anyio.run(send)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)


@pytest.fixture
def runtime(settings: Settings, clock: ManualClock) -> Iterator[Runtime]:
    yield from start_example_runtime(settings, clock)


@pytest.fixture
def http(runtime: Runtime) -> InProcess:
    """The app over the runtime; no lifespan (the runtime is started and stopped by its fixture)."""
    return InProcess(runtime)


@pytest.fixture
def pep(runtime: Runtime) -> Client:
    return register(runtime, scopes=("authzen", "records:read"))


def ask(http: InProcess, headers: dict[str, str] | None = None, path: str = PATH) -> httpx.Response:
    return http.post(path, json=QUESTION, headers=headers or {})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_refused(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == error
    assert isinstance(body["error_description"], str)
    assert "\n" not in body["error_description"]
    return body


def test_metadata_is_public(runtime: Runtime, http: InProcess) -> None:
    response = http.get("/.well-known/authzen-configuration")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["policy_decision_point"] == runtime.issuer == "http://tessera.test"
    assert body["access_evaluation_endpoint"] == "http://tessera.test/access/v1/evaluation"
    assert "capabilities" not in body  # none registered; parameters without values are omitted


def test_metadata_follows_an_https_issuer() -> None:
    metadata = pdp_metadata("https://pdp.example.com")
    assert metadata["policy_decision_point"] == "https://pdp.example.com"
    assert all(
        str(url).startswith("https://pdp.example.com/access/v1/") for url in list(metadata.values())[1:]
    )


def test_without_credentials_the_answer_is_401_with_both_challenges(http: InProcess) -> None:
    response = ask(http, {"X-Request-ID": "req-1"})
    assert_refused(response, 401, "invalid_token")
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="tessera", scope="authzen"')
    assert 'DPoP realm="tessera"' in challenge
    assert response.headers["x-request-id"] == "req-1"


@pytest.mark.parametrize("header", ["Basic abc", "Bearer", "Bearer  ", "token"])
def test_malformed_authorization_is_401(http: InProcess, header: str) -> None:
    assert_refused(ask(http, {"Authorization": header}), 401, "invalid_token")


def test_the_admin_credential_may_ask(runtime: Runtime, http: InProcess) -> None:
    token = runtime.settings.admin_token_path.read_text().strip()
    response = ask(http, bearer(token))
    assert response.status_code == 200, response.text
    assert response.json()["decision"] is True
    assert decision_records(runtime)[-1]["actor_id"] == "admin"


def test_an_agent_token_with_scope_authzen_may_ask(runtime: Runtime, http: InProcess, pep: Client) -> None:
    token = request_token(runtime, pep, scope="authzen").access_token
    response = ask(http, bearer(token))
    assert response.status_code == 200, response.text
    assert response.json()["decision"] is True
    assert decision_records(runtime)[-1]["actor_id"] == pep.id


def test_a_token_without_the_scope_is_403(runtime: Runtime, http: InProcess, pep: Client) -> None:
    token = request_token(runtime, pep, scope="records:read").access_token
    response = ask(http, bearer(token))
    assert_refused(response, 403, "insufficient_scope")
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert 'scope="authzen"' in response.headers["www-authenticate"]


def test_a_token_for_another_audience_is_401(runtime: Runtime, http: InProcess) -> None:
    client = register(runtime, scopes=("authzen",), resource_uris=("https://api.example",))
    token = request_token(runtime, client, scope="authzen", resource="https://api.example").access_token
    body = assert_refused(ask(http, bearer(token)), 401, "invalid_token")
    assert body["error_description"] == "token is not meant for this server"


def test_a_forged_token_is_401(http: InProcess) -> None:
    response = ask(http, bearer("eyJhbGciOiJub25lIn0.e30."))
    assert_refused(response, 401, "invalid_token")
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_verified_tokens_are_cached(
    runtime: Runtime, http: InProcess, pep: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = request_token(runtime, pep, scope="authzen").access_token
    calls: list[str] = []
    original = runtime.validator.verify

    def counting(value: str, **kwargs: Any) -> Any:
        calls.append(value)
        return original(value, **kwargs)

    monkeypatch.setattr(runtime.validator, "verify", counting)
    for _ in range(3):
        assert ask(http, bearer(token)).status_code == 200
    assert len(calls) == 1


def test_a_cached_token_stops_when_revoked(runtime: Runtime, http: InProcess, pep: Client) -> None:
    issued = request_token(runtime, pep, scope="authzen")
    assert ask(http, bearer(issued.access_token)).status_code == 200
    runtime.revocation.mark_revoked({issued.jti: runtime.clock.now() + 300})
    body = assert_refused(ask(http, bearer(issued.access_token)), 401, "invalid_token")
    assert body["error_description"] == "token has been revoked"


def test_a_cached_token_stops_when_its_agent_is_suspended(
    runtime: Runtime, http: InProcess, pep: Client
) -> None:
    token = request_token(runtime, pep, scope="authzen").access_token
    assert ask(http, bearer(token)).status_code == 200
    runtime.agents.transition(pep.id, Transition.SUSPEND, "test")
    assert_refused(ask(http, bearer(token)), 401, "invalid_token")


def test_a_cached_token_stops_when_it_expires(
    runtime: Runtime, clock: ManualClock, http: InProcess, pep: Client
) -> None:
    token = request_token(runtime, pep, scope="authzen").access_token
    assert ask(http, bearer(token)).status_code == 200
    clock.advance(3600)
    assert_refused(ask(http, bearer(token)), 401, "invalid_token")


# --- DPoP-bound tokens (RFC 9449 §7) -------------------------------------------------------------


@pytest.fixture
def bound(runtime: Runtime, pep: Client) -> tuple[str, Any]:
    key = private_key()
    return request_token(runtime, pep, scope="authzen", dpop_key=key).access_token, key


def dpop_headers(runtime: Runtime, token: str, key: Any, **claims: Any) -> dict[str, str]:
    url = f"{runtime.issuer}{PATH}"
    return {
        "Authorization": f"DPoP {token}",
        "DPoP": proof(runtime, key, url=url, access_token=token, **claims),
    }


def test_a_bound_token_with_a_proof_may_ask(
    runtime: Runtime, http: InProcess, bound: tuple[str, Any]
) -> None:
    token, key = bound
    response = ask(http, dpop_headers(runtime, token, key))
    assert response.status_code == 200, response.text


def test_a_bound_token_is_not_a_bearer_token(
    runtime: Runtime, http: InProcess, bound: tuple[str, Any]
) -> None:
    response = ask(http, bearer(bound[0]))
    assert_refused(response, 401, "invalid_token")
    assert response.headers["www-authenticate"].startswith("DPoP ")


def test_a_bound_token_needs_its_proof(runtime: Runtime, http: InProcess, bound: tuple[str, Any]) -> None:
    token, key = bound
    assert_refused(ask(http, {"Authorization": f"DPoP {token}"}), 401, "invalid_dpop_proof")
    wrong_url = {
        "Authorization": f"DPoP {token}",
        "DPoP": proof(runtime, key, url=f"{runtime.issuer}/access/v1/evaluations", access_token=token),
    }
    assert_refused(ask(http, wrong_url), 401, "invalid_dpop_proof")
    other_key = dpop_headers(runtime, token, private_key())
    assert_refused(ask(http, other_key), 401, "invalid_dpop_proof")
    replayed = dpop_headers(runtime, token, key)
    assert ask(http, replayed).status_code == 200
    response = ask(http, replayed)
    body = assert_refused(response, 401, "invalid_dpop_proof")
    assert body["error_description"] == "dpop proof has already been used"
    assert 'error="invalid_dpop_proof"' in response.headers["www-authenticate"]


def test_an_unbound_token_is_not_a_dpop_token(runtime: Runtime, http: InProcess, pep: Client) -> None:
    token = request_token(runtime, pep, scope="authzen").access_token
    assert_refused(ask(http, {"Authorization": f"DPoP {token}"}), 401, "invalid_token")


def test_the_dpop_scheme_is_never_the_admin_credential(runtime: Runtime, http: InProcess) -> None:
    token = runtime.settings.admin_token_path.read_text().strip()
    assert_refused(ask(http, {"Authorization": f"DPoP {token}"}), 401, "invalid_token")


# --- Anonymous callers (certification runs only) ---------------------------------------------------


def test_anonymous_callers_are_refused_by_default(runtime: Runtime) -> None:
    assert runtime.settings.authzen_allow_anonymous is False


@pytest.fixture
def anonymous_http(settings: Settings, clock: ManualClock) -> Iterator[InProcess]:
    for runtime in start_example_runtime(settings, clock, authzen_allow_anonymous=True):
        yield InProcess(runtime)


def test_with_the_opt_in_anonymous_callers_may_ask(anonymous_http: InProcess) -> None:
    response = ask(anonymous_http)
    assert response.status_code == 200, response.text
    assert response.json()["decision"] is True


def test_with_the_opt_in_a_credential_sent_is_still_checked(anonymous_http: InProcess) -> None:
    assert_refused(ask(anonymous_http, bearer("not-a-token")), 401, "invalid_token")


def test_the_opt_in_is_logged_loudly(
    settings: Settings, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    for _runtime in start_example_runtime(settings, clock, authzen_allow_anonymous=True):
        pass
    assert any(
        "TESSERA_AUTHZEN_ALLOW_ANONYMOUS is on" in r.message and r.levelname == "WARNING"
        for r in caplog.records
    )
