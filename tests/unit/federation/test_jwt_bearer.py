"""The RFC 7523 jwt-bearer grant against a local test issuer: mapping, policy, and every way to cheat."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
from joserfc.jwk import ECKey, RSAKey
from sqlalchemy import select

from tessera.access.tasks import NewTask
from tessera.audit.service import RequestContext
from tessera.clock import ManualClock
from tessera.errors import (
    InvalidClient,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    TesseraError,
    UnauthorizedClient,
)
from tessera.federation.identities import ephemeral_agent_id
from tessera.identity.agents import LifecycleState, Transition
from tessera.policy.bundle import Bundle
from tessera.runtime import Runtime
from tessera.storage.database import reading
from tessera.storage.tables import audit_records
from tessera.tokens.grants.jwt_bearer import GRANT_TYPE
from tessera.tokens.issuer import IssuedToken
from tests.federation_issuer import LocalIssuer
from tests.unit.federation.conftest import trust
from tests.unit.helpers import assertion, client_auth, register, token_request, unverified_claims
from tests.unit.policy.helpers import audit_records as audit_bodies


def exchange(runtime: Runtime, token: str, *extra: tuple[str, str]) -> IssuedToken:
    pairs = [("grant_type", GRANT_TYPE), ("assertion", token), *extra]
    return runtime.token_endpoint.handle(token_request(runtime, pairs))


def refused(runtime: Runtime, token: str, *extra: tuple[str, str]) -> TesseraError:
    with pytest.raises(TesseraError) as caught:
        exchange(runtime, token, *extra)
    return caught.value


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_workload_token_becomes_a_local_token_for_an_ephemeral_identity(
    runtime: Runtime, local_issuer: LocalIssuer
) -> None:
    registered = trust(runtime, local_issuer)
    now = runtime.clock.now()
    issued = exchange(runtime, local_issuer.token(now=now))
    claims = unverified_claims(issued.access_token)
    agent_id = ephemeral_agent_id(local_issuer.issuer, "system:serviceaccount:payments:reporter")
    assert claims["sub"] == claims["client_id"] == agent_id
    assert claims["scope"] == "reports:read"
    assert claims["federation"] == {
        "iss": local_issuer.issuer,
        "sub": "system:serviceaccount:payments:reporter",
        "issuer_id": registered.id,
        "attributes": {"namespace": "payments"},
        "region": "eu",
    }
    assert claims["exp"] - claims["iat"] == 300  # the identity's max_ttl, within the assertion's 600 s

    agent = runtime.agents.get(agent_id)
    assert agent.labels == ("federated",)
    assert agent.owner == "platform@example.com"
    assert agent.attributes == {
        "namespace": "payments",
        "federated_issuer": local_issuer.issuer,
        "federated_subject": "system:serviceaccount:payments:reporter",
        "region": "eu",
    }
    assert agent.expires_at is not None
    assert agent.expires_at > now + 300
    # The PDP and the validator see it like any agent.
    assert runtime.validator.verify(issued.access_token).claims["sub"] == agent_id

    # The same external identity maps to the same record the next time.
    again = exchange(runtime, local_issuer.token(now=now))
    assert unverified_claims(again.access_token)["sub"] == agent_id
    assert len([a for a in runtime.agents.list() if a.id.startswith("fed_")]) == 1


def test_the_local_token_never_outlives_the_assertion(runtime: Runtime, local_issuer: LocalIssuer) -> None:
    trust(runtime, local_issuer)
    issued = exchange(runtime, local_issuer.token(now=runtime.clock.now(), lifetime=90))
    assert issued.expires_in == 90


def test_fixed_and_claim_mapped_agents(runtime: Runtime, local_issuer: LocalIssuer) -> None:
    reporter = register(runtime, scopes=("reports:read",))
    trust(
        runtime,
        local_issuer,
        subject={
            "type": "claim",
            "claim": "claims['kubernetes.io'].serviceaccount.name",
            "agents": {"reporter": reporter.id},
        },
    )
    now = runtime.clock.now()
    issued = exchange(runtime, local_issuer.token(now=now))
    assert unverified_claims(issued.access_token)["sub"] == reporter.id
    other = local_issuer.token(now=now, **{"kubernetes.io": {"serviceaccount": {"name": "intruder"}}})
    error = refused(runtime, other)
    assert isinstance(error, InvalidGrant)
    assert (
        "claim 'claims['kubernetes.io'].serviceaccount.name' ('intruder') maps to no agent"
        in error.description
    )
    # A suspended agent gets nothing through federation either.
    runtime.agents.transition(reporter.id, Transition.SUSPEND)
    assert isinstance(refused(runtime, local_issuer.token(now=now)), UnauthorizedClient)


def test_a_suspended_ephemeral_identity_is_not_revived(runtime: Runtime, local_issuer: LocalIssuer) -> None:
    trust(runtime, local_issuer)
    now = runtime.clock.now()
    exchange(runtime, local_issuer.token(now=now))
    agent_id = ephemeral_agent_id(local_issuer.issuer, "system:serviceaccount:payments:reporter")
    runtime.agents.transition(agent_id, Transition.QUARANTINE, "odd behaviour")
    error = refused(runtime, local_issuer.token(now=now))
    assert error.description == f"federated identity '{agent_id}' is quarantined; no tokens are issued to it"
    assert runtime.agents.get(agent_id).state is LifecycleState.QUARANTINED


def test_policy_decides_with_the_mapped_attributes(runtime: Runtime, local_issuer: LocalIssuer) -> None:
    trust(runtime, local_issuer)
    error = refused(runtime, local_issuer.token(now=runtime.clock.now()), ("scope", "payments:write"))
    assert isinstance(error, InvalidScope)
    files = dict(runtime.policies.bundle(runtime.pdp.version).files)
    files["federation.cedar"] = (
        '@id("no-federated-tokens-outside-payments")\n'
        'forbid (principal, action == Action::"issue_token", resource)\n'
        'when { principal.labels.contains("federated") && '
        '!(principal.hasTag("namespace") && principal.getTag("namespace") == "payments") };\n'
    )
    runtime.policies.apply(Bundle(files), RequestContext())
    now = runtime.clock.now()
    assert exchange(runtime, local_issuer.token(now=now)).policies
    other = local_issuer.token(now=now, subject="billing-bot", **{"kubernetes.io": {"namespace": "billing"}})
    error = refused(runtime, other)
    assert isinstance(error, InvalidScope)
    assert "does not allow scope 'reports:read'" in error.description
    # Refused by policy: the external identity got no record.
    assert runtime.agents.find(ephemeral_agent_id(local_issuer.issuer, "billing-bot")) is None


def test_key_rotation_is_followed(runtime: Runtime, local_issuer: LocalIssuer) -> None:
    trust(runtime, local_issuer)
    exchange(runtime, local_issuer.token(now=runtime.clock.now()))
    local_issuer.rotate()
    runtime.clock.advance(31)  # past the refresh rate limit
    exchange(runtime, local_issuer.token(now=runtime.clock.now()))
    assert local_issuer.requests == 2


def test_jwks_that_cannot_be_fetched_fails_closed(runtime: Runtime, local_issuer: LocalIssuer) -> None:
    trust(runtime, local_issuer)
    local_issuer.mode = "error"
    error = refused(runtime, local_issuer.token(now=runtime.clock.now()))
    assert isinstance(error, InvalidGrant)
    assert error.description == f"jwks for issuer '{local_issuer.issuer}' could not be fetched: http 500"


def test_loopback_jwks_is_refused_unless_allowed(runtime: Runtime, local_issuer: LocalIssuer) -> None:
    https_issuer = local_issuer.issuer.replace("http://", "https://")
    trust(
        runtime,
        local_issuer,
        issuer=https_issuer,
        jwks_url=local_issuer.jwks_url.replace("http://", "https://"),
        allow_private_network=False,
    )
    error = refused(runtime, local_issuer.token(now=runtime.clock.now(), iss=https_issuer))
    assert error.description.startswith(
        f"jwks for issuer '{https_issuer}' could not be fetched: address 127.0.0.1"
    )
    assert local_issuer.requests == 0


def test_replayed_jti_is_refused(runtime: Runtime, local_issuer: LocalIssuer) -> None:
    trust(runtime, local_issuer)
    token = local_issuer.token(now=runtime.clock.now())
    # A refused request does not spend the assertion: its jti commits only with a token.
    assert isinstance(refused(runtime, token, ("scope", "payments:write")), InvalidScope)
    exchange(runtime, token)
    error = refused(runtime, token)
    assert (error.error, error.description) == ("invalid_grant", "assertion jti has already been used")


def test_jti_policies(runtime: Runtime, local_issuer: LocalIssuer) -> None:
    registered = trust(runtime, local_issuer)
    now = runtime.clock.now()
    reusable = local_issuer.token(now=now, jti=None)  # no jti: reusable until it expires (Kubernetes)
    exchange(runtime, reusable)
    exchange(runtime, reusable)
    runtime.trusted_issuers.remove(registered.id)
    trust(runtime, local_issuer, jti_policy="required")
    error = refused(runtime, reusable)
    assert error.description == f"assertions of issuer '{local_issuer.issuer}' must carry a 'jti'"
    runtime.trusted_issuers.remove(runtime.trusted_issuers.list()[0].id)
    trust(runtime, local_issuer, jti_policy="ignored")
    token = local_issuer.token(now=now)
    exchange(runtime, token)
    exchange(runtime, token)


def test_forged_and_confused_assertions_are_refused(runtime: Runtime, local_issuer: LocalIssuer) -> None:
    trust(
        runtime,
        local_issuer,
        required_claims=[{"claim": "claims['kubernetes.io'].namespace", "equals": "payments"}],
    )
    now = runtime.clock.now()
    issuer = local_issuer.issuer
    good = local_issuer.token(now=now)
    header, payload, signature = good.split(".")
    other_key = ECKey.generate_key("P-256")
    public_pem = local_issuer.keys[local_issuer.kid].as_pem(private=False)
    hs_input = f"{b64(json.dumps({'alg': 'HS256', 'kid': local_issuer.kid}).encode())}.{payload}"
    hs256 = f"{hs_input}.{b64(hmac.new(public_pem, hs_input.encode(), hashlib.sha256).digest())}"
    none = f"{b64(json.dumps({'alg': 'none'}).encode())}.{payload}."
    tampered_claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    tampered_claims["sub"] = "system:serviceaccount:kube-system:admin"
    tampered = f"{header}.{b64(json.dumps(tampered_claims).encode())}.{signature}"
    cases: list[tuple[str, str]] = [
        (local_issuer.token(now=now, key=other_key), "invalid assertion: signature verification failed"),
        (tampered, "invalid assertion: signature verification failed"),
        (hs256, "invalid assertion: alg 'HS256' is not accepted"),
        (none, "invalid assertion: alg 'none' is not accepted"),
        (
            local_issuer.token(now=now, header={"alg": "RS256"}, key=RSAKey.generate_key(2048)),
            f"invalid assertion: alg 'RS256' is not allowed for key '{local_issuer.kid}'",
        ),
        (
            local_issuer.token(
                now=now, header={"jku": "http://127.0.0.1:1/evil", "kid": "evil"}, key=other_key
            ),
            f"invalid assertion: issuer '{issuer}' has no key matching kid 'evil'",
        ),
        (
            local_issuer.token(now=now, header={"crit": ["kid"]}),
            "invalid assertion: unsupported critical header",
        ),
        (
            local_issuer.token(now=now, header={"typ": "dpop+jwt"}),
            "invalid assertion: typ 'dpop+jwt' is not a jwt",
        ),
        (local_issuer.token(now=now - 700), "invalid assertion: jwt has expired"),
        (local_issuer.token(now=now, exp=None), "invalid assertion: missing claim 'exp'"),
        (local_issuer.token(now=now, lifetime=7200), "invalid assertion: jwt lifetime exceeds 3600 seconds"),
        (local_issuer.token(now=now + 120), "invalid assertion: jwt was issued in the future (iat)"),
        (
            local_issuer.token(now=now, audience="https://elsewhere.example"),
            "invalid assertion: aud 'https://elsewhere.example' is not an accepted audience",
        ),
        (
            local_issuer.token(now=now, iss="https://untrusted.example"),
            "issuer 'https://untrusted.example' is not trusted",
        ),
        (local_issuer.token(now=now, iss=issuer + "/"), f"issuer '{issuer}/' is not trusted"),
        (
            local_issuer.token(now=now, **{"kubernetes.io": {"namespace": "kube-system"}}),
            "invalid assertion: required claim 'claims['kubernetes.io'].namespace' = 'payments' "
            "is not satisfied",
        ),
        (
            local_issuer.token(now=now, sub=None),
            "invalid assertion: subject claim 'sub' is missing or malformed",
        ),
        ("not.a.jwt", "invalid assertion: malformed jws header"),
        ("x" * 20000, "invalid assertion: jwt is 20000 bytes, over the 16384-byte limit"),
    ]
    for token, reason in cases:
        error = refused(runtime, token)
        assert error.error == "invalid_grant", (reason, error.description)
        assert error.description.startswith(reason), (reason, error.description)
    assert [a for a in runtime.agents.list() if a.id.startswith("fed_")] == []


def test_request_errors(runtime: Runtime, local_issuer: LocalIssuer) -> None:
    trust(runtime, local_issuer)
    with pytest.raises(InvalidRequest, match="missing assertion"):
        runtime.token_endpoint.handle(token_request(runtime, [("grant_type", GRANT_TYPE)]))


def test_client_authentication_is_optional_but_checked_when_present(
    runtime: Runtime, local_issuer: LocalIssuer
) -> None:
    trust(runtime, local_issuer)
    client = register(runtime)
    now = runtime.clock.now()
    client_assertion = assertion(runtime, client)
    issued = exchange(runtime, local_issuer.token(now=now), *client_auth(client_assertion))
    assert unverified_claims(issued.access_token)["client_id"].startswith("fed_")
    with pytest.raises(InvalidClient, match="client assertion jti has already been used"):
        exchange(runtime, local_issuer.token(now=now), *client_auth(client_assertion))
    forged = assertion(runtime, client, aud="https://elsewhere.example")
    with pytest.raises(InvalidClient):
        exchange(runtime, local_issuer.token(now=now), *client_auth(forged))
    # A suspended client cannot authenticate this grant either.
    runtime.agents.transition(client.id, Transition.SUSPEND)
    with pytest.raises(InvalidClient, match=f"client '{client.id}' is suspended; it cannot authenticate"):
        exchange(runtime, local_issuer.token(now=now), *client_auth(assertion(runtime, client)))
    # Other grants still require it.
    with pytest.raises(InvalidClient, match="client authentication required"):
        runtime.token_endpoint.handle(token_request(runtime, [("grant_type", "client_credentials")]))


def test_the_grant_is_advertised(runtime: Runtime) -> None:
    assert GRANT_TYPE in runtime.token_endpoint.grant_types


def test_subject_token_verifier_for_token_exchange(runtime: Runtime, local_issuer: LocalIssuer) -> None:
    trust(runtime, local_issuer)
    verifier = runtime.federation_verifier
    assert verifier.accepts(local_issuer.issuer)
    assert not verifier.accepts("https://untrusted.example")
    now = runtime.clock.now()
    token = local_issuer.token(now=now, scope="reports:read reports:list", cnf={"jkt": "thumb"}, jti="j-1")
    verified = verifier.verify(token, now=now)
    assert verified.issuer == local_issuer.issuer
    assert verified.subject == "system:serviceaccount:payments:reporter"
    assert verified.scopes == ("reports:read", "reports:list")
    assert verified.audience == (runtime.issuer,)
    assert verified.attributes == {"namespace": "payments"}
    assert verified.region == "eu"
    assert verified.cnf_jkt == "thumb"
    assert verified.token_id == "j-1"
    assert verified.local is False
    # A subject token may be exchanged more than once: verifying does not consume it.
    assert verifier.verify(token, now=now).subject == verified.subject
    scp = verifier.verify(local_issuer.token(now=now, scp=["a", "b"]), now=now)
    assert scp.scopes == ("a", "b")
    with pytest.raises(InvalidGrant, match="invalid subject_token: jwt has expired"):
        verifier.verify(local_issuer.token(now=now - 700), now=now)


def test_removing_an_issuer_reaches_other_replicas(
    runtime: Runtime, local_issuer: LocalIssuer, settings: Any
) -> None:
    other = Runtime(settings, clock=runtime.clock)
    other.start(background=False)
    try:
        registered = trust(runtime, local_issuer)
        assert other.follower is not None
        other.follower.poll_once()
        exchange(other, local_issuer.token(now=runtime.clock.now()))
        runtime.trusted_issuers.remove(registered.id)
        other.follower.poll_once()
        error = refused(other, local_issuer.token(now=runtime.clock.now()))
        assert error.description == f"issuer '{local_issuer.issuer}' is not trusted"
    finally:
        other.stop()


def test_admin_changes_are_audited(runtime: Runtime, local_issuer: LocalIssuer) -> None:
    registered = trust(runtime, local_issuer)
    exchange(runtime, local_issuer.token(now=runtime.clock.now()))
    runtime.trusted_issuers.remove(registered.id)
    with reading(runtime.engine) as conn:
        types = [row.type for row in conn.execute(select(audit_records.c.type).order_by(audit_records.c.seq))]
    assert "issuer.added" in types
    assert "federation.identity_created" in types
    assert "issuer.removed" in types
    assert types.index("federation.identity_created") < types.index(
        "token.issued", types.index("issuer.added")
    )
    with reading(runtime.engine) as conn:
        body = conn.execute(
            select(audit_records.c.body).where(audit_records.c.type == "token.issued")
        ).scalar_one()
    assert json.loads(body)["data"]["federation"] == {
        "iss": local_issuer.issuer,
        "sub": "system:serviceaccount:payments:reporter",
        "issuer_id": registered.id,
    }


def test_a_registered_task_binds_a_federated_token(runtime: Runtime, local_issuer: LocalIssuer) -> None:
    trust(runtime, local_issuer)
    now = runtime.clock.now()
    exchange(runtime, local_issuer.token(now=now))
    agent_id = ephemeral_agent_id(local_issuer.issuer, "system:serviceaccount:payments:reporter")
    task = runtime.tasks.open(
        NewTask(
            agent_id=agent_id, purpose="nightly report", expires_in=600, resources=["https://reports.example"]
        )
    )
    detail = json.dumps(
        [
            {
                "type": "agent_task",
                "task_id": task.id,
                "purpose": "report",
                "resources": ["https://reports.example"],
            }
        ]
    )
    issued = exchange(runtime, local_issuer.token(now=now), ("authorization_details", detail))
    details = unverified_claims(issued.access_token)["authorization_details"]
    assert details[0]["task_id"] == task.id
    assert details[0]["purpose"] == "nightly report"
    wider = json.dumps(
        [
            {
                "type": "agent_task",
                "task_id": task.id,
                "purpose": "report",
                "resources": ["https://payroll.example"],
            }
        ]
    )
    error = refused(runtime, local_issuer.token(now=now), ("authorization_details", wider))
    assert error.error == "invalid_authorization_details"
    other = local_issuer.token(now=now, subject="someone-else")
    error = refused(runtime, other, ("authorization_details", detail))
    assert error.description == f"task '{task.id}' belongs to another agent"


def test_a_refused_assertion_is_recorded_with_the_identity_it_claims(
    runtime: Runtime, local_issuer: LocalIssuer
) -> None:
    refused(runtime, local_issuer.token(now=runtime.clock.now()))  # the issuer is not trusted
    denied = audit_bodies(runtime.engine, "token.denied")
    assert denied[-1]["subject"] == f"{local_issuer.issuer}#system:serviceaccount:payments:reporter"
    assert denied[-1]["data"] == {"error": "invalid_grant", "grant_type": GRANT_TYPE}


def test_an_ephemeral_identity_is_renewed_only_when_needed(
    runtime: Runtime, local_issuer: LocalIssuer, clock: ManualClock
) -> None:
    trust(runtime, local_issuer)
    agent_id = ephemeral_agent_id(local_issuer.issuer, "system:serviceaccount:payments:reporter")

    def records() -> list[str]:
        return [
            r["type"] for r in audit_bodies(runtime.engine) if r["type"].startswith("federation.identity")
        ]

    exchange(runtime, local_issuer.token(now=clock.now()))
    created = runtime.agents.get(agent_id)
    exchange(runtime, local_issuer.token(now=clock.now()))
    assert records() == ["federation.identity_created"]
    assert runtime.agents.get(agent_id) == created
    # Attributes changed: renewed at once.
    exchange(runtime, local_issuer.token(now=clock.now(), **{"kubernetes.io": {"namespace": "payments-eu"}}))
    assert records() == ["federation.identity_created", "federation.identity_renewed"]
    assert runtime.agents.get(agent_id).attributes["namespace"] == "payments-eu"
    # Past half its lifetime: renewed, and its expiry moves forward.
    before = runtime.agents.get(agent_id).expires_at
    assert before is not None
    clock.advance(1900)
    exchange(runtime, local_issuer.token(now=clock.now(), **{"kubernetes.io": {"namespace": "payments-eu"}}))
    assert records()[-1] == "federation.identity_renewed"
    after = runtime.agents.get(agent_id).expires_at
    assert after is not None
    assert after > before
