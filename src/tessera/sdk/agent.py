"""``AgentClient``: how an agent gets a token with ``private_key_jwt`` and, by default, DPoP.

client = AgentClient("http://127.0.0.1:8400", agent_id, private_jwk)
token = client.fetch_token(scope="tickets:read", task={"task_id": "T-1", "purpose": "triage"})
delegated = helper.exchange_token(token.access_token, scope="tickets:read")   # RFC 8693
client.request("GET", "https://api.example/tickets", token)   # sends DPoP proof + token

Just-in-time access (docs/approvals.md)::

pending = client.request_access(token, action="pay", resource={"type": "Resource", "id": "acct-ops"},
                                context={"amount": 50000, "payee": "globex"}, purpose="invoice 7")
elevated = client.wait_for_access(pending)   # polls the CIBA grant until approved, denied or expired
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from tessera.sdk.proofs import client_assertion, dpop_proof, load_private_jwk

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"


class TokenError(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.status = status
        self.error = error
        self.description = description


@dataclass(frozen=True, slots=True)
class AccessPending:
    """An access request waiting for (or granted by) policy or a person: OpenID CIBA Core 1.0 §7.3."""

    auth_req_id: str
    expires_in: int
    interval: int
    status: str
    request_id: str


class ApprovalRequired(Exception):
    """The token endpoint wants a person's approval first; ``pending`` says how to wait."""

    def __init__(self, pending: AccessPending) -> None:
        super().__init__(f"approval required (request {pending.request_id})")
        self.pending = pending


CIBA_GRANT = "urn:openid:params:grant-type:ciba"


@dataclass(frozen=True, slots=True)
class TokenResponse:
    access_token: str
    token_type: str
    expires_in: int
    scope: str
    authorization_details: list[dict[str, Any]] = field(default_factory=list)


class AgentClient:
    def __init__(
        self,
        server_url: str,
        agent_id: str,
        private_jwk: dict[str, Any],
        *,
        dpop: bool = True,
        http: httpx.Client | None = None,
    ) -> None:
        self.server_url = server_url.rstrip("/")
        self.agent_id = agent_id
        self._key, self._kid, self._alg = load_private_jwk(private_jwk)
        self._dpop = dpop
        self._http = http or httpx.Client(timeout=10.0)
        self._metadata: dict[str, Any] | None = None
        self._nonce: str | None = None

    def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            response = self._http.get(f"{self.server_url}/.well-known/oauth-authorization-server")
            response.raise_for_status()
            self._metadata = response.json()
        return self._metadata

    def fetch_token(
        self,
        *,
        scope: str | None = None,
        resources: list[str] | None = None,
        task: dict[str, Any] | None = None,
        expires_in: int | None = None,
    ) -> TokenResponse:
        """A client_credentials token; raises :class:`ApprovalRequired` when policy wants a person."""
        form: list[tuple[str, str]] = [("grant_type", "client_credentials")]
        return self._token(form + _limits(scope, resources, task, expires_in))

    def exchange_token(
        self,
        subject_token: str,
        *,
        subject_token_type: str = ACCESS_TOKEN_TYPE,
        scope: str | None = None,
        resources: list[str] | None = None,
        audiences: list[str] | None = None,
        task: dict[str, Any] | None = None,
        expires_in: int | None = None,
    ) -> TokenResponse:
        """RFC 8693 token exchange: a token for this agent, acting for ``subject_token``'s subject.

        With DPoP on, the proof is made with this agent's key, so a DPoP-bound subject
        token can only be exchanged by the agent holding its key; a bearer subject
        token gives a token bound to this agent's key.
        """
        form: list[tuple[str, str]] = [
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", subject_token),
            ("subject_token_type", subject_token_type),
        ]
        form += [("audience", audience) for audience in audiences or []]
        return self._token(form + _limits(scope, resources, task, expires_in))

    def _token(self, form: list[tuple[str, str]]) -> TokenResponse:
        meta = self.metadata()
        token_url = str(meta["token_endpoint"])
        for _attempt in range(2):
            body = [
                *form,
                ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                (
                    "client_assertion",
                    client_assertion(
                        self._key, self._kid, self._alg, client_id=self.agent_id, audience=meta["issuer"]
                    ),
                ),
            ]
            headers = {}
            if self._dpop:
                headers["DPoP"] = dpop_proof(
                    self._key, self._alg, method="POST", url=token_url, nonce=self._nonce
                )
            response = self._http.post(token_url, data=dict(_group(body)), headers=headers)
            if "DPoP-Nonce" in response.headers:
                self._nonce = response.headers["DPoP-Nonce"]
            if response.status_code == 400 and response.json().get("error") == "use_dpop_nonce":
                continue
            break
        payload = response.json()
        if response.status_code != 200:
            raise TokenError(
                response.status_code, payload.get("error", "?"), payload.get("error_description", "")
            )
        if "auth_req_id" in payload and "access_token" not in payload:
            raise ApprovalRequired(_pending(payload))
        return TokenResponse(
            access_token=payload["access_token"],
            token_type=payload["token_type"],
            expires_in=int(payload["expires_in"]),
            scope=payload.get("scope", ""),
            authorization_details=payload.get("authorization_details", []),
        )

    def request_access(
        self,
        token: TokenResponse,
        *,
        action: str,
        resource: dict[str, Any],
        context: dict[str, Any] | None = None,
        purpose: str,
        task_id: str | None = None,
        duration: int | None = None,
        audience: list[str] | None = None,
    ) -> AccessPending:
        """``POST /access/v1/requests`` with ``token`` (scope ``access:request``)."""
        url = f"{self.server_url}/access/v1/requests"
        body: dict[str, Any] = {
            "action": {"name": action},
            "resource": resource,
            "context": context or {},
            "purpose": purpose,
        }
        for name, value in (("task_id", task_id), ("duration", duration), ("audience", audience)):
            if value is not None:
                body[name] = value
        response = self.request("POST", url, token, json=body)
        payload = response.json()
        if response.status_code != 200:
            raise TokenError(
                response.status_code, payload.get("error", "?"), payload.get("error_description", "")
            )
        return _pending(payload)

    def poll_access(self, auth_req_id: str) -> TokenResponse:
        """One poll of the CIBA grant (§10.1); ``TokenError`` carries ``authorization_pending`` etc."""
        return self._token([("grant_type", CIBA_GRANT), ("auth_req_id", auth_req_id)])

    def wait_for_access(
        self,
        pending: AccessPending,
        *,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> TokenResponse:
        """Poll every ``interval`` seconds (5 more after each ``slow_down``, CIBA §11) until a token
        arrives; raises ``TokenError`` for ``access_denied``, ``expired_token`` or any other error."""
        interval = pending.interval
        deadline = monotonic() + pending.expires_in
        while True:
            try:
                return self.poll_access(pending.auth_req_id)
            except TokenError as exc:
                if exc.error == "slow_down":
                    interval += 5
                elif exc.error != "authorization_pending":
                    raise
            if monotonic() + interval > deadline:
                raise TokenError(400, "expired_token", "the request was not answered in time")
            sleep(interval)

    def auth_headers(self, method: str, url: str, token: TokenResponse) -> dict[str, str]:
        """Headers for calling a resource server with ``token`` (RFC 9449 §7.1 or RFC 6750 §2.1)."""
        if token.token_type == "DPoP":
            proof = dpop_proof(self._key, self._alg, method=method, url=url, access_token=token.access_token)
            return {"Authorization": f"DPoP {token.access_token}", "DPoP": proof}
        return {"Authorization": f"Bearer {token.access_token}"}

    def request(self, method: str, url: str, token: TokenResponse, **kwargs: Any) -> httpx.Response:
        headers = {**kwargs.pop("headers", {}), **self.auth_headers(method, url, token)}
        return self._http.request(method, url, headers=headers, **kwargs)

    def close(self) -> None:
        self._http.close()


def _limits(
    scope: str | None, resources: list[str] | None, task: dict[str, Any] | None, expires_in: int | None
) -> list[tuple[str, str]]:
    form: list[tuple[str, str]] = []
    if scope is not None:
        form.append(("scope", scope))
    for resource in resources or []:
        form.append(("resource", resource))
    if task is not None:
        form.append(("authorization_details", json.dumps([{"type": "agent_task", **task}])))
    if expires_in is not None:
        form.append(("expires_in", str(expires_in)))
    return form


def _group(pairs: list[tuple[str, str]]) -> dict[str, str | list[str]]:
    grouped: dict[str, str | list[str]] = {}
    for name, value in pairs:
        existing = grouped.get(name)
        if existing is None:
            grouped[name] = value
        elif isinstance(existing, list):
            existing.append(value)
        else:
            grouped[name] = [existing, value]
    return grouped


def _pending(payload: dict[str, Any]) -> AccessPending:
    return AccessPending(
        auth_req_id=str(payload["auth_req_id"]),
        expires_in=int(payload["expires_in"]),
        interval=int(payload.get("interval", 5)),
        status=str(payload.get("status", "approval_pending")),
        request_id=str(payload.get("request_id", "")),
    )
