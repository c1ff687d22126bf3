"""RFC 9449 §4.3: the ``htu`` of a DPoP proof against the request URI, as data."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest

from tessera.tokens.dpop import verify_dpop_proof
from tessera.tokens.jose import JwsError
from tests.unit.helpers import private_key, sign_jwt

VECTORS = json.loads((Path(__file__).parent / "vectors" / "rfc9449_htu.json").read_text())
NOW = 1_800_000_000
KEY = private_key()


def cases() -> list[Any]:
    request = VECTORS["request"]
    rows = [(c["htu"], request, c["match"], c["why"]) for c in VECTORS["cases"]]
    rows += [(p["htu"], p["request"], p["match"], p["why"]) for p in VECTORS["pairs"]]
    return [pytest.param(htu, req, match, id=f"{htu} vs {req}") for htu, req, match, _ in rows]


def proof_for(htu: str) -> str:
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": dict(KEY.as_dict(private=False))}
    claims = {"jti": secrets.token_urlsafe(8), "htm": "POST", "htu": htu, "iat": NOW}
    return sign_jwt(header, claims, KEY)


def verify(htu: str, request: str) -> None:
    verify_dpop_proof(proof_for(htu), method="POST", url=request, now=NOW, max_age=60, leeway=30)


@pytest.mark.parametrize(("htu", "request_uri", "match"), cases())
def test_htu_vectors(htu: str, request_uri: str, match: bool) -> None:
    if match:
        verify(htu, request_uri)
    else:
        with pytest.raises(JwsError, match="htu"):
            verify(htu, request_uri)


@pytest.mark.parametrize("htu", VECTORS["malformed"])
def test_malformed_htu_is_refused_not_crashing(htu: str) -> None:
    with pytest.raises(JwsError, match="htu"):
        verify(htu, VECTORS["request"])
