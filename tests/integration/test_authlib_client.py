"""A third-party OAuth client library drives the flow: authlib's httpx ``OAuth2Client``.

Configuration a real authlib user needs, and why:

- ``PrivateKeyJWT(token_endpoint=<issuer>)``: authlib signs the assertion with
  ``aud`` = the token endpoint URL unless ``token_endpoint`` is given (RFC 7523 §3
  allows either; Tessera requires the issuer identifier, as
  draft-ietf-oauth-rfc7523bis recommends). Its constructor's ``token_endpoint``
  is the value used as ``aud``.
- ``alg="ES256"`` and a ``kid`` header: authlib defaults to RS256.
- ``claims={"exp": …}``: authlib's assertions live 3600 s by default, and
  ``PrivateKeyJWT`` offers no lifetime option, while Tessera caps assertion
  lifetimes at 300 s; an explicit ``exp`` claim overrides the default. (authlib
  also writes its generated ``jti`` into the ``claims`` dict it was given, so a
  ``PrivateKeyJWT`` with ``claims`` must be built per request, or every
  assertion after the first would be a replay.)
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import httpx
import pytest
from authlib.deprecate import AuthlibDeprecationWarning
from authlib.integrations.base_client import OAuthError
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from tests.integration.helpers import introspect, register_agent
from tests.support import ServerProcess

with warnings.catch_warnings():
    # authlib >= 1.7 warns on import that it prefers the "httpx2" package; httpx is what we use.
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import OAuth2Client

pytestmark = pytest.mark.integration


def authlib_client(server: ServerProcess, agent_id: str, private_jwk: dict[str, Any]) -> OAuth2Client:
    metadata = httpx.get(f"{server.url}/.well-known/oauth-authorization-server").json()
    client = OAuth2Client(
        client_id=agent_id,
        client_secret=ECKey.import_key(private_jwk),
        token_endpoint_auth_method="private_key_jwt",
        token_endpoint=metadata["token_endpoint"],
        scope="reports:read",
    )
    client.register_client_auth_method(
        PrivateKeyJWT(
            token_endpoint=metadata["issuer"],
            alg="ES256",
            headers={"kid": private_jwk["kid"]},
            claims={"exp": int(time.time()) + 60},
        )
    )
    return client


def test_authlib_fetches_a_client_credentials_token(sqlite_server: ServerProcess) -> None:
    server = sqlite_server
    with server.admin() as admin:
        agent_id, private_jwk, _ = register_agent(admin, "reporter", scopes=["reports:read", "reports:write"])
        jwks = KeySet.import_key_set(admin.get("/.well-known/jwks.json").json())

    with authlib_client(server, agent_id, private_jwk) as client:
        token = client.fetch_token(grant_type="client_credentials")

    assert token["token_type"] == "Bearer"
    assert token["scope"] == "reports:read"
    assert token["expires_in"] == 300
    decoded = jwt.decode(token["access_token"], jwks, algorithms=["ES256"])
    assert decoded.header["typ"] == "at+jwt"
    claims = decoded.claims
    assert claims["iss"] == server.url
    assert claims["aud"] == server.url
    assert claims["client_id"] == agent_id
    assert claims["sub"] == agent_id
    assert claims["scope"] == "reports:read"
    assert claims["exp"] - claims["iat"] == 300
    assert claims["jti"]
    assert introspect(server.url, token["access_token"], admin=server.admin_token)["active"] is True


@pytest.mark.parametrize(
    ("lifetime", "reason"),
    [
        pytest.param(None, "lifetime exceeds 300 seconds", id="default-lifetime"),
        pytest.param(60, "aud must be the issuer", id="token-endpoint-aud"),
    ],
)
def test_authlib_defaults_are_refused_with_invalid_client(
    sqlite_server: ServerProcess, lifetime: int | None, reason: str
) -> None:
    """Unconfigured, authlib signs a one-hour assertion for ``aud`` = token endpoint: refused."""
    server = sqlite_server
    with server.admin() as admin:
        agent_id, private_jwk, _ = register_agent(admin, "reporter", scopes=["reports:read"])
    claims = {"exp": int(time.time()) + lifetime} if lifetime else None
    token_endpoint = f"{server.url}/oauth2/token"
    with OAuth2Client(
        client_id=agent_id,
        client_secret=ECKey.import_key(private_jwk),
        token_endpoint_auth_method="private_key_jwt",
        token_endpoint=token_endpoint,
    ) as client:
        client.register_client_auth_method(
            PrivateKeyJWT(alg="ES256", headers={"kid": private_jwk["kid"]}, claims=claims)
        )
        with pytest.raises(OAuthError) as refused:
            client.fetch_token(grant_type="client_credentials")
    assert refused.value.error == "invalid_client"
    assert reason in refused.value.description
