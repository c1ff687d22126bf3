"""The ``client_credentials`` grant (RFC 6749 §4.4) for agents.

The agent authenticates with ``private_key_jwt`` (RFC 7523 §2.2) and may ask for:
``scope`` (a subset of its registered scopes, RFC 6749 §3.3), ``resource``
(audiences, RFC 8707 §2), ``authorization_details`` of type ``agent_task``
(RFC 9396 §2) and ``expires_in`` (a Tessera extension: a shorter lifetime).
"""

from __future__ import annotations

import re
from dataclasses import replace

from tessera.clock import Clock
from tessera.errors import InvalidDPoPProof, InvalidRequest, InvalidScope, InvalidTarget, UnauthorizedClient
from tessera.identity.agents import SCOPE_TOKEN, Agent
from tessera.policy.issuance import IssuancePolicy
from tessera.tokens.authorization_details import parse_authorization_details
from tessera.tokens.client_auth import AuthenticatedClient
from tessera.tokens.grants import ApprovalGate, ProofOfPossession, TaskBinder
from tessera.tokens.issuer import IssuedToken, TokenGrant, TokenIssuer
from tessera.tokens.requests import TokenRequest

GRANT_TYPE = "client_credentials"
MAX_RESOURCES = 10
_ABSOLUTE_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s#]+")


def requested_scopes(raw: str | None, agent: Agent) -> tuple[str, ...]:
    """RFC 6749 §3.3: absent means the agent's registered scopes; beyond them is refused."""
    if raw is None:
        return agent.scopes
    asked = tuple(dict.fromkeys(raw.split()))
    for scope in asked:
        if not SCOPE_TOKEN.fullmatch(scope):
            raise InvalidScope(f"malformed scope '{scope[:60]}'")
        if scope not in agent.scopes:
            raise InvalidScope(f"scope '{scope[:60]}' is not granted to agent '{agent.id}'")
    return asked


def requested_audience(resources: tuple[str, ...], default: str) -> tuple[str, ...]:
    """RFC 8707 §2: each ``resource`` is an absolute URI without a fragment."""
    if not resources:
        return (default,)
    if len(resources) > MAX_RESOURCES:
        raise InvalidTarget(f"at most {MAX_RESOURCES} resource parameters")
    for resource in resources:
        if len(resource) > 512 or not _ABSOLUTE_URI.fullmatch(resource):
            raise InvalidTarget(f"resource '{resource[:80]}' is not an absolute uri without a fragment")
    return tuple(dict.fromkeys(resources))


def requested_ttl(raw: str | None, agent: Agent, default: int, cap: int) -> int:
    ceiling = min(agent.max_ttl, cap)
    if raw is None:
        return min(default, ceiling)
    # isascii: str.isdigit() also accepts '²' and other digits int() refuses or reads oddly.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 5 or not 1 <= int(raw) <= 86400:
        raise InvalidRequest(f"expires_in '{raw[:20]}' must be a positive number of seconds")
    return min(int(raw), ceiling)


class ClientCredentialsGrant:
    grant_type = GRANT_TYPE

    def __init__(
        self,
        issuer: TokenIssuer,
        clock: Clock,
        *,
        audience_default: str,
        default_ttl: int,
        max_ttl: int,
        policy: IssuancePolicy | None = None,
        tasks: TaskBinder | None = None,
        approvals: ApprovalGate | None = None,
    ) -> None:
        self._issuer = issuer
        self._clock = clock
        self._audience_default = audience_default
        self._default_ttl = default_ttl
        self._max_ttl = max_ttl
        self._policy = policy
        self._tasks = tasks
        self._approvals = approvals

    def can_handle(self, request: TokenRequest) -> bool:
        return request.grant_type == GRANT_TYPE

    def handle(
        self, request: TokenRequest, client: AuthenticatedClient, pop: ProofOfPossession | None
    ) -> IssuedToken:
        agent = client.agent
        now = self._clock.now()
        if not agent.is_usable_at(now):
            reason = "expired" if agent.state.value == "active" else agent.state.value
            raise UnauthorizedClient(f"agent '{agent.id}' is {reason}; no tokens are issued to it")
        if agent.require_dpop and pop is None:
            raise InvalidDPoPProof(f"agent '{agent.id}' requires a dpop proof")
        grant = TokenGrant(
            agent=agent,
            scopes=requested_scopes(request.params.get("scope"), agent),
            audience=requested_audience(request.resources, self._audience_default),
            ttl=requested_ttl(request.params.get("expires_in"), agent, self._default_ttl, self._max_ttl),
            cnf_jkt=pop.jkt if pop else None,
            authorization_details=tuple(
                parse_authorization_details(request.params.get("authorization_details"))
            ),
            client_single_use=client.single_use,
            dpop_single_use=pop.single_use if pop else None,
            grant_type=GRANT_TYPE,
            client_method=client.method,
            client_ip=request.client_ip,
        )
        task = None
        if self._tasks is not None:
            grant, task = self._tasks.bind(grant)
        if self._policy is not None:
            verdict = self._policy.check(
                agent,
                scopes=grant.scopes,
                audience=grant.audience,
                authorization_details=grant.authorization_details,
                client_ip=request.client_ip,
                task_facts=task,
                approvals_allowed=self._approvals is not None,
            )
            if verdict.needs_approval and self._approvals is not None:
                # CIBA §7.3: answered with an auth_req_id, unless break-glass lets it through.
                self._approvals.token_needs_approval(
                    grant,
                    verdict.obligations,
                    policy_version=verdict.policy_version,
                    policies=verdict.policies,
                    callback_token=request.params.get("client_notification_token"),
                )
            grant = replace(
                grant,
                ttl=verdict.cap_ttl(grant.ttl),
                policy_version=verdict.policy_version,
                policies=verdict.policies,
                decision_ids=verdict.decision_ids,
            )
        return self._issuer.issue(grant)
