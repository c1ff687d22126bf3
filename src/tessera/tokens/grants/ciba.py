"""The CIBA grant (OpenID CIBA Core 1.0 §10.1): redeem an approved ``auth_req_id`` for a token.

``grant_type=urn:openid:params:grant-type:ciba`` with ``auth_req_id``, the agent
authenticating as at any token request (and DPoP if it wants, or must). While the
request waits the answer is a §11 error (``authorization_pending``, ``slow_down``,
``access_denied``, ``expired_token``); once approved the token is issued exactly
once: the redemption is claimed in ``used_jtis`` in the token's own transaction, so
a replay on any replica gets ``invalid_grant``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from tessera.clock import Clock
from tessera.errors import InvalidDPoPProof, InvalidRequest, UnauthorizedClient
from tessera.identity.agents import Agent
from tessera.tokens.client_auth import AuthenticatedClient, SingleUse
from tessera.tokens.grants import ProofOfPossession
from tessera.tokens.issuer import IssuedToken, TokenGrant, TokenIssuer
from tessera.tokens.requests import TokenRequest

GRANT_TYPE = "urn:openid:params:grant-type:ciba"
MAX_AUTH_REQ_ID = 256


@dataclass(frozen=True, slots=True)
class ApprovedAccess:
    """What an approved request lets the agent have, and how to claim it once."""

    request_id: str
    scopes: tuple[str, ...]
    audience: tuple[str, ...]
    authorization_details: tuple[dict[str, Any], ...]
    ttl: int
    redemption: SingleUse
    policy_version: str | None = None
    policies: tuple[str, ...] = ()


class Redeemer(Protocol):
    def approved(self, auth_req_id: str, agent: Agent) -> ApprovedAccess:
        """The approved access, or raise the CIBA §11 error."""
        ...

    def redeemed(self, approved: ApprovedAccess, jti: str) -> None: ...


class CibaGrant:
    grant_type = GRANT_TYPE

    def __init__(self, issuer: TokenIssuer, clock: Clock, redeemer: Redeemer) -> None:
        self._issuer = issuer
        self._clock = clock
        self._redeemer = redeemer

    def can_handle(self, request: TokenRequest) -> bool:
        return request.grant_type == GRANT_TYPE

    def handle(
        self, request: TokenRequest, client: AuthenticatedClient, pop: ProofOfPossession | None
    ) -> IssuedToken:
        agent = client.agent
        auth_req_id = request.params.get("auth_req_id")
        if not auth_req_id or len(auth_req_id) > MAX_AUTH_REQ_ID:
            raise InvalidRequest("missing or oversized auth_req_id")
        if not agent.is_usable_at(self._clock.now()):
            raise UnauthorizedClient(f"agent '{agent.id}' is {agent.state.value}; no tokens are issued to it")
        if agent.require_dpop and pop is None:
            raise InvalidDPoPProof(f"agent '{agent.id}' requires a dpop proof")
        approved = self._redeemer.approved(auth_req_id, agent)
        issued = self._issuer.issue(
            TokenGrant(
                agent=agent,
                scopes=approved.scopes,
                audience=approved.audience,
                ttl=approved.ttl,
                cnf_jkt=pop.jkt if pop else None,
                authorization_details=approved.authorization_details,
                client_single_use=client.single_use,
                dpop_single_use=pop.single_use if pop else None,
                policy_version=approved.policy_version,
                policies=approved.policies,
                grant_type=GRANT_TYPE,
                client_method=client.method,
                client_ip=request.client_ip,
                redemption=approved.redemption,
            )
        )
        self._redeemer.redeemed(approved, issued.jti)
        return issued
