"""A trusted issuer: whose JWTs Tessera accepts, how it checks them and whom they map to.

An admin registers one per external trust domain (a Kubernetes cluster, a CI
provider's OIDC issuer, a SPIFFE trust domain, another Tessera). The registration
is validated here into an immutable :class:`TrustedIssuer`; its JSON form
(:meth:`TrustedIssuer.config`) is what the database stores and the API returns.

Subject mapping, one of:

- ``{"type": "agent", "agent_id": "agt_…"}``: every subject of this issuer acts as
  one registered agent;
- ``{"type": "claim", "claim": "<path>", "agents": {"<value>": "agt_…"}}``: the
  claim's value picks a registered agent; an unlisted value is refused;
- ``{"type": "ephemeral", "owner": "<email>", "scopes": […], "max_ttl": 300}``:
  each external subject gets a short-lived local agent record of its own
  (``federation/identities.py``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from tessera.errors import ValidationFailed
from tessera.federation.claims import ClaimPath, parse_path, scalar_text
from tessera.federation.keys import DEFAULT_ALGORITHMS, FEDERATION_ALGORITHMS, JwksError, parse_jwks
from tessera.identity.agents import (
    ATTRIBUTE_KEY,
    validate_owner,
    validate_scopes,
    validate_segment,
)

MAX_AUDIENCES = 10
MAX_REQUIRED_CLAIMS = 32
MAX_ATTRIBUTE_RULES = 32
MAX_SUBJECT_MAP = 1000
MAX_TOKEN_LIFETIME_CAP = 366 * 86400
DEFAULT_MAX_TOKEN_LIFETIME = 3600
REGION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
#: Attribute names the mapping cannot take: Tessera sets them itself.
RESERVED_ATTRIBUTES = frozenset({"federated_issuer", "federated_subject", "region"})


class SubjectKind(StrEnum):
    AGENT = "agent"
    CLAIM = "claim"
    EPHEMERAL = "ephemeral"


class JtiPolicy(StrEnum):
    """What a presented assertion's ``jti`` means (RFC 7523 §3 item 7)."""

    #: A ``jti`` is single use across replicas; an assertion without one may be reused until it expires.
    OPTIONAL = "optional"
    #: Every assertion must carry a ``jti``, and it is single use.
    REQUIRED = "required"
    #: Not tracked: the issuer's tokens are reused by design (Kubernetes projected tokens).
    IGNORED = "ignored"


@dataclass(frozen=True, slots=True)
class RequiredClaim:
    path: ClaimPath
    #: ``None``: the claim must be present; otherwise it must equal this value.
    equals: str | int | float | bool | None = None

    def satisfied_by(self, claims: Mapping[str, Any]) -> bool:
        value = self.path.read(claims)
        if value is None:
            return False
        if self.equals is None:
            return True
        if isinstance(self.equals, bool) or isinstance(value, bool):
            return value is self.equals
        if isinstance(value, list):  # a multi-valued claim (groups, aud) satisfies by membership
            return self.equals in value
        return bool(value == self.equals)

    def config(self) -> dict[str, Any]:
        return {"claim": self.path.text} | ({} if self.equals is None else {"equals": self.equals})


@dataclass(frozen=True, slots=True)
class SubjectMapping:
    kind: SubjectKind
    agent_id: str | None = None
    claim: ClaimPath | None = None
    agents: Mapping[str, str] = field(default_factory=dict)
    owner: str | None = None
    scopes: tuple[str, ...] = ()
    segment: str | None = None
    max_ttl: int = 300
    require_dpop: bool = False

    def config(self) -> dict[str, Any]:
        if self.kind is SubjectKind.AGENT:
            return {"type": "agent", "agent_id": self.agent_id}
        if self.kind is SubjectKind.CLAIM:
            assert self.claim is not None  # noqa: S101 - set for this kind by parse_subject
            return {"type": "claim", "claim": self.claim.text, "agents": dict(self.agents)}
        return {
            "type": "ephemeral",
            "owner": self.owner,
            "scopes": list(self.scopes),
            "segment": self.segment,
            "max_ttl": self.max_ttl,
            "require_dpop": self.require_dpop,
        }


@dataclass(frozen=True, slots=True)
class TrustedIssuer:
    id: str
    issuer: str
    jwks_url: str | None
    jwks: dict[str, Any] | None
    audiences: tuple[str, ...]
    required_claims: tuple[RequiredClaim, ...]
    attributes: tuple[tuple[str, ClaimPath], ...]
    subject: SubjectMapping
    subject_claim: ClaimPath
    algorithms: tuple[str, ...]
    max_token_lifetime: int
    region: str | None
    allow_private_network: bool
    jti_policy: JtiPolicy
    description: str
    created_at: float
    updated_at: float

    def config(self) -> dict[str, Any]:
        """The registration as JSON: stored in the database, returned by the admin API."""
        return {
            "issuer": self.issuer,
            "jwks_url": self.jwks_url,
            "jwks": self.jwks,
            "audiences": list(self.audiences),
            "required_claims": [r.config() for r in self.required_claims],
            "attributes": {name: path.text for name, path in self.attributes},
            "subject": self.subject.config(),
            "subject_claim": self.subject_claim.text,
            "algorithms": list(self.algorithms),
            "max_token_lifetime": self.max_token_lifetime,
            "region": self.region,
            "allow_private_network": self.allow_private_network,
            "jti_policy": self.jti_policy.value,
            "description": self.description,
        }

    def map_attributes(self, claims: Mapping[str, Any]) -> dict[str, str]:
        """Attributes from the claims by the mapping rules; a rule whose claim is absent maps nothing."""
        mapped: dict[str, str] = {}
        for name, path in self.attributes:
            value = path.read(claims)
            if value is None:
                continue
            text = scalar_text(value)
            if text is None:
                raise ValueError(
                    f"claim '{path.text}' (attribute '{name}') is not a string, number or boolean"
                )
            mapped[name] = text[:1024]
        return mapped


_FIELDS = frozenset(
    {
        "issuer",
        "jwks_url",
        "jwks",
        "audiences",
        "required_claims",
        "attributes",
        "subject",
        "subject_claim",
        "algorithms",
        "max_token_lifetime",
        "region",
        "allow_private_network",
        "jti_policy",
        "description",
    }
)


def _string(value: Any, what: str, max_len: int) -> str:
    if not isinstance(value, str) or not value or len(value) > max_len or any(ord(c) < 32 for c in value):
        raise ValidationFailed(f"{what} must be 1-{max_len} printable characters")
    return value


def validate_jwks_url(url: str, allow_private_network: bool) -> str:
    """https always; http only for an issuer allowed on private networks (loopback tests, in-cluster)."""
    url = _string(url, "jwks_url", 2048)
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValidationFailed(f"jwks_url '{url[:80]}' must be an absolute https url")
    if parts.scheme == "http" and not allow_private_network:
        raise ValidationFailed(f"jwks_url '{url[:80]}' must use https (http only with allow_private_network)")
    if parts.username or parts.password or parts.fragment:
        raise ValidationFailed(f"jwks_url '{url[:80]}' must not hold credentials or a fragment")
    return url


def _required_claims(raw: Any) -> tuple[RequiredClaim, ...]:
    if not isinstance(raw, list) or len(raw) > MAX_REQUIRED_CLAIMS:
        raise ValidationFailed(f"required_claims must be a list of at most {MAX_REQUIRED_CLAIMS} entries")
    rules: list[RequiredClaim] = []
    for entry in raw:
        if not isinstance(entry, dict) or "claim" not in entry or set(entry) - {"claim", "equals"}:
            raise ValidationFailed(
                'each required claim is {"claim": <path>} or {"claim": <path>, "equals": <value>}'
            )
        equals = entry.get("equals")
        if equals is not None and (
            not isinstance(equals, str | int | float | bool) or len(str(equals)) > 512
        ):
            raise ValidationFailed(
                f"required claim '{str(entry['claim'])[:60]}': equals must be a string, number or boolean"
            )
        rules.append(RequiredClaim(parse_path(entry["claim"]), equals))
    return tuple(rules)


def _attributes(raw: Any) -> tuple[tuple[str, ClaimPath], ...]:
    if not isinstance(raw, dict) or len(raw) > MAX_ATTRIBUTE_RULES:
        raise ValidationFailed(f"attributes must map at most {MAX_ATTRIBUTE_RULES} names to claim paths")
    rules: list[tuple[str, ClaimPath]] = []
    for name, path in raw.items():
        if not ATTRIBUTE_KEY.fullmatch(name) or name in RESERVED_ATTRIBUTES:
            raise ValidationFailed(f"invalid attribute name '{str(name)[:60]}'")
        if not isinstance(path, str):
            raise ValidationFailed(f"attribute '{name}': the claim path must be a string")
        rules.append((name, parse_path(path)))
    return tuple(rules)


def _subject(raw: Any, ttl_cap: int) -> SubjectMapping:
    if not isinstance(raw, dict):
        raise ValidationFailed("subject must be an object with a 'type' of agent, claim or ephemeral")
    try:
        kind = SubjectKind(str(raw.get("type")))
    except ValueError:
        raise ValidationFailed(
            f"unknown subject type '{str(raw.get('type'))[:40]}': agent, claim or ephemeral"
        ) from None
    allowed = {
        SubjectKind.AGENT: {"type", "agent_id"},
        SubjectKind.CLAIM: {"type", "claim", "agents"},
        SubjectKind.EPHEMERAL: {"type", "owner", "scopes", "segment", "max_ttl", "require_dpop"},
    }[kind]
    if extra := set(raw) - allowed:
        raise ValidationFailed(f"subject type '{kind.value}' takes no '{sorted(extra)[0][:40]}'")
    if kind is SubjectKind.AGENT:
        return SubjectMapping(kind, agent_id=_string(raw.get("agent_id"), "subject.agent_id", 64))
    if kind is SubjectKind.CLAIM:
        agents = raw.get("agents")
        if not isinstance(agents, dict) or not 1 <= len(agents) <= MAX_SUBJECT_MAP:
            raise ValidationFailed(f"subject.agents must map 1-{MAX_SUBJECT_MAP} claim values to agent ids")
        for value, agent_id in agents.items():
            _string(value, "a subject.agents claim value", 512)
            _string(agent_id, "a subject.agents agent id", 64)
        return SubjectMapping(kind, claim=parse_path(str(raw.get("claim", ""))), agents=dict(agents))
    max_ttl = raw.get("max_ttl", 300)
    if isinstance(max_ttl, bool) or not isinstance(max_ttl, int) or not 10 <= max_ttl <= ttl_cap:
        raise ValidationFailed(f"subject.max_ttl must be between 10 and {ttl_cap} seconds")
    scopes = raw.get("scopes", [])
    if not isinstance(scopes, list):
        raise ValidationFailed("subject.scopes must be a list of scopes")
    segment = raw.get("segment")
    return SubjectMapping(
        kind,
        owner=validate_owner(str(raw.get("owner", ""))),
        scopes=validate_scopes(scopes),
        segment=validate_segment(segment if isinstance(segment, str) or segment is None else str(segment)),
        max_ttl=max_ttl,
        require_dpop=bool(raw.get("require_dpop", False)),
    )


def _key_source(
    spec: Mapping[str, Any], allow_private: bool, algorithms: tuple[str, ...]
) -> tuple[str | None, dict[str, Any] | None]:
    jwks_url, jwks = spec.get("jwks_url"), spec.get("jwks")
    if (jwks_url is None) == (jwks is None):
        raise ValidationFailed("give exactly one of jwks_url and jwks")
    if jwks_url is not None:
        return validate_jwks_url(jwks_url, allow_private), None
    try:
        parse_jwks(jwks, algorithms, strict=True)
    except JwksError as exc:
        raise ValidationFailed(f"invalid jwks: {exc}") from exc
    return None, jwks


def parse_issuer(
    spec: Mapping[str, Any],
    *,
    id_: str,
    created_at: float,
    updated_at: float,
    default_audiences: tuple[str, ...],
    ttl_cap: int,
) -> TrustedIssuer:
    """Validate a registration (the admin API body, or a stored config); ``ValidationFailed`` says why."""
    if extra := set(spec) - _FIELDS:
        raise ValidationFailed(f"unknown trusted issuer field '{sorted(extra)[0][:40]}'")
    issuer = _string(spec.get("issuer"), "issuer", 512)
    allow_private = spec.get("allow_private_network", False)
    if not isinstance(allow_private, bool):
        raise ValidationFailed("allow_private_network must be true or false")
    algorithms = spec.get("algorithms") or list(DEFAULT_ALGORITHMS)
    if not isinstance(algorithms, list) or not all(isinstance(a, str) for a in algorithms):
        raise ValidationFailed("algorithms must be a list of jws algorithm names")
    for alg in algorithms:
        if alg not in FEDERATION_ALGORITHMS:
            raise ValidationFailed(
                f"algorithm '{alg[:20]}' is not accepted "
                f"(use {', '.join(FEDERATION_ALGORITHMS)}; never none or hmac)"
            )
    jwks_url, jwks = _key_source(spec, allow_private, tuple(algorithms))
    audiences = spec.get("audiences") or list(default_audiences)
    if not isinstance(audiences, list) or not 1 <= len(audiences) <= MAX_AUDIENCES:
        raise ValidationFailed(f"audiences must be a list of 1-{MAX_AUDIENCES} strings")
    audiences = [_string(a, "an audience", 512) for a in audiences]
    lifetime = spec.get("max_token_lifetime", DEFAULT_MAX_TOKEN_LIFETIME)
    if (
        isinstance(lifetime, bool)
        or not isinstance(lifetime, int)
        or not 10 <= lifetime <= MAX_TOKEN_LIFETIME_CAP
    ):
        raise ValidationFailed(f"max_token_lifetime must be between 10 and {MAX_TOKEN_LIFETIME_CAP} seconds")
    region = spec.get("region")
    if region is not None and (not isinstance(region, str) or not REGION.fullmatch(region)):
        raise ValidationFailed(f"invalid region '{str(region)[:40]}'")
    try:
        jti_policy = JtiPolicy(spec.get("jti_policy", JtiPolicy.OPTIONAL.value))
    except ValueError:
        raise ValidationFailed(
            f"unknown jti_policy '{str(spec.get('jti_policy'))[:40]}': optional, required or ignored"
        ) from None
    description = spec.get("description") or ""
    if not isinstance(description, str):
        raise ValidationFailed("description must be a string")
    return TrustedIssuer(
        id=id_,
        issuer=issuer,
        jwks_url=jwks_url,
        jwks=jwks,
        audiences=tuple(dict.fromkeys(audiences)),
        required_claims=_required_claims(spec.get("required_claims") or []),
        attributes=_attributes(spec.get("attributes") or {}),
        subject=_subject(spec.get("subject"), ttl_cap),
        subject_claim=parse_path(spec.get("subject_claim") or "sub"),
        algorithms=tuple(dict.fromkeys(algorithms)),
        max_token_lifetime=lifetime,
        region=region,
        allow_private_network=allow_private,
        jti_policy=jti_policy,
        description=description[:2000],
        created_at=created_at,
        updated_at=updated_at,
    )
