"""Validating a trusted issuer's registration, and the claim path syntax its rules use."""

from __future__ import annotations

from typing import Any

import pytest

from tessera.errors import ValidationFailed
from tessera.federation.claims import parse_path
from tessera.federation.issuers import JtiPolicy, SubjectKind, TrustedIssuer, parse_issuer
from tests.federation_issuer import LocalIssuer

CLAIMS = {
    "sub": "system:serviceaccount:payments:reporter",
    "kubernetes.io": {"namespace": "payments", "serviceaccount": {"name": "reporter"}},
    "groups": ["ci", "deploy"],
    "email_verified": True,
    "run": 42,
}


def parse(**spec: Any) -> TrustedIssuer:
    base: dict[str, Any] = {
        "issuer": "https://cluster.example",
        "jwks_url": "https://cluster.example/openid/v1/jwks",
        "subject": {"type": "agent", "agent_id": "agt_1"},
    }
    base.update(spec)
    return parse_issuer(
        {k: v for k, v in base.items() if v is not None},
        id_="iss_1",
        created_at=0.0,
        updated_at=0.0,
        default_audiences=("http://tessera.test",),
        ttl_cap=3600,
    )


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("sub", CLAIMS["sub"]),
        ("claims.sub", CLAIMS["sub"]),
        ("claims['kubernetes.io']['namespace']", "payments"),
        ('claims["kubernetes.io"].serviceaccount.name', "reporter"),
        ("claims.groups[1]", "deploy"),
        ("claims.groups[7]", None),
        ("claims.missing.deeper", None),
        ("claims.sub.length", None),
    ],
)
def test_claim_paths_read_values(path: str, value: Any) -> None:
    assert parse_path(path).read(CLAIMS) == value


@pytest.mark.parametrize(
    "path",
    [
        "",
        "claims",
        "__import__('os')",
        "claims.__class__()",
        "claims[sub]",
        "claims['a'] or 1",
        "claims['a\\'b']",
        "claims.a..b",
        "claims[-1]",
        "token.sub",
        "claims" + ".a" * 9,
        "claims['" + "x" * 300 + "']",
    ],
)
def test_claim_paths_are_a_small_grammar_never_code(path: str) -> None:
    with pytest.raises(ValidationFailed):
        parse_path(path)


def test_defaults_and_round_trip() -> None:
    issuer = parse()
    assert issuer.algorithms == ("ES256", "RS256", "EdDSA")
    assert issuer.audiences == ("http://tessera.test",)
    assert issuer.jti_policy is JtiPolicy.OPTIONAL
    assert issuer.allow_private_network is False
    assert issuer.subject.kind is SubjectKind.AGENT
    again = parse_issuer(
        issuer.config(),
        id_="iss_1",
        created_at=0.0,
        updated_at=0.0,
        default_audiences=("other",),
        ttl_cap=3600,
    )
    assert again == issuer


def test_attribute_mapping_and_required_claims() -> None:
    issuer = parse(
        attributes={"namespace": "claims['kubernetes.io']['namespace']", "run": "run", "absent": "nope"},
        required_claims=[
            {"claim": "claims['kubernetes.io'].namespace", "equals": "payments"},
            {"claim": "groups", "equals": "deploy"},
            {"claim": "email_verified", "equals": True},
            {"claim": "run"},
        ],
    )
    assert issuer.map_attributes(CLAIMS) == {"namespace": "payments", "run": "42"}
    assert all(rule.satisfied_by(CLAIMS) for rule in issuer.required_claims)
    assert not issuer.required_claims[0].satisfied_by({"kubernetes.io": {"namespace": "billing"}})
    assert not issuer.required_claims[2].satisfied_by({"email_verified": "true"})
    assert not issuer.required_claims[3].satisfied_by({})
    with pytest.raises(ValueError, match="is not a string, number or boolean"):
        parse(attributes={"groups": "groups"}).map_attributes(CLAIMS)


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ({"algorithms": ["none"]}, "algorithm 'none' is not accepted"),
        ({"algorithms": ["HS256"]}, "algorithm 'HS256' is not accepted"),
        ({"jwks_url": None}, "give exactly one of jwks_url and jwks"),
        ({"jwks": {"keys": []}}, "give exactly one of jwks_url and jwks"),
        ({"jwks_url": "http://cluster.example/jwks"}, "must use https"),
        ({"jwks_url": "https://user:pw@cluster.example/jwks"}, "must not hold credentials"),
        ({"jwks_url": "file:///etc/passwd"}, "must be an absolute https url"),
        ({"attributes": {"region": "claims.sub"}}, "invalid attribute name 'region'"),
        ({"attributes": {"ns": "claims[ns]"}}, "malformed claim path"),
        ({"subject": {"type": "root"}}, "unknown subject type 'root'"),
        ({"subject": {"type": "ephemeral", "owner": "not-an-email"}}, "invalid owner"),
        ({"subject": {"type": "ephemeral", "owner": "a@b.c", "max_ttl": 99999}}, "subject.max_ttl"),
        ({"subject": {"type": "claim", "claim": "sub", "agents": {}}}, "subject.agents must map"),
        ({"subject": {"type": "agent", "agent_id": "agt_1", "owner": "a@b.c"}}, "takes no 'owner'"),
        ({"max_token_lifetime": 0}, "max_token_lifetime"),
        ({"region": "eu west"}, "invalid region"),
        ({"jti_policy": "sometimes"}, "unknown jti_policy"),
        ({"audiences": [""]}, "an audience must be"),
        ({"surprise": 1}, "unknown trusted issuer field 'surprise'"),
        ({"allow_private_network": "yes"}, "allow_private_network must be true or false"),
    ],
)
def test_invalid_registrations_are_refused_with_a_reason(spec: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValidationFailed, match=reason):
        parse(**spec)


def test_http_jwks_only_with_allow_private_network() -> None:
    assert parse(jwks_url="http://127.0.0.1:8080/jwks", allow_private_network=True).jwks_url


def test_static_jwks_is_checked_strictly() -> None:
    issuer = LocalIssuer()
    jwks = issuer.jwks()
    assert parse(jwks_url=None, jwks=jwks).jwks == jwks
    private = {"keys": [dict(issuer.keys[issuer.kid].as_dict(private=True))]}
    with pytest.raises(ValidationFailed, match="holds private key material"):
        parse(jwks_url=None, jwks=private)
    with pytest.raises(ValidationFailed, match="unsupported key type 'oct'"):
        parse(jwks_url=None, jwks={"keys": [{"kty": "oct", "alg": "HS256"}]})
    with pytest.raises(ValidationFailed, match="no allowed algorithm fits a EC key"):
        parse(jwks_url=None, jwks=jwks, algorithms=["RS256"])
    with pytest.raises(ValidationFailed, match="not a jwk set"):
        parse(jwks_url=None, jwks={"kty": "EC"})
