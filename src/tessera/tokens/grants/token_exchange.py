"""The token exchange grant (RFC 8693) for delegation chains: person → agent → sub-agent.

The acting agent authenticates as at every grant (``private_key_jwt``) and presents
a ``subject_token`` (§2.1): a Tessera access token or a token from a trusted
issuer. It receives an access token (§2.2.1) for itself that names the whole chain:

- ``sub`` is the chain's original subject (§4.1 examples: the party acted for);
  for an external subject it is ``<issuer>#<sub>`` so subjects of different
  issuers never collide with each other or with agent ids;
- ``client_id`` is the acting agent;
- ``act`` (§4.1) names the acting agent, nesting the subject token's own ``act``:
  the outermost actor is the current one, the innermost the earliest.

The new token can only narrow the subject token: scopes and audiences are subsets
(and scopes also of the agent's registration and of what policy allows), its
lifetime ends no later than the subject token's, and the chain holds at most
``max_depth`` actors. ``may_act`` (§4.4) in the subject token must name the actor.
A DPoP-bound subject token (RFC 9449 §6.1 ``cnf.jkt``) is exchanged only with a
DPoP proof made with that same key; the new token is bound to the proof's key.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from tessera.clock import Clock
from tessera.errors import (
    InvalidAuthorizationDetails,
    InvalidDPoPProof,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    InvalidTarget,
    UnauthorizedClient,
)
from tessera.identity.agents import SCOPE_TOKEN, Agent
from tessera.policy.context import Delegation
from tessera.policy.issuance import IssuancePolicy
from tessera.tokens.authorization_details import AGENT_TASK, parse_authorization_details
from tessera.tokens.client_auth import AuthenticatedClient
from tessera.tokens.delegation import (
    MAX_SUBJECT_TOKEN_BYTES,
    act_chain,
    chain_subject,
    external_token_id,
    nest_act,
    verify_token,
)
from tessera.tokens.grants import ProofOfPossession, TaskBinder
from tessera.tokens.grants.client_credentials import requested_audience
from tessera.tokens.issuer import IssuedToken, TokenGrant, TokenIssuer
from tessera.tokens.requests import TokenRequest
from tessera.tokens.subject_tokens import (
    ACCESS_TOKEN_TYPE,
    ID_TOKEN_TYPE,
    JWT_TOKEN_TYPE,
    SubjectTokenVerifier,
    VerifiedSubjectToken,
)

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
#: RFC 8693 §3: the token types a subject or actor token may be.
SUBJECT_TOKEN_TYPES = frozenset({ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE, ID_TOKEN_TYPE})
#: What this server issues (§2.2.1 ``issued_token_type``).
ISSUED_TOKEN_TYPE = ACCESS_TOKEN_TYPE
MAX_SUBJECT_LENGTH = 320
MAX_TARGETS = 10


@dataclass(frozen=True, slots=True)
class ExchangeLimits:
    audience_default: str
    default_ttl: int
    max_ttl: int
    max_depth: int


def _token_param(request: TokenRequest, name: str, *, required: bool) -> tuple[str | None, str | None]:
    token = request.params.get(name)
    kind = request.params.get(f"{name}_type")
    if not token:
        if required:
            raise InvalidRequest(f"missing {name}")
        if kind:
            raise InvalidRequest(f"{name}_type given without {name}")
        return None, None
    if not kind:
        raise InvalidRequest(f"{name} given without {name}_type")
    if kind not in SUBJECT_TOKEN_TYPES:
        raise InvalidRequest(f"unsupported {name}_type '{kind[:80]}'")
    if len(token) > MAX_SUBJECT_TOKEN_BYTES:
        raise InvalidRequest(f"{name} exceeds {MAX_SUBJECT_TOKEN_BYTES} bytes")
    return token, kind


def narrow_scopes(raw: str | None, subject: VerifiedSubjectToken, agent: Agent) -> tuple[str, ...]:
    """Requested scopes must be held by the subject token and registered to the actor."""
    if raw is None:
        narrowed = tuple(s for s in subject.scopes if s in agent.scopes)
        if not narrowed and subject.scopes:
            raise InvalidScope(f"agent '{agent.id}' holds none of the subject token's scopes")
        return narrowed
    asked = tuple(dict.fromkeys(raw.split()))
    for scope in asked:
        if not SCOPE_TOKEN.fullmatch(scope):
            raise InvalidScope(f"malformed scope '{scope[:60]}'")
        if scope not in subject.scopes:
            raise InvalidScope(f"scope '{scope[:60]}' is not held by the subject token")
        if scope not in agent.scopes:
            raise InvalidScope(f"scope '{scope[:60]}' is not granted to agent '{agent.id}'")
    return asked


def narrow_audience(request: TokenRequest, subject: VerifiedSubjectToken, default: str) -> tuple[str, ...]:
    """RFC 8693 §2.1 ``resource``/``audience``: each must be an audience of the subject token."""
    resources = requested_audience(request.resources, default) if request.resources else ()
    audiences = tuple(a for a in request.audiences if a)
    for name in audiences:
        if len(name) > 512 or any(c.isspace() for c in name):
            raise InvalidTarget(f"audience '{name[:80]}' is not valid")
    targets = tuple(dict.fromkeys((*resources, *audiences)))
    if len(targets) > MAX_TARGETS:
        raise InvalidTarget(f"at most {MAX_TARGETS} resource and audience parameters")
    if not targets:
        if not subject.audience:
            raise InvalidTarget("the subject token names no audience; ask for one with resource")
        return subject.audience
    for target in targets:
        if target not in subject.audience:
            raise InvalidTarget(f"audience '{target[:80]}' is not an audience of the subject token")
    return targets


def narrow_details(raw: str | None, subject: VerifiedSubjectToken) -> tuple[dict[str, Any], ...]:
    """The subject token's ``agent_task`` carries over; a request may only narrow its lists."""
    held = [d for d in subject.claims.get("authorization_details", []) or [] if isinstance(d, dict)]
    task = next((d for d in held if d.get("type") == AGENT_TASK), None)
    if task is not None:
        # Normalised as if requested: an external issuer's odd details never reach our token.
        try:
            task = parse_authorization_details(json.dumps([task]))[0]
        except InvalidAuthorizationDetails as exc:
            raise InvalidGrant(f"subject token has invalid authorization_details: {exc.description}") from exc
    asked = parse_authorization_details(raw)
    if not asked:
        return (task,) if task is not None else ()
    wanted = asked[0]
    if task is None:
        return (wanted,)
    if wanted["task_id"] != task.get("task_id"):
        held_id = str(task.get("task_id"))[:60]
        raise InvalidAuthorizationDetails(
            f"task '{wanted['task_id'][:60]}' is not the subject token's task '{held_id}'"
        )
    for name in ("resources", "actions"):
        allowed = task.get(name) or []
        for item in wanted[name]:
            if allowed and item not in allowed:
                raise InvalidAuthorizationDetails(
                    f"agent_task {name[:-1]} '{item[:60]}' is not in the subject token's task"
                )
        if not wanted[name]:
            wanted = {**wanted, name: list(allowed)}
    return ({**wanted, "purpose": task["purpose"]},)


def carries_task(subject: VerifiedSubjectToken, grant: TokenGrant) -> bool:
    """Whether the subject token was already bound to the grant's task (so it is delegated)."""
    held = subject.claims.get("authorization_details") or []
    ids = {d.get("task_id") for d in held if isinstance(d, dict) and d.get("type") == AGENT_TASK}
    return grant.task_id is not None and grant.task_id in ids


def check_may_act(subject: VerifiedSubjectToken, actor: Agent, issuer: str) -> None:
    """RFC 8693 §4.4: when the subject token names who may act for it, the actor must match."""
    may_act = subject.claims.get("may_act")
    if may_act is None:
        return
    if not isinstance(may_act, dict) or not may_act:
        raise InvalidGrant("subject token has a malformed 'may_act' claim")
    if "iss" in may_act and may_act["iss"] != issuer:
        raise InvalidGrant(f"may_act names issuer '{str(may_act['iss'])[:80]}', not this server")
    for claim in ("sub", "client_id"):
        if claim in may_act and may_act[claim] != actor.id:
            raise InvalidGrant(f"may_act does not allow agent '{actor.id}' to act for the subject")
    if "sub" not in may_act and "client_id" not in may_act:
        raise InvalidGrant("may_act names no 'sub' or 'client_id' this server can match")


class TokenExchangeGrant:
    """RFC 8693 §2: ``grant_type=urn:ietf:params:oauth:grant-type:token-exchange``."""

    grant_type = GRANT_TYPE

    def __init__(
        self,
        issuer: TokenIssuer,
        clock: Clock,
        verifiers: Sequence[SubjectTokenVerifier],
        limits: ExchangeLimits,
        *,
        server_issuer: str,
        policy: IssuancePolicy | None = None,
        is_revoked: Callable[[str], bool] | None = None,
        tasks: TaskBinder | None = None,
    ) -> None:
        self._issuer = issuer
        self._clock = clock
        #: The caller's list, not a copy: verifiers added later (federation) are consulted too.
        self.verifiers = verifiers
        self._limits = limits
        self._server_issuer = server_issuer
        self._policy = policy
        self._is_revoked = is_revoked
        self._tasks = tasks

    def can_handle(self, request: TokenRequest) -> bool:
        return request.grant_type == GRANT_TYPE

    def _actor_token(self, request: TokenRequest, agent: Agent, now: float) -> None:
        """§2.1 ``actor_token``: when given it must be this server's token issued to the client."""
        raw, _kind = _token_param(request, "actor_token", required=False)
        if raw is None:
            return
        actor = verify_token(raw, self.verifiers, now)
        if not actor.local or actor.claims.get("client_id") != agent.id:
            raise InvalidGrant(f"actor_token does not identify the authenticated agent '{agent.id}'")

    def _ttl(self, request: TokenRequest, agent: Agent, remaining: int) -> int:
        ceiling = min(agent.max_ttl, self._limits.max_ttl, remaining)
        raw = request.params.get("expires_in")
        if raw is None:
            return min(self._limits.default_ttl, ceiling)
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 5 or not 1 <= int(raw) <= 86400:
            raise InvalidRequest(f"expires_in '{raw[:20]}' must be a positive number of seconds")
        if int(raw) > remaining:
            raise InvalidRequest(
                f"expires_in '{raw}' outlives the subject token, which expires in {remaining} s"
            )
        return min(int(raw), ceiling)

    def handle(
        self, request: TokenRequest, client: AuthenticatedClient, pop: ProofOfPossession | None
    ) -> IssuedToken:
        agent = client.agent
        now = self._clock.now()
        if not agent.is_usable_at(now):
            reason = "expired" if agent.state.value == "active" else agent.state.value
            raise UnauthorizedClient(f"agent '{agent.id}' is {reason}; no tokens are issued to it")
        raw = _token_param(request, "subject_token", required=True)[0] or ""
        requested_type = request.params.get("requested_token_type")
        if requested_type is not None and requested_type != ISSUED_TOKEN_TYPE:
            raise InvalidRequest(f"unsupported requested_token_type '{requested_type[:80]}'")
        subject = verify_token(raw, self.verifiers, now)
        self._actor_token(request, agent, now)
        parent = subject.token_id if subject.local else external_token_id(subject.issuer, subject, raw)
        if parent is None or (self._is_revoked is not None and self._is_revoked(parent)):
            raise InvalidGrant("subject token has been revoked")
        if subject.cnf_jkt is not None and (pop is None or pop.jkt != subject.cnf_jkt):
            raise InvalidGrant("subject token is dpop-bound; a dpop proof made with its key is required")
        if agent.require_dpop and pop is None:
            raise InvalidDPoPProof(f"agent '{agent.id}' requires a dpop proof")
        check_may_act(subject, agent, self._server_issuer)
        previous = act_chain(subject.claims)
        depth = len(previous) + 1
        if depth > self._limits.max_depth:
            raise InvalidGrant(
                f"the delegation chain would hold {depth} actors; the maximum is {self._limits.max_depth}"
            )
        original = chain_subject(subject)
        if len(original) > MAX_SUBJECT_LENGTH:
            raise InvalidGrant(f"subject '{original[:80]}' is longer than {MAX_SUBJECT_LENGTH} characters")
        remaining = int(subject.expires_at - now)
        if remaining < 1:
            raise InvalidGrant("subject token has expired")
        act = nest_act(agent.id, subject.claims.get("act"))
        delegation = Delegation(depth=depth, actors=(*reversed(previous), agent.id), subject=original)
        grant = TokenGrant(
            agent=agent,
            scopes=narrow_scopes(request.params.get("scope"), subject, agent),
            audience=narrow_audience(request, subject, self._limits.audience_default),
            ttl=self._ttl(request, agent, remaining),
            cnf_jkt=pop.jkt if pop else None,
            authorization_details=narrow_details(request.params.get("authorization_details"), subject),
            client_single_use=client.single_use,
            dpop_single_use=pop.single_use if pop else None,
            extra_claims={"sub": original, "act": act},
            grant_type=GRANT_TYPE,
            client_method=client.method,
            client_ip=request.client_ip,
            subject=original,
            parent_jti=parent,
            parent_local=subject.local,
            issued_token_type=ISSUED_TOKEN_TYPE,
        )
        task = None
        if self._tasks is not None:
            grant, task = self._tasks.bind(grant, delegated=carries_task(subject, grant))
        if self._policy is not None:
            verdict = self._policy.check(
                agent,
                scopes=grant.scopes,
                audience=grant.audience,
                authorization_details=grant.authorization_details,
                client_ip=request.client_ip,
                delegation=delegation,
                task_facts=task,
            )
            grant = replace(
                grant,
                ttl=verdict.cap_ttl(grant.ttl),
                policy_version=verdict.policy_version,
                policies=verdict.policies,
                decision_ids=verdict.decision_ids,
            )
        return self._issuer.issue(grant)
