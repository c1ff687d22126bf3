"""Token exchange (RFC 8693) with a subject token from a registered trusted issuer, end to end.

The person's identity provider is a local test issuer serving its JWKS on loopback;
the runtime's real verifier list (this server, then trusted issuers) checks it.
"""

from __future__ import annotations

import re

import pytest

from tessera.errors import InvalidGrant
from tessera.runtime import Runtime
from tests.federation_issuer import LocalIssuer
from tests.unit.federation.conftest import trust
from tests.unit.helpers import b64, register, unverified_claims
from tests.unit.tokens.exchange_helpers import exchange


def test_a_trusted_issuers_token_is_exchanged_by_an_agent(
    runtime: Runtime, local_issuer: LocalIssuer
) -> None:
    trust(runtime, local_issuer, subject={"type": "agent", "agent_id": "agt_unused"})
    agent = register(runtime, scopes=("reports:read",))
    now = runtime.clock.now()
    person = local_issuer.token(now=now, subject="alice@example.com", scope="reports:read reports:write")
    issued = exchange(runtime, agent, person, scope="reports:read")
    claims = unverified_claims(issued.access_token)
    assert claims["act"] == {"sub": agent.id}
    assert claims["scope"] == "reports:read"
    assert claims["sub"] == f"{local_issuer.issuer}#alice@example.com"
    assert claims["exp"] <= now + 600


def test_tokens_of_untrusted_or_removed_issuers_are_refused(
    runtime: Runtime, local_issuer: LocalIssuer
) -> None:
    registered = trust(runtime, local_issuer, subject={"type": "agent", "agent_id": "agt_unused"})
    agent = register(runtime, scopes=("reports:read",))
    now = runtime.clock.now()
    with pytest.raises(
        InvalidGrant, match=re.escape("invalid subject_token: aud 'https://elsewhere.example'")
    ):
        exchange(runtime, agent, local_issuer.token(now=now, audience="https://elsewhere.example"))
    runtime.trusted_issuers.remove(registered.id)
    with pytest.raises(InvalidGrant, match="untrusted issuer"):
        exchange(runtime, agent, local_issuer.token(now=now))


@pytest.mark.parametrize("alg", ["RS256", "EdDSA"])
def test_subject_tokens_signed_with_rsa_or_eddsa_are_exchanged(runtime: Runtime, alg: str) -> None:
    # Most identity providers sign with RSA: the exchange must not refuse them before the
    # issuer's verifier, which holds each issuer and key to its own algorithms, sees them.
    issuer = LocalIssuer(alg=alg).start()
    try:
        trust(runtime, issuer, subject={"type": "agent", "agent_id": "agt_unused"}, algorithms=[alg])
        agent = register(runtime, scopes=("reports:read",))
        person = issuer.token(now=runtime.clock.now(), subject="bob@example.com", scope="reports:read")
        claims = unverified_claims(exchange(runtime, agent, person, scope="reports:read").access_token)
        assert claims["sub"] == f"{issuer.issuer}#bob@example.com"
    finally:
        issuer.stop()


def test_an_hmac_subject_token_is_refused_before_any_verifier(runtime: Runtime) -> None:
    header = b64(b'{"alg":"HS256","typ":"JWT"}')
    body = b64(b'{"iss":"https://idp.example","sub":"x"}')
    agent = register(runtime, scopes=("reports:read",))
    with pytest.raises(InvalidGrant, match="subject token is not a valid jwt"):
        exchange(runtime, agent, f"{header}.{body}.{b64(b'sig')}")
