"""Following the server's revocation feed, so a locally verifying PEP stops dead tokens at once.

``RevocationFollower`` long-polls ``GET /events/v1/revocations`` (see
``tessera.server.revocation_feed``) on a background thread and holds what makes
a signature-valid token dead: revoked ``jti``s, agents that are no longer
active, and active kill rules (agent, task, delegator, and an owner's agents).
Give it to :class:`~tessera.sdk.verifier.TokenVerifier` (``revocations=``)
and every verification checks it; a kill reaches the PEP within one round
trip of the server learning of it. If the feed cannot be reached for
``fail_closed_after`` seconds, ``stopped`` refuses every token (fail closed).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from tessera.sdk.agent import AgentClient, TokenResponse
from tessera.tokens.access_tokens import AccessToken

log = logging.getLogger(__name__)


class RevocationFollower:
    def __init__(
        self,
        server_url: str,
        auth: Callable[[str, str], dict[str, str]],
        *,
        wait: float = 25.0,
        fail_closed_after: float = 60.0,
        http: httpx.Client | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = f"{server_url.rstrip('/')}/events/v1/revocations"
        self._auth = auth
        self._wait = wait
        self._fail_closed_after = fail_closed_after
        self._http = http or httpx.Client(timeout=wait + 10, follow_redirects=False)
        self._clock = clock
        self.cursor = 0
        self._revoked: dict[str, float] = {}
        self._agents: dict[str, str] = {}
        self._kills: dict[str, dict[str, Any]] = {}
        self._last_contact: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @classmethod
    def with_admin_token(cls, server_url: str, admin_token: str, **kwargs: Any) -> RevocationFollower:
        return cls(server_url, lambda _m, _u: {"Authorization": f"Bearer {admin_token}"}, **kwargs)

    @classmethod
    def with_agent(cls, server_url: str, agent: AgentClient, **kwargs: Any) -> RevocationFollower:
        """Authenticate as an agent (a PEP's own identity) holding scope ``authzen``."""
        held: dict[str, Any] = {}

        def headers(method: str, url: str) -> dict[str, str]:
            token: TokenResponse | None = held.get("token")
            if token is None or time.time() > held["renew_at"]:
                token = agent.fetch_token(scope="authzen", resources=[server_url.rstrip("/")])
                held.update(token=token, renew_at=time.time() + token.expires_in * 0.8)
            return agent.auth_headers(method, url, token)

        return cls(server_url, headers, **kwargs)

    # --- the check -----------------------------------------------------------------------

    def stopped(self, token: AccessToken) -> str | None:
        """Why ``token`` must be refused (revoked, agent inactive, kill switch), or None."""
        if self._last_contact is None or self._clock() - self._last_contact > self._fail_closed_after:
            return "the revocation feed has not been reached recently"
        if token.jti in self._revoked:
            return "token has been revoked"
        state = self._agents.get(token.client_id)
        if state is not None:
            return f"the token's agent is {state}"
        for rule in list(self._kills.values()):
            if self._matches(rule, token):
                return f"the token is stopped by kill switch '{rule.get('id')}'"
        return None

    @staticmethod
    def _matches(rule: dict[str, Any], token: AccessToken) -> bool:
        scope, target = rule.get("scope"), rule.get("target")
        if scope == "agent":
            return target == token.client_id
        if scope == "task":
            return target is not None and target == token.task_id
        if scope == "delegator":
            return target == token.subject
        if scope == "owner":
            return token.client_id in rule.get("agents", [])
        return False

    # --- following -----------------------------------------------------------------------

    def poll_once(self, wait: float = 0.0) -> bool:
        """One request to the feed; True if something was applied."""
        response = self._http.get(
            self._url,
            params={"after": str(self.cursor), "wait": str(wait)},
            headers=self._auth("GET", self._url),
        )
        if response.status_code == 204:
            self._last_contact = self._clock()
            return False
        response.raise_for_status()
        body = response.json()
        self._apply(body)
        self._last_contact = self._clock()
        return True

    def _apply(self, body: dict[str, Any]) -> None:
        with self._lock:
            if body.get("reset"):
                self._revoked = {str(k): float(v) for k, v in body.get("revoked", {}).items()}
                self._agents = {str(k): str(v) for k, v in body.get("agents", {}).items()}
                self._kills = {str(r["id"]): r for r in body.get("kills", [])}
            for entry in body.get("events", []):
                self._apply_event(entry)
            self.cursor = int(body.get("cursor", self.cursor))

    def _apply_event(self, entry: dict[str, Any]) -> None:
        payload = entry.get("payload", {})
        kind = entry.get("kind")
        if kind == "tokens.revoked":
            self._revoked.update({str(k): float(v) for k, v in payload.get("tokens", {}).items()})
        elif kind == "agent":
            state = payload.get("state")
            if state == "active":
                self._agents.pop(str(entry.get("subject")), None)
            elif state:
                self._agents[str(entry.get("subject"))] = str(state)
        elif kind == "kill":
            if payload.get("released_at") is None:
                self._kills[str(payload.get("id"))] = payload
            else:
                self._kills.pop(str(payload.get("id")), None)

    def prune(self, now: float) -> None:
        """Forget revoked tokens that have expired anyway (``now`` in epoch seconds)."""
        with self._lock:
            self._revoked = {k: v for k, v in self._revoked.items() if v + 60 >= now}

    def start(self) -> RevocationFollower:
        self._thread = threading.Thread(target=self._run, name="tessera-revocation-follower", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._wait + 15)
        self._http.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once(self._wait if self.cursor else 0.0)
                self.prune(time.time())
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                log.warning("revocation feed: %s; retrying", exc)
                self._stop.wait(1.0)
