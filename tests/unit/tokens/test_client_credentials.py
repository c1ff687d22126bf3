"""The client_credentials grant: scope (RFC 6749 §3.3), resource (RFC 8707), tasks (RFC 9396), lifetime."""

from __future__ import annotations

import json

import pytest

from tessera.clock import ManualClock
from tessera.errors import (
    InvalidAuthorizationDetails,
    InvalidRequest,
    InvalidScope,
    InvalidTarget,
    UnauthorizedClient,
    UnsupportedGrantType,
    ValidationFailed,
)
from tessera.identity.agents import Transition
from tessera.runtime import Runtime
from tessera.sdk.verifier import VerificationError
from tessera.tokens.introspection import Caller
from tests.unit.helpers import (
    Client,
    assertion,
    client_auth,
    local_verifier,
    register,
    request_token,
    token_request,
    unverified_claims,
)

TASK = {"type": "agent_task", "task_id": "T-42", "purpose": "triage tickets", "actions": ["read"]}


def claims_of(runtime: Runtime, client: Client, **params: str) -> dict[str, object]:
    return unverified_claims(request_token(runtime, client, **params).access_token)


def test_the_token_carries_the_rfc_9068_claims(runtime: Runtime, client: Client) -> None:
    claims = claims_of(runtime, client)
    assert set(claims) == {"iss", "sub", "aud", "client_id", "iat", "exp", "jti", "scope"}
    assert claims["iss"] == runtime.issuer
    assert claims["sub"] == claims["client_id"] == client.id
    assert claims["aud"] == runtime.issuer
    assert claims["exp"] - claims["iat"] == runtime.settings.access_token_ttl  # type: ignore[operator]


def test_the_default_scope_is_everything_registered(runtime: Runtime, client: Client) -> None:
    assert claims_of(runtime, client)["scope"] == "tickets:read tickets:write"


def test_a_subset_of_scopes_may_be_asked_for(runtime: Runtime, client: Client) -> None:
    issued = request_token(runtime, client, scope="tickets:read tickets:read")
    assert issued.scope == "tickets:read"
    assert unverified_claims(issued.access_token)["scope"] == "tickets:read"


@pytest.mark.parametrize("scope", ["admin", "tickets:read admin", "tickets:READ", "tickets:read\\x", 'a"b'])
def test_scopes_beyond_the_registered_ones_are_refused(runtime: Runtime, client: Client, scope: str) -> None:
    with pytest.raises(InvalidScope) as refused:
        request_token(runtime, client, scope=scope)
    assert refused.value.error == "invalid_scope"


def test_an_agent_without_scopes_gets_none(runtime: Runtime) -> None:
    bare = register(runtime, scopes=())
    assert claims_of(runtime, bare)["scope"] == ""
    with pytest.raises(InvalidScope):
        request_token(runtime, bare, scope="tickets:read")


def test_resource_sets_the_audience(runtime: Runtime, client: Client) -> None:
    assert (
        claims_of(runtime, client, resource="https://api.example/tickets")["aud"]
        == "https://api.example/tickets"
    )
    issued = request_token(
        runtime, client, pairs=[("resource", "https://a.example"), ("resource", "urn:example:b")]
    )
    assert unverified_claims(issued.access_token)["aud"] == ["https://a.example", "urn:example:b"]


@pytest.mark.parametrize(
    "resource",
    [
        "/tickets",
        "tickets",
        "//api.example/tickets",
        "https://api.example/tickets#frag",
        "https://api example/",
        "https://api.example/\n",
        "https://api.example\n",
        "https://" + "a" * 600,
    ],
)
def test_resource_must_be_an_absolute_uri_without_fragment(
    runtime: Runtime, client: Client, resource: str
) -> None:
    with pytest.raises(InvalidTarget) as refused:
        request_token(runtime, client, resource=resource)
    assert refused.value.error == "invalid_target"


def test_at_most_ten_resources(runtime: Runtime, client: Client) -> None:
    with pytest.raises(InvalidTarget, match="at most"):
        request_token(runtime, client, pairs=[("resource", f"https://r{i}.example") for i in range(11)])


def test_the_sdk_checks_the_audience(runtime: Runtime, client: Client) -> None:
    api = "https://api.example/tickets"
    for_api = request_token(runtime, client, resource=api).access_token
    for_issuer = request_token(runtime, client).access_token
    verifier = local_verifier(runtime, audience=api)
    assert verifier.verify_token(for_api).audience == (api,)
    with pytest.raises(VerificationError, match="audience"):
        verifier.verify_token(for_issuer)
    other = request_token(runtime, client, pairs=[("resource", "https://b.example"), ("resource", api)])
    assert verifier.verify_token(other.access_token)


def test_task_details_are_carried_by_the_token(runtime: Runtime, client: Client) -> None:
    issued = request_token(runtime, client, authorization_details=json.dumps([TASK]))
    expected = [{**TASK, "resources": []}]
    assert unverified_claims(issued.access_token)["authorization_details"] == expected
    assert issued.response()["authorization_details"] == expected
    verified = runtime.validator.verify(issued.access_token)
    assert verified.task_id == "T-42"
    body, _ = runtime.introspector.introspect(issued.access_token, Caller(admin=True))
    assert body["authorization_details"] == expected


def test_invalid_task_details_refuse_the_request(runtime: Runtime, client: Client) -> None:
    with pytest.raises(InvalidAuthorizationDetails):
        request_token(runtime, client, authorization_details=json.dumps([{**TASK, "extra": 1}]))


def test_expires_in_can_shorten_the_lifetime(runtime: Runtime, client: Client) -> None:
    issued = request_token(runtime, client, expires_in="60")
    claims = unverified_claims(issued.access_token)
    assert issued.expires_in == 60
    assert claims["exp"] - claims["iat"] == 60


def test_expires_in_never_lengthens_the_lifetime(runtime: Runtime, client: Client) -> None:
    issued = request_token(runtime, client, expires_in="86400")
    claims = unverified_claims(issued.access_token)
    assert issued.expires_in == client.agent.max_ttl == runtime.settings.access_token_ttl
    assert claims["exp"] - claims["iat"] == client.agent.max_ttl


@pytest.mark.parametrize("value", ["0", "-5", "1.5", "abc", "", " 60", "86401", "9" * 5000, "²", "٣"])
def test_malformed_expires_in_is_refused(runtime: Runtime, client: Client, value: str) -> None:
    with pytest.raises(InvalidRequest, match="expires_in"):
        request_token(runtime, client, expires_in=value)


def test_the_agents_max_ttl_caps_every_token(runtime: Runtime) -> None:
    short = register(runtime, max_ttl=60)
    assert request_token(runtime, short).expires_in == 60
    assert request_token(runtime, short, expires_in="120").expires_in == 60
    assert request_token(runtime, short, expires_in="30").expires_in == 30


def test_max_ttl_is_bounded_by_the_server_cap(runtime: Runtime) -> None:
    long = register(runtime, max_ttl=runtime.settings.max_access_token_ttl)
    assert (
        request_token(runtime, long, expires_in="86400").expires_in == runtime.settings.max_access_token_ttl
    )
    with pytest.raises(ValidationFailed, match="max_ttl"):
        register(runtime, max_ttl=runtime.settings.max_access_token_ttl + 1)
    with pytest.raises(ValidationFailed, match="max_ttl"):
        register(runtime, max_ttl=5)


@pytest.mark.parametrize("transition", [Transition.SUSPEND, Transition.QUARANTINE, Transition.DECOMMISSION])
def test_only_active_agents_get_tokens(runtime: Runtime, client: Client, transition: Transition) -> None:
    runtime.agents.transition(client.id, transition)
    with pytest.raises(UnauthorizedClient, match=r"no tokens are issued"):
        request_token(runtime, client)


def test_an_expired_agent_gets_no_tokens(runtime: Runtime, clock: ManualClock) -> None:
    temporary = register(runtime, expires_at=clock.now() + 3600)
    assert request_token(runtime, temporary)
    clock.advance(3600)
    with pytest.raises(UnauthorizedClient, match="expired"):
        request_token(runtime, temporary)


def test_request_shape(runtime: Runtime, client: Client) -> None:
    auth = client_auth(assertion(runtime, client))
    with pytest.raises(UnsupportedGrantType):
        runtime.token_endpoint.handle(token_request(runtime, [("grant_type", "password"), *auth]))
    with pytest.raises(InvalidRequest, match="missing grant_type"):
        runtime.token_endpoint.handle(token_request(runtime, auth))
    with pytest.raises(InvalidRequest, match="repeated"):
        token_request(runtime, [("grant_type", "client_credentials"), ("scope", "a"), ("scope", "b")])
    get = token_request(runtime, [("grant_type", "client_credentials"), *auth])
    with pytest.raises(InvalidRequest, match="only POST"):
        runtime.token_endpoint.handle(
            type(get)(params=get.params, resources=get.resources, method="GET", url=get.url)
        )


def test_a_token_too_large_to_verify_is_not_issued(runtime: Runtime, client: Client) -> None:
    """Details within their own limit can still make a token over the verifiers' size limit."""
    resources = [f"https://api.example/{'r' * 180}/{i}" for i in range(30)]
    big = json.dumps([{**TASK, "purpose": "p" * 400, "resources": resources}])
    with pytest.raises(InvalidAuthorizationDetails, match="over the 8192-byte limit"):
        request_token(runtime, client, authorization_details=big)
    # A request just under the limit is issued, and verifies.
    fits = json.dumps([{**TASK, "resources": resources[:12]}])
    token = request_token(runtime, client, authorization_details=fits).access_token
    assert len(token) <= runtime.settings.max_token_bytes
    assert runtime.validator.verify(token).task_id == "T-42"
