"""Subject and actor tokens a token exchange accepts (RFC 8693 §2.1), whoever issued them.

A :class:`SubjectTokenVerifier` turns a presented token into a
:class:`VerifiedSubjectToken` or raises :class:`~tessera.errors.InvalidGrant`.
Tessera's own access tokens have one verifier (``tokens/grants/token_exchange.py``);
tokens from trusted external issuers have another (``federation/``). The exchange
grant asks each verifier in turn whether it accepts the token's (unverified)
issuer, then lets that one verify it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

#: RFC 8693 §3 token type identifiers.
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"


@dataclass(frozen=True, slots=True)
class VerifiedSubjectToken:
    """What a verified subject (or actor) token says, in the terms the exchange needs."""

    issuer: str
    subject: str
    expires_at: float
    #: ``jti`` when the token has one (Tessera's own tokens always do).
    token_id: str | None = None
    scopes: tuple[str, ...] = ()
    audience: tuple[str, ...] = ()
    #: Every verified claim, including ``act``, ``may_act`` and ``authorization_details``.
    claims: Mapping[str, Any] = field(default_factory=dict)
    #: Attributes mapped from the claims by a trusted issuer's rules (federation).
    attributes: Mapping[str, Any] = field(default_factory=dict)
    region: str | None = None
    #: RFC 9449 §6.1 / RFC 7800: the key the token is bound to, if any.
    cnf_jkt: str | None = None
    #: True when this Tessera issued the token (so it is in ``issued_tokens``).
    local: bool = False


class SubjectTokenVerifier(Protocol):
    def accepts(self, issuer: str) -> bool:
        """Whether this verifier is responsible for tokens claiming ``issuer``."""
        ...

    def verify(self, token: str, *, now: float) -> VerifiedSubjectToken:
        """Verify signature, issuer, audience, expiry and revocation; raise ``InvalidGrant``."""
        ...
