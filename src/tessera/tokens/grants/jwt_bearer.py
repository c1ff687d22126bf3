"""The JWT bearer grant (RFC 7523 §2.1): a workload trades a trusted issuer's JWT for a local token.

``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`` with ``assertion=<jwt>``.
The assertion is verified against the trusted issuer it names
(``federation/verifier.py``, RFC 7523 §3) and mapped to a local agent: a fixed
one, one picked by a claim, or an ephemeral federated identity
(``federation/identities.py``).

- **Client authentication** is optional (§3.1): a workload from another trust
  domain has no local credential, the assertion is its authentication. A client
  that does authenticate is checked as at every grant and its assertion ``jti``
  is consumed.
- **Replay**: an assertion ``jti`` is single use across replicas (§3 item 7),
  per the issuer's ``jti_policy``: ``optional`` (default: single use when
  present, reusable until it expires when absent), ``required`` or ``ignored``
  (for issuers whose tokens are presented repeatedly by design, like Kubernetes
  projected service-account tokens). The claim commits in the transaction that
  records the issued token, so a refused request does not spend the assertion.
- **Policy**: as for ``client_credentials``, the PDP decides ``issue_token`` for
  each audience, with the principal's mapped attributes as tags.
- **The token** names the local agent in ``sub``/``client_id`` and the external
  identity in ``federation``: ``{"iss", "sub", "issuer_id", "attributes",
  "region"}``. Its lifetime is capped by the agent's ``max_ttl`` and by the
  assertion's remaining lifetime, so it never outlives what it was traded for.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from tessera.audit.records import Actor, ActorType
from tessera.audit.service import RequestContext
from tessera.clock import Clock
from tessera.errors import (
    InvalidClient,
    InvalidDPoPProof,
    InvalidGrant,
    InvalidRequest,
    ServiceUnavailable,
    UnauthorizedClient,
)
from tessera.federation.identities import FederatedIdentities, policy_view
from tessera.federation.issuers import JtiPolicy
from tessera.federation.verifier import FederatedIdentity, FederatedTokenVerifier
from tessera.policy.issuance import IssuancePolicy
from tessera.storage.single_use import single_use_key
from tessera.tokens.authorization_details import parse_authorization_details
from tessera.tokens.client_auth import AuthenticatedClient, SingleUse
from tessera.tokens.grants import ProofOfPossession, TaskBinder
from tessera.tokens.grants.client_credentials import requested_audience, requested_scopes, requested_ttl
from tessera.tokens.issuer import IssuedToken, TokenGrant, TokenIssuer
from tessera.tokens.requests import TokenRequest

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
FEDERATION_CLAIM = "federation"


def federation_claim(identity: FederatedIdentity) -> dict[str, Any]:
    claim: dict[str, Any] = {
        "iss": identity.issuer.issuer,
        "sub": identity.subject,
        "issuer_id": identity.issuer.id,
    }
    if identity.attributes:
        claim["attributes"] = dict(identity.attributes)
    if identity.region:
        claim["region"] = identity.region
    return claim


class JwtBearerGrant:
    grant_type = GRANT_TYPE
    client_authentication_optional = True

    def __init__(
        self,
        issuer: TokenIssuer,
        clock: Clock,
        verifier: FederatedTokenVerifier,
        identities: FederatedIdentities,
        *,
        audience_default: str,
        default_ttl: int,
        max_ttl: int,
        leeway: float,
        policy: IssuancePolicy | None = None,
        tasks: TaskBinder | None = None,
    ) -> None:
        self._issuer = issuer
        self._clock = clock
        self._verifier = verifier
        self._identities = identities
        self._audience_default = audience_default
        self._default_ttl = default_ttl
        self._max_ttl = max_ttl
        self._leeway = leeway
        self._policy = policy
        self._tasks = tasks

    def can_handle(self, request: TokenRequest) -> bool:
        return request.grant_type == GRANT_TYPE

    def handle(
        self, request: TokenRequest, client: AuthenticatedClient | None, pop: ProofOfPossession | None
    ) -> IssuedToken:
        assertion = request.params.get("assertion")
        if not assertion:
            raise InvalidRequest("missing assertion")
        now = self._clock.now()
        if client is not None and not client.agent.is_usable_at(now):
            raise InvalidClient(
                f"client '{client.agent.id}' is {client.agent.state.value}; it cannot authenticate"
            )
        identity = self._verifier.verify_identity(assertion, now=now)
        jti_policy = identity.issuer.jti_policy
        if jti_policy is JtiPolicy.REQUIRED and identity.token_id is None:
            raise InvalidGrant(f"assertions of issuer '{identity.issuer.issuer[:80]}' must carry a 'jti'")
        context = RequestContext(
            Actor(ActorType.AGENT, f"{identity.issuer.issuer}#{identity.subject}"[:200]), ip=request.client_ip
        )
        try:
            resolved = self._identities.resolve(identity)
        except SQLAlchemyError as exc:
            raise ServiceUnavailable("agent registry is unavailable") from exc
        agent = resolved.agent
        if not agent.is_usable_at(now):
            reason = "expired" if agent.state.value == "active" else agent.state.value
            raise UnauthorizedClient(f"agent '{agent.id}' is {reason}; no tokens are issued to it")
        if agent.require_dpop and pop is None:
            raise InvalidDPoPProof(f"agent '{agent.id}' requires a dpop proof")
        remaining = int(identity.expires_at - now)
        if remaining < 1:
            raise InvalidGrant("invalid assertion: jwt has expired")
        ttl = min(
            requested_ttl(request.params.get("expires_in"), agent, self._default_ttl, self._max_ttl),
            remaining,
        )
        grant = TokenGrant(
            agent=agent,
            scopes=requested_scopes(request.params.get("scope"), agent),
            audience=requested_audience(request.resources, self._audience_default),
            ttl=max(ttl, 1),
            cnf_jkt=pop.jkt if pop else None,
            authorization_details=tuple(
                parse_authorization_details(request.params.get("authorization_details"))
            ),
            client_single_use=client.single_use if client else None,
            dpop_single_use=pop.single_use if pop else None,
            extra_claims={FEDERATION_CLAIM: federation_claim(identity)},
            grant_type=GRANT_TYPE,
            client_method=client.method if client else "none",
            client_ip=request.client_ip,
            subject=f"{identity.issuer.issuer}#{identity.subject}"[:320],
        )
        task = None
        if self._tasks is not None:  # a registered task's limits, as for client_credentials
            grant, task = self._tasks.bind(grant)
        if self._policy is not None:
            verdict = self._policy.check(
                policy_view(agent, identity),
                scopes=grant.scopes,
                audience=grant.audience,
                authorization_details=grant.authorization_details,
                client_ip=request.client_ip,
                task_facts=task,
            )
            grant = replace(
                grant,
                ttl=verdict.cap_ttl(grant.ttl),
                policy_version=verdict.policy_version,
                policies=verdict.policies,
                decision_ids=verdict.decision_ids,
            )
        if resolved.needs_record:
            try:
                # Only now, with policy's permit, is an ephemeral identity created or renewed.
                grant = replace(grant, agent=self._identities.record(identity, context))
            except SQLAlchemyError as exc:
                raise ServiceUnavailable("agent registry is unavailable") from exc
        if identity.token_id is not None and jti_policy is not JtiPolicy.IGNORED:
            # RFC 7523 §3 item 7: claimed once, across every replica, with the token itself.
            key = single_use_key("jwt_bearer", identity.issuer.issuer, identity.token_id)
            grant = replace(grant, assertion_single_use=SingleUse(key, identity.expires_at + self._leeway))
        return self._issuer.issue(grant)
