"""Token exchange (RFC 8693): chains only narrow, and every escalation is refused with its code."""

from __future__ import annotations

import json

import pytest

from tessera.clock import ManualClock
from tessera.errors import (
    InvalidAuthorizationDetails,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    InvalidTarget,
    TesseraError,
)
from tessera.identity.agents import Transition
from tessera.policy.service import starter_bundle
from tessera.runtime import Runtime
from tessera.server.oauth import metadata
from tessera.tokens.introspection import Caller
from tessera.tokens.subject_tokens import ID_TOKEN_TYPE
from tests.unit.helpers import (
    Client,
    b64_json,
    private_key,
    register,
    request_token,
    sign_jwt,
    unverified_claims,
)
from tests.unit.policy.helpers import audit_records
from tests.unit.policy.test_issuance import apply_tokens_policy
from tests.unit.tokens.exchange_helpers import JWT_TOKEN_TYPE, PersonIssuer, exchange

CRM = "https://crm.example/api"


@pytest.fixture
def person(runtime: Runtime) -> PersonIssuer:
    idp = PersonIssuer(runtime)
    runtime.subject_verifiers.append(idp.verifier())
    return idp


@pytest.fixture
def agent(runtime: Runtime) -> Client:
    return register(runtime)


@pytest.fixture
def sub_agent(runtime: Runtime) -> Client:
    return register(runtime, scopes=("tickets:read",))


def refused(error: type[TesseraError], call: object, *args: object, **kwargs: object) -> TesseraError:
    with pytest.raises(error) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    assert caught.value.description
    assert "\n" not in caught.value.description
    return caught.value


def test_an_agent_token_exchanged_by_a_sub_agent_names_both(
    runtime: Runtime, agent: Client, sub_agent: Client
) -> None:
    parent = request_token(runtime, agent, scope="tickets:read tickets:write")
    issued = exchange(runtime, sub_agent, parent.access_token, scope="tickets:read")
    claims = unverified_claims(issued.access_token)
    assert claims["sub"] == agent.id
    assert claims["client_id"] == sub_agent.id
    assert claims["act"] == {"sub": sub_agent.id}
    assert claims["scope"] == "tickets:read"
    body = issued.response()
    assert body["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    assert body["token_type"] == "Bearer"


def test_scopes_default_to_what_both_the_subject_token_and_the_actor_hold(
    runtime: Runtime, agent: Client, sub_agent: Client
) -> None:
    parent = request_token(runtime, agent)
    assert exchange(runtime, sub_agent, parent.access_token).scope == "tickets:read"


def test_a_person_token_chain_is_recorded_hop_by_hop(
    runtime: Runtime, person: PersonIssuer, agent: Client, sub_agent: Client
) -> None:
    first = exchange(runtime, agent, person.token(), subject_token_type=JWT_TOKEN_TYPE, resource=CRM)
    second = exchange(runtime, sub_agent, first.access_token, scope="tickets:read")
    with runtime.engine.connect() as conn:
        rows = {
            row.jti: row
            for row in conn.exec_driver_sql("SELECT jti, agent_id, subject, parent_jti FROM issued_tokens")
        }
    one, two = rows[first.jti], rows[second.jti]
    assert one.subject == two.subject == f"{person.issuer}#alice@example.com"
    assert one.parent_jti.startswith("ext-")
    assert len(one.parent_jti) == 64
    assert two.parent_jti == first.jti
    assert (one.agent_id, two.agent_id) == (agent.id, sub_agent.id)
    record = audit_records(runtime.engine, "token.issued")[-1]
    assert record["data"]["act"] == {"sub": sub_agent.id, "act": {"sub": agent.id}}
    assert record["data"]["delegation_depth"] == 2
    assert record["delegation"] == [f"{person.issuer}#alice@example.com", agent.id, sub_agent.id]
    assert record["data"]["sub"] == f"{person.issuer}#alice@example.com"
    assert record["data"]["grant_type"] == "urn:ietf:params:oauth:grant-type:token-exchange"


def test_introspection_shows_the_whole_chain(
    runtime: Runtime, person: PersonIssuer, agent: Client, sub_agent: Client
) -> None:
    first = exchange(runtime, agent, person.token(), subject_token_type=JWT_TOKEN_TYPE)
    second = exchange(runtime, sub_agent, first.access_token, scope="tickets:read")
    body, _ = runtime.introspector.introspect(second.access_token, Caller(admin=True))
    assert body["active"] is True
    assert body["sub"] == f"{person.issuer}#alice@example.com"
    assert body["client_id"] == sub_agent.id
    assert body["act"] == {"sub": sub_agent.id, "act": {"sub": agent.id}}
    assert body["delegation_depth"] == 2
    assert body["delegation"] == {
        "depth": 2,
        "actors": [agent.id, sub_agent.id],
        "subject": f"{person.issuer}#alice@example.com",
    }
    plain, _ = runtime.introspector.introspect(request_token(runtime, agent).access_token, Caller(admin=True))
    assert plain["delegation_depth"] == 0
    assert "act" not in plain


# --- escalation attempts -----------------------------------------------------------------------


def test_a_wider_scope_is_invalid_scope(runtime: Runtime, agent: Client, sub_agent: Client) -> None:
    parent = request_token(runtime, agent, scope="tickets:write")
    error = refused(InvalidScope, exchange, runtime, sub_agent, parent.access_token, scope="tickets:read")
    assert "not held by the subject token" in error.description


def test_a_scope_the_actor_is_not_registered_for_is_invalid_scope(
    runtime: Runtime, agent: Client, sub_agent: Client
) -> None:
    parent = request_token(runtime, agent)
    error = refused(InvalidScope, exchange, runtime, sub_agent, parent.access_token, scope="tickets:write")
    assert f"not granted to agent '{sub_agent.id}'" in error.description


def test_another_audience_is_invalid_target(runtime: Runtime, agent: Client, sub_agent: Client) -> None:
    parent = request_token(runtime, agent, resource="https://api.example/tickets")
    for params in ({"resource": "https://evil.example/"}, {"audience": "billing"}):
        error = refused(InvalidTarget, exchange, runtime, sub_agent, parent.access_token, **params)
        assert "is not an audience of the subject token" in error.description
    narrowed = exchange(runtime, sub_agent, parent.access_token, audience="https://api.example/tickets")
    assert unverified_claims(narrowed.access_token)["aud"] == "https://api.example/tickets"


def test_a_longer_lifetime_is_refused_and_the_default_ends_with_the_subject_token(
    runtime: Runtime, clock: ManualClock, agent: Client, sub_agent: Client
) -> None:
    parent = request_token(runtime, agent, expires_in="120")
    clock.advance(100)
    refused(InvalidRequest, exchange, runtime, sub_agent, parent.access_token, expires_in="60")
    issued = exchange(runtime, sub_agent, parent.access_token)
    parent_exp = unverified_claims(parent.access_token)["exp"]
    assert issued.expires_in == 20
    assert unverified_claims(issued.access_token)["exp"] <= parent_exp


def test_a_chain_deeper_than_the_maximum_is_invalid_grant(runtime: Runtime, agent: Client) -> None:
    hops = [register(runtime) for _ in range(4)]
    token = request_token(runtime, agent).access_token
    for hop in hops[:3]:
        token = exchange(runtime, hop, token).access_token
    assert len(unverified_claims(token)["act"]) == 2  # depth 3: {sub, act: {...}}
    error = refused(InvalidGrant, exchange, runtime, hops[3], token)
    assert error.description == "the delegation chain would hold 4 actors; the maximum is 3"


def test_a_forged_act_does_not_verify(runtime: Runtime, agent: Client, sub_agent: Client) -> None:
    parent = request_token(runtime, agent).access_token
    header, _payload, signature = parent.split(".")
    claims = unverified_claims(parent)
    # The same signature over a payload that claims someone else acted: the signature fails.
    forged_claims = {**claims, "sub": "ceo@example.com", "act": {"sub": agent.id}}
    tampered = f"{header}.{b64_json(forged_claims)}.{signature}"
    refused(InvalidGrant, exchange, runtime, sub_agent, tampered)
    # A token signed by a key that is not the server's, claiming the server as issuer.
    outsider = sign_jwt(
        {"alg": "ES256", "typ": "at+jwt", "kid": "made-up"}, forged_claims, private_key("ES256")
    )
    error = refused(InvalidGrant, exchange, runtime, sub_agent, outsider)
    assert "unknown or retired signing key" in error.description


def test_re_exchanging_never_sheds_an_actor(
    runtime: Runtime, person: PersonIssuer, agent: Client, sub_agent: Client
) -> None:
    first = exchange(runtime, agent, person.token(), subject_token_type=JWT_TOKEN_TYPE)
    second = exchange(runtime, sub_agent, first.access_token, scope="tickets:read")
    # The sub-agent trades its token again, hoping to appear as the only actor.
    third = exchange(runtime, sub_agent, second.access_token, scope="tickets:read")
    act = unverified_claims(third.access_token)["act"]
    assert act == {"sub": sub_agent.id, "act": {"sub": sub_agent.id, "act": {"sub": agent.id}}}
    assert unverified_claims(third.access_token)["sub"] == f"{person.issuer}#alice@example.com"


def test_an_untrusted_issuer_is_invalid_grant(runtime: Runtime, sub_agent: Client) -> None:
    stranger = PersonIssuer(runtime, issuer="https://stranger.example")
    error = refused(
        InvalidGrant, exchange, runtime, sub_agent, stranger.token(), subject_token_type=JWT_TOKEN_TYPE
    )
    assert error.description == "untrusted issuer 'https://stranger.example'"


def test_a_person_token_signed_by_another_key_is_invalid_grant(
    runtime: Runtime, person: PersonIssuer, sub_agent: Client
) -> None:
    other = PersonIssuer(runtime).key
    forged = person.token(key=other)
    refused(InvalidGrant, exchange, runtime, sub_agent, forged, subject_token_type=JWT_TOKEN_TYPE)


def test_an_expired_subject_token_is_invalid_grant(
    runtime: Runtime, clock: ManualClock, person: PersonIssuer, agent: Client, sub_agent: Client
) -> None:
    parent = request_token(runtime, agent, expires_in="60")
    person_token = person.token(lifetime=60)
    clock.advance(120)
    error = refused(InvalidGrant, exchange, runtime, sub_agent, parent.access_token)
    assert "expired" in error.description
    refused(InvalidGrant, exchange, runtime, sub_agent, person_token, subject_token_type=JWT_TOKEN_TYPE)


def test_a_revoked_subject_token_is_invalid_grant(runtime: Runtime, agent: Client, sub_agent: Client) -> None:
    parent = request_token(runtime, agent)
    runtime.revoker.revoke(jti=parent.jti, reason="test")
    error = refused(InvalidGrant, exchange, runtime, sub_agent, parent.access_token)
    assert "revoked" in error.description


def test_a_suspended_subject_agent_makes_its_token_invalid_grant(
    runtime: Runtime, agent: Client, sub_agent: Client
) -> None:
    parent = request_token(runtime, agent)
    runtime.agents.transition(agent.id, Transition.SUSPEND, reason="test")
    refused(InvalidGrant, exchange, runtime, sub_agent, parent.access_token)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"subject_token": None}, "missing subject_token"),
        ({"subject_token_type": None}, "subject_token given without subject_token_type"),
        ({"subject_token_type": "urn:x:saml"}, "unsupported subject_token_type 'urn:x:saml'"),
        ({"actor_token": "@TOKEN"}, "actor_token given without actor_token_type"),
        ({"actor_token_type": ID_TOKEN_TYPE}, "actor_token_type given without actor_token"),
        ({"requested_token_type": "urn:x:refresh"}, "unsupported requested_token_type 'urn:x:refresh'"),
        ({"subject_token": "x" * 20000}, "subject_token exceeds 16384 bytes"),
    ],
)
def test_malformed_requests_are_invalid_request(
    runtime: Runtime, agent: Client, sub_agent: Client, params: dict[str, str | None], expected: str
) -> None:
    token = request_token(runtime, agent).access_token
    params = dict(params)  # parametrize shares the dict between the sqlite and postgres runs
    subject = params.pop("subject_token", token)
    kind = params.pop("subject_token_type", "urn:ietf:params:oauth:token-type:access_token")
    extra = {k: (token if v == "@TOKEN" else v) for k, v in params.items() if v is not None}
    error = refused(InvalidRequest, exchange, runtime, sub_agent, subject, subject_token_type=kind, **extra)
    assert error.description == expected


def test_a_subject_token_that_is_not_a_jwt_is_invalid_grant(runtime: Runtime, sub_agent: Client) -> None:
    refused(InvalidGrant, exchange, runtime, sub_agent, "not-a-jwt")


def test_an_actor_token_must_be_the_clients_own(runtime: Runtime, agent: Client, sub_agent: Client) -> None:
    parent = request_token(runtime, agent).access_token
    own = request_token(runtime, sub_agent).access_token
    kind = "urn:ietf:params:oauth:token-type:access_token"
    issued = exchange(runtime, sub_agent, parent, actor_token=own, actor_token_type=kind)
    assert unverified_claims(issued.access_token)["act"] == {"sub": sub_agent.id}
    error = refused(
        InvalidGrant, exchange, runtime, sub_agent, parent, actor_token=parent, actor_token_type=kind
    )
    assert "does not identify the authenticated agent" in error.description


def test_may_act_is_honoured(
    runtime: Runtime, person: PersonIssuer, agent: Client, sub_agent: Client
) -> None:
    token = person.token(may_act={"sub": agent.id})
    issued = exchange(runtime, agent, token, subject_token_type=JWT_TOKEN_TYPE)
    assert unverified_claims(issued.access_token)["act"] == {"sub": agent.id}
    error = refused(InvalidGrant, exchange, runtime, sub_agent, token, subject_token_type=JWT_TOKEN_TYPE)
    assert error.description == f"may_act does not allow agent '{sub_agent.id}' to act for the subject"
    for malformed in ({}, "someone", {"iss": "https://elsewhere.example", "sub": agent.id}, {"email": "x"}):
        refused(
            InvalidGrant,
            exchange,
            runtime,
            agent,
            person.token(may_act=malformed),
            subject_token_type=JWT_TOKEN_TYPE,
        )


def test_a_dpop_bound_subject_token_needs_a_proof_of_its_key(
    runtime: Runtime, agent: Client, sub_agent: Client
) -> None:
    key = private_key("ES256")
    parent = request_token(runtime, agent, dpop_key=key)
    assert parent.token_type == "DPoP"
    error = refused(InvalidGrant, exchange, runtime, sub_agent, parent.access_token)
    assert "dpop-bound" in error.description
    refused(InvalidGrant, exchange, runtime, sub_agent, parent.access_token, dpop_key=private_key("ES256"))
    issued = exchange(runtime, sub_agent, parent.access_token, dpop_key=key)
    expected = key.thumbprint()
    assert unverified_claims(issued.access_token)["cnf"] == {"jkt": expected}
    assert issued.token_type == "DPoP"


def test_a_bearer_subject_token_exchanged_with_a_proof_gives_a_bound_token(
    runtime: Runtime, agent: Client, sub_agent: Client
) -> None:
    key = private_key("Ed25519")
    issued = exchange(runtime, sub_agent, request_token(runtime, agent).access_token, dpop_key=key)
    assert unverified_claims(issued.access_token)["cnf"]["jkt"] == key.thumbprint()


def test_the_task_carries_over_and_may_only_narrow(
    runtime: Runtime, agent: Client, sub_agent: Client
) -> None:
    task = {
        "type": "agent_task",
        "task_id": "T-7",
        "purpose": "triage",
        "resources": ["tickets/1", "tickets/2"],
        "actions": ["read"],
    }
    parent = request_token(runtime, agent, authorization_details=json.dumps([task])).access_token
    inherited = exchange(runtime, sub_agent, parent)
    assert unverified_claims(inherited.access_token)["authorization_details"] == [task]
    narrowed = exchange(
        runtime, sub_agent, parent, authorization_details=json.dumps([{**task, "resources": ["tickets/1"]}])
    )
    assert unverified_claims(narrowed.access_token)["authorization_details"][0]["resources"] == ["tickets/1"]
    for wider in (
        {**task, "resources": ["tickets/3"]},
        {**task, "actions": ["write"]},
        {**task, "task_id": "T-8"},
    ):
        refused(
            InvalidAuthorizationDetails,
            exchange,
            runtime,
            sub_agent,
            parent,
            authorization_details=json.dumps([wider]),
        )


def test_policy_sees_the_delegation_chain(
    runtime: Runtime, person: PersonIssuer, agent: Client, sub_agent: Client
) -> None:
    apply_tokens_policy(
        runtime,
        starter_bundle().files["tokens.cedar"]
        + '\n@id("no-sub-delegation-for-alice")\n'
        + 'forbid (principal, action == Action::"issue_token", resource)\n'
        + f'when {{ context.delegation.depth > 1 && context.delegation.actors.contains("{agent.id}") '
        + f'&& context.delegation.subject == "{person.issuer}#alice@example.com" }};\n',
    )
    first = exchange(runtime, agent, person.token(), subject_token_type=JWT_TOKEN_TYPE)
    error = refused(InvalidScope, exchange, runtime, sub_agent, first.access_token, scope="tickets:read")
    assert "does not allow" in error.description
    bob = exchange(runtime, agent, person.token("bob@example.com"), subject_token_type=JWT_TOKEN_TYPE)
    assert exchange(runtime, sub_agent, bob.access_token, scope="tickets:read").scope == "tickets:read"


def test_metadata_advertises_the_grant(runtime: Runtime) -> None:
    meta = metadata(runtime)
    assert "urn:ietf:params:oauth:grant-type:token-exchange" in meta["grant_types_supported"]
    assert meta["token_exchange_issued_token_types_supported"] == [
        "urn:ietf:params:oauth:token-type:access_token"
    ]


def test_hostile_act_and_subject_claims_of_a_trusted_issuer_are_invalid_grant(
    runtime: Runtime, person: PersonIssuer, agent: Client
) -> None:
    deep: dict[str, object] = {"sub": "bottom"}
    for level in range(40):
        deep = {"sub": f"actor-{level}", "act": deep}
    cases = {
        "subject token's 'act' claim nests more than 32 actors": person.token(act=deep),
        "subject token has a malformed 'act' claim": person.token(act={"client_id": "x"}),
        "is longer than 320 characters": person.token("p" * 400),
    }
    for message, token in cases.items():
        error = refused(InvalidGrant, exchange, runtime, agent, token, subject_token_type=JWT_TOKEN_TYPE)
        assert message in error.description


def test_an_external_chain_counts_toward_the_depth_limit(
    runtime: Runtime, person: PersonIssuer, agent: Client
) -> None:
    token = person.token(act={"sub": "upstream-1", "act": {"sub": "upstream-2"}})
    issued = exchange(runtime, agent, token, subject_token_type=JWT_TOKEN_TYPE)
    act = unverified_claims(issued.access_token)["act"]
    assert act == {"sub": agent.id, "act": {"sub": "upstream-1", "act": {"sub": "upstream-2"}}}
    error = refused(InvalidGrant, exchange, runtime, register(runtime), issued.access_token)
    assert error.description == "the delegation chain would hold 4 actors; the maximum is 3"


def test_a_trusted_issuers_task_details_are_normalised_or_refused(
    runtime: Runtime, person: PersonIssuer, agent: Client
) -> None:
    task = {"type": "agent_task", "task_id": "P-1", "purpose": " plan a trip ", "resources": ["r1", "r1"]}
    issued = exchange(
        runtime, agent, person.token(authorization_details=[task]), subject_token_type=JWT_TOKEN_TYPE
    )
    assert unverified_claims(issued.access_token)["authorization_details"] == [
        {"type": "agent_task", "task_id": "P-1", "purpose": "plan a trip", "resources": ["r1"], "actions": []}
    ]
    odd = person.token(authorization_details=[{**task, "script": "<x>"}])
    error = refused(InvalidGrant, exchange, runtime, agent, odd, subject_token_type=JWT_TOKEN_TYPE)
    assert error.description.startswith("subject token has invalid authorization_details")
    # A request may narrow the task's lists, not rename its purpose.
    renamed = exchange(
        runtime,
        agent,
        person.token(authorization_details=[task]),
        subject_token_type=JWT_TOKEN_TYPE,
        authorization_details=json.dumps([{**task, "purpose": "something else"}]),
    )
    assert unverified_claims(renamed.access_token)["authorization_details"][0]["purpose"] == "plan a trip"
