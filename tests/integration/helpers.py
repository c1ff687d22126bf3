"""Helpers shared by the integration tests: registering agents, checking error bodies, polling."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

from tessera.sdk.proofs import client_assertion, generate_private_jwk, load_private_jwk, public_jwk

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: Upper bound for cross-process propagation checks. A propagation check, not a timing
#: assertion: the loop ends as soon as the change is seen and fails only if it never is.
PROPAGATION_BOUND = 10.0

T = TypeVar("T")


def register_agent(
    admin: httpx.Client, name: str = "worker", **fields: Any
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Create an agent with a fresh ES256 key; returns ``(agent_id, private_jwk, agent_view)``."""
    private = generate_private_jwk()
    body = {"name": name, "owner": "ops@example.com", "jwks": [public_jwk(private)], **fields}
    response = admin.post("/admin/v1/agents", json=body)
    assert response.status_code == 201, response.text
    view = response.json()
    return view["id"], private, view


def jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Decode a compact JWS's header and claims without verifying (tests only)."""
    header, payload, _ = token.split(".")

    def decode(part: str) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        return value

    return decode(header), decode(payload)


def assert_error(response: httpx.Response, status: int, error: str | None = None) -> dict[str, Any]:
    """An error answer: the status, a JSON body with ``error`` and a one-line ``error_description``."""
    assert response.status_code == status, (response.status_code, response.text)
    assert "traceback" not in response.text.lower()
    body: dict[str, Any] = response.json()
    assert isinstance(body.get("error"), str), body
    if error is not None:
        assert body["error"] == error, body
    description = body.get("error_description")
    assert isinstance(description, str), body
    assert description, body
    assert "\n" not in description, body
    assert "\r" not in description, body
    assert len(description) < 300, body
    return body


def introspect(url: str, token: str, **auth: str) -> dict[str, Any]:
    """Introspect ``token`` at ``url``; ``auth`` is ``admin=<token>`` or client-assertion form fields."""
    headers = {}
    form = {"token": token}
    if "admin" in auth:
        headers["Authorization"] = f"Bearer {auth.pop('admin')}"
    form.update(auth)
    response = httpx.post(f"{url}/oauth2/introspect", data=form, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    return body


def eventually(check: Callable[[], T | None], what: str, bound: float = PROPAGATION_BOUND) -> T:
    """Poll ``check`` until it returns something truthy; fail if it never does within ``bound``."""
    deadline = time.monotonic() + bound
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"never observed: {what}")
        time.sleep(0.05)


def assertion_form(private_jwk: dict[str, Any], agent_id: str, audience: str) -> dict[str, str]:
    """Form fields authenticating ``agent_id`` with a fresh ``private_key_jwt`` assertion."""
    key, kid, alg = load_private_jwk(private_jwk)
    assertion = client_assertion(key, kid, alg, client_id=agent_id, audience=audience)
    return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}
