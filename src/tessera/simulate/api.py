"""The simulator's side of the wire: the admin API, the token endpoint and AuthZEN, over HTTP.

Agents authenticate with ``private_key_jwt`` (RFC 7523 §2.2) using the SDK's
signing helpers, with the assertion's ``iat`` taken from the simulation's clock
so that a fast-forwarded server accepts it. The PEP asks AuthZEN evaluations
(``POST /access/v1/evaluation``, AuthZEN 1.0 §6) with the admin credential,
passing the agent's token and the client's address in the context, as a
gateway in front of the agent's tools would.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from tessera.sdk.proofs import client_assertion, generate_private_jwk, load_private_jwk, public_jwk

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class ServerError(Exception):
    """The server refused a setup call the simulation cannot do without."""


@dataclass(frozen=True, slots=True)
class Token:
    value: str
    expires_at: float  # simulated epoch seconds
    lifetime: int
    resources: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Answer:
    """One AuthZEN answer: the decision, and the policies or error that determined it."""

    allowed: bool
    policies: tuple[str, ...]
    error: str = ""  # a refusal before the PDP (e.g. the token was revoked)
    errors: tuple[str, ...] = ()  # the decision's own (a kill switch, a required approval)


@dataclass(frozen=True, slots=True)
class RiskReading:
    score: int
    detectors: tuple[str, ...]
    learning: bool


class TesseraApi:
    def __init__(
        self, base_url: str, admin_token: str, now: Callable[[], float], http: httpx.Client | None = None
    ):
        self.base_url = base_url.rstrip("/")
        self._now = now
        self._http = http or httpx.Client(timeout=30.0)
        self._admin = {"Authorization": f"Bearer {admin_token}"}
        self._issuer: str | None = None

    def close(self) -> None:
        self._http.close()

    # --- admin API -----------------------------------------------------------------------

    def _admin_call(self, method: str, path: str, body: Any = None) -> Any:
        response = self._http.request(method, f"{self.base_url}{path}", json=body, headers=self._admin)
        if not response.is_success:
            try:
                body = response.json()
                reason = f"{body['error']}: {body.get('error_description', '')}"
            except (ValueError, KeyError, TypeError):
                reason = f"http {response.status_code}"
            raise ServerError(f"{method} {path}: {reason[:300]}")
        return response.json()

    def apply_bundle(self, files: dict[str, str], note: str) -> str:
        return str(
            self._admin_call("POST", "/admin/v1/policies", {"files": files, "note": note}).get("version", "")
        )

    def put_resource(self, rid: str, attributes: dict[str, Any]) -> None:
        self._admin_call(
            "POST", "/admin/v1/resources", {"type": "Resource", "id": rid, "attributes": attributes}
        )

    def create_agent(self, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Register an agent with a fresh ES256 key; returns its id and the private JWK."""
        private = generate_private_jwk("ES256")
        created = self._admin_call("POST", "/admin/v1/agents", {**body, "jwks": [public_jwk(private)]})
        return str(created["id"]), private

    def agent_state(self, agent_id: str) -> str:
        return str(self._admin_call("GET", f"/admin/v1/agents/{agent_id}").get("state", ""))

    def agent_states(self) -> dict[str, str]:
        listed = self._admin_call("GET", "/admin/v1/agents")
        agents = listed.get("agents", listed) if isinstance(listed, dict) else listed
        return {str(a["id"]): str(a.get("state", "")) for a in agents}

    def risk(self, agent_id: str) -> RiskReading:
        """``GET /admin/v1/agents/{id}/risk``: the score, the detectors behind it, learning or not."""
        body = self._admin_call("GET", f"/admin/v1/agents/{agent_id}/risk")
        reasons = body.get("reasons") or []
        detectors = sorted({str(r.get("detector", "")) for r in reasons if isinstance(r, dict)})
        return RiskReading(int(body.get("score", 0)), tuple(detectors), bool(body.get("learning", False)))

    # --- the agent's token ---------------------------------------------------------------

    def issuer(self) -> str:
        if self._issuer is None:
            response = self._http.get(f"{self.base_url}/.well-known/oauth-authorization-server")
            response.raise_for_status()
            self._issuer = str(response.json()["issuer"])
        return self._issuer

    def fetch_token(
        self, agent_id: str, private_jwk: dict[str, Any], task: dict[str, Any], lifetime: int
    ) -> Token | str:
        """A token for the task, or the server's error code (e.g. a quarantined agent is refused)."""
        key, kid, alg = load_private_jwk(private_jwk)
        now = self._now()
        assertion = client_assertion(key, kid, alg, client_id=agent_id, audience=self.issuer(), now=now)
        form = {
            "grant_type": "client_credentials",
            "scope": task.pop("scope"),
            "authorization_details": json.dumps([{"type": "agent_task", **task}]),
            "expires_in": str(lifetime),
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        }
        response = self._http.post(f"{self.base_url}/oauth2/token", data=form)
        payload = response.json()
        if response.status_code != 200:
            return str(payload.get("error", f"http_{response.status_code}"))
        lifetime = int(payload["expires_in"])
        return Token(str(payload["access_token"]), now + lifetime, lifetime, tuple(task.get("resources", [])))

    # --- the PEP ---------------------------------------------------------------------------

    def evaluate(self, agent_id: str, action: str, resource: str, token: str, client_ip: str) -> Answer:
        body = {
            "subject": {"type": "Agent", "id": agent_id},
            "action": {"name": action},
            "resource": {"type": "Resource", "id": resource},
            "context": {"access_token": token, "client_ip": client_ip},
        }
        response = self._http.post(
            f"{self.base_url}/access/v1/evaluation", json=body, headers={**self._admin}
        )
        if response.status_code != 200:
            return Answer(False, (), f"http_{response.status_code}")
        answer = response.json()
        context = answer.get("context") or {}
        error = context.get("error")
        return Answer(
            bool(answer.get("decision")),
            tuple(str(p) for p in context.get("determining_policies", [])),
            str(error.get("message", "error")) if isinstance(error, dict) else "",
            tuple(str(e) for e in context.get("errors", []) if isinstance(e, str)),
        )
