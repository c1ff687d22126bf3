"""``LocalPDP``: the same Cedar engine as the server, inside a PEP's process.

    pdp = LocalPDP.with_admin_token("http://127.0.0.1:8400", admin_token)   # or with_agent(...)
    pdp.start()                                   # polls the snapshot, keeps itself current
    decision = pdp.decide(Uid("Agent", agent_id), "read", Uid("Resource", "doc-1"))

It compiles the server's active bundle and mirrors its resources and agents,
refreshing from ``/policy/v1/snapshot`` (ETag, ``304`` when nothing changed)
every ``poll_interval`` seconds, so an applied policy takes effect here within
about one interval. Decisions are local: they are not in Tessera's audit log
unless ``on_decision`` forwards them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from tessera.clock import SystemClock
from tessera.ids import RandomIds
from tessera.policy.bundle import Bundle
from tessera.policy.compiled import CompiledBundle, compile_bundle
from tessera.policy.context import ContextBuilder, TokenFacts, delegation_from_claims
from tessera.policy.entities import AGENT_TYPE, EntityIndex, Uid
from tessera.policy.pdp import Decision, DecisionRequest, PolicyDecisionPoint
from tessera.sdk.agent import AgentClient, TokenResponse
from tessera.tokens.access_tokens import AccessToken

log = logging.getLogger(__name__)
AuthHeaders = Callable[[str, str], dict[str, str]]


def token_facts(token: AccessToken | None) -> TokenFacts | None:
    if token is None:
        return None
    task = next((d for d in token.authorization_details if d.get("type") == "agent_task"), {})
    chain = delegation_from_claims(token.claims)
    return TokenFacts(str(task.get("task_id", "")), str(task.get("purpose", "")), chain.depth, chain)


class LocalPDP:
    def __init__(
        self,
        server_url: str,
        auth: AuthHeaders,
        *,
        poll_interval: float = 0.5,
        network_zones: Mapping[str, str] | None = None,
        http: httpx.Client | None = None,
        on_decision: Callable[[DecisionRequest, Decision], None] | None = None,
    ) -> None:
        self.url = server_url.rstrip("/") + "/policy/v1/snapshot"
        self._auth = auth
        self._poll_interval = poll_interval
        self._http = http or httpx.Client(timeout=10.0)
        self._entities = EntityIndex()
        self._pdp = PolicyDecisionPoint(SystemClock(), RandomIds(), self._entities)
        self._contexts = ContextBuilder(network_zones or {})
        self._etag: str | None = None
        self._compiled: dict[str, CompiledBundle] = {}
        self._on_decision = on_decision
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def with_admin_token(cls, server_url: str, admin_token: str, **kwargs: Any) -> LocalPDP:
        return cls(server_url, lambda _m, _u: {"Authorization": f"Bearer {admin_token}"}, **kwargs)

    @classmethod
    def with_agent(cls, server_url: str, agent: AgentClient, **kwargs: Any) -> LocalPDP:
        """Authenticate as an agent holding scope ``authzen`` (token refreshed before it expires)."""
        held: dict[str, Any] = {}

        def headers(method: str, url: str) -> dict[str, str]:
            token: TokenResponse | None = held.get("token")
            if token is None or time.time() > held["renew_at"]:
                token = agent.fetch_token(scope="authzen", resources=[server_url.rstrip("/")])
                held.update(token=token, renew_at=time.time() + token.expires_in * 0.8)
            return agent.auth_headers(method, url, token)

        return cls(server_url, headers, **kwargs)

    @property
    def version(self) -> str | None:
        return self._pdp.version

    def refresh(self) -> bool:
        """Fetch the snapshot if it changed; returns True if anything was updated."""
        headers = self._auth("GET", self.url)
        if self._etag:
            headers["If-None-Match"] = self._etag
        response = self._http.get(self.url, headers=headers)
        if response.status_code == 304:
            return False
        if response.status_code != 200:
            raise RuntimeError(f"policy snapshot: http {response.status_code}: {response.text[:200]}")
        body = response.json()
        version = str(body["version"])
        compiled = self._compiled.get(version) or compile_bundle(Bundle(dict(body["files"])))
        self._compiled = {version: compiled}
        self._entities.set_resources(list(body.get("resources", [])))
        self._entities.set_agent_entities(list(body.get("agents", [])))
        self._pdp.activate(compiled)
        self._etag = response.headers.get("ETag")
        return True

    def start(self) -> None:
        self.refresh()
        self._thread = threading.Thread(target=self._run, name="tessera-local-pdp", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._http.close()

    def _run(self) -> None:
        while not self._stop.wait(self._poll_interval):
            try:
                self.refresh()
            except (httpx.HTTPError, RuntimeError, ValueError, KeyError):
                log.warning("local pdp could not refresh; keeping version %s", self.version, exc_info=True)

    def decide(
        self,
        principal: Uid,
        action: str,
        resource: Uid,
        context: Mapping[str, Any] | None = None,
        *,
        token: AccessToken | None = None,
        client_ip: str | None = None,
        entities: dict[str, dict[str, Any]] | None = None,
    ) -> Decision:
        state = "unknown"
        if principal.type == AGENT_TYPE:
            agent = self._entities.get(principal)
            state = str((agent or {}).get("attrs", {}).get("state", "unknown"))
        enriched = self._contexts.build(
            context, now=time.time(), agent_state=state, token=token_facts(token), client_ip=client_ip
        )
        task_resources: list[str] = []
        if token is not None:
            for detail in token.authorization_details:
                task_resources.extend(str(r) for r in detail.get("resources", []))
        enriched.setdefault("task_resources", task_resources)
        request = DecisionRequest(principal, action, resource, enriched, entities or {})
        decision = self._pdp.decide(request)
        if self._on_decision is not None:
            self._on_decision(request, decision)
        return decision
