"""Delegation chains (RFC 8693 §4.1 ``act``) and verifying subject tokens, shared by the
token exchange grant and by revocation of external subject tokens (RFC 7009)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tessera.errors import InvalidGrant
from tessera.federation.keys import FEDERATION_ALGORITHMS
from tessera.tokens.access_tokens import AccessToken
from tessera.tokens.jose import JwsError, parse_compact
from tessera.tokens.subject_tokens import SubjectTokenVerifier, VerifiedSubjectToken

MAX_SUBJECT_TOKEN_BYTES = 16 * 1024
#: Far above any configurable depth: bounds the walk of a hostile external ``act``.
MAX_ACT_NESTING = 32


def act_chain(claims: Mapping[str, Any]) -> list[str]:
    """The actors of a token's ``act`` claim, outermost (most recent) first (RFC 8693 §4.1)."""
    actors: list[str] = []
    act = claims.get("act")
    while act is not None:
        if not isinstance(act, dict) or not isinstance(act.get("sub"), str):
            raise InvalidGrant("subject token has a malformed 'act' claim")
        if len(actors) >= MAX_ACT_NESTING:
            raise InvalidGrant(f"subject token's 'act' claim nests more than {MAX_ACT_NESTING} actors")
        actors.append(act["sub"])
        act = act.get("act")
    return actors


def nest_act(actor: str, previous: Any) -> dict[str, Any]:
    """The new ``act``: the current actor outermost, the subject token's chain inside it."""
    act: dict[str, Any] = {"sub": actor}
    if previous is not None:
        act["act"] = previous
    return act


def external_token_id(issuer: str, token: VerifiedSubjectToken, raw: str) -> str:
    """A stable id for an external token, used as ``parent_jti`` (64 characters at most)."""
    basis = f"{issuer}\n{token.token_id}" if token.token_id else f"{issuer}\n{raw}"
    return "ext-" + hashlib.sha256(basis.encode()).hexdigest()[:60]


def chain_subject(token: VerifiedSubjectToken) -> str:
    """The chain's original subject: the subject token's own, namespaced if external."""
    return token.subject if token.local else f"{token.issuer}#{token.subject}"


def unverified_issuer(raw: str) -> str:
    """The ``iss`` a token claims, read only to pick the verifier that will check it.

    Any algorithm some verifier can check is let through here (trusted issuers sign
    with RSA too); the chosen verifier holds each issuer and key to its own list.
    """
    try:
        parsed = parse_compact(raw, max_bytes=MAX_SUBJECT_TOKEN_BYTES, algorithms=FEDERATION_ALGORITHMS)
        issuer = parsed.claims.get("iss")
    except JwsError as exc:
        raise InvalidGrant(f"subject token is not a valid jwt: {exc}") from exc
    if not isinstance(issuer, str) or not issuer:
        raise InvalidGrant("subject token has no 'iss' claim")
    return issuer


def verify_token(raw: str, verifiers: Sequence[SubjectTokenVerifier], now: float) -> VerifiedSubjectToken:
    """Verify a subject or actor token with the verifier responsible for its issuer."""
    issuer = unverified_issuer(raw)
    verifier = next((v for v in verifiers if v.accepts(issuer)), None)
    if verifier is None:
        raise InvalidGrant(f"untrusted issuer '{issuer[:80]}'")
    return verifier.verify(raw, now=now)


class LocalSubjectTokens:
    """Verifies this server's own access tokens as subject or actor tokens (RFC 8693 §2.1).

    Signature, issuer, lifetime, revocation and the holder agent's state are all
    checked by :class:`~tessera.tokens.introspection.TokenValidator`.
    """

    def __init__(self, issuer: str, verify: Callable[[str], AccessToken]) -> None:
        self._issuer = issuer
        self._verify = verify

    def accepts(self, issuer: str) -> bool:
        return issuer == self._issuer

    def verify(self, token: str, *, now: float) -> VerifiedSubjectToken:
        try:
            verified = self._verify(token)
        except JwsError as exc:
            raise InvalidGrant(f"subject token rejected: {exc}") from exc
        return VerifiedSubjectToken(
            issuer=verified.issuer,
            subject=verified.subject,
            expires_at=verified.expires_at,
            token_id=verified.jti,
            scopes=verified.scopes,
            audience=verified.audience,
            claims=verified.claims,
            cnf_jkt=verified.cnf_jkt,
            local=True,
        )
