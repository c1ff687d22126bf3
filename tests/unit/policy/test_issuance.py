"""The token endpoint asks the PDP: starter bundle out of the box, denials, @max_ttl, @approval, audit."""

from __future__ import annotations

import pytest

from tessera.audit.service import RequestContext
from tessera.clock import ManualClock
from tessera.errors import AccessDenied, InvalidScope
from tessera.policy.bundle import Bundle
from tessera.policy.entities import Uid
from tessera.policy.issuance import IssuancePolicy
from tessera.policy.service import starter_bundle
from tessera.runtime import Runtime
from tessera.tokens.grants import PendingApproval
from tests.unit.helpers import Client, register, request_token, unverified_claims
from tests.unit.policy.helpers import audit_records

BLOCKED = "https://blocked.example/api"
ISSUE_PERMIT = (
    'permit (\n  principal is Agent,\n  action == Action::"issue_token",\n  resource is Audience\n)'
)


def apply_tokens_policy(runtime: Runtime, tokens_cedar: str) -> str:
    """Apply the starter bundle with ``tokens.cedar`` replaced."""
    files = {**starter_bundle().files, "tokens.cedar": tokens_cedar}
    return runtime.policies.apply(Bundle(files), RequestContext())


def with_annotations(*annotations: str) -> str:
    original = starter_bundle().files["tokens.cedar"]
    marker = '@id("issue-tokens-within-registered-scopes")\n'
    assert marker in original
    return original.replace(marker, marker + "".join(f"{a}\n" for a in annotations))


@pytest.fixture
def client(runtime: Runtime) -> Client:
    return register(runtime, scopes=("tickets:read", "tickets:write"))


def test_a_fresh_runtime_issues_tokens_within_registered_scopes(runtime: Runtime, client: Client) -> None:
    assert runtime.pdp.version == starter_bundle().version
    issued = request_token(runtime, client, scope="tickets:read", resource="https://api.example/tickets")
    assert issued.scope == "tickets:read"
    assert issued.policy_version == starter_bundle().version
    assert issued.policies == ("issue-tokens-within-registered-scopes",)
    assert unverified_claims(issued.access_token)["aud"] == "https://api.example/tickets"


def test_a_bundle_that_forbids_an_audience_makes_issuing_for_it_invalid_scope(
    runtime: Runtime, client: Client
) -> None:
    version = apply_tokens_policy(
        runtime,
        starter_bundle().files["tokens.cedar"]
        + f'\n@id("no-blocked-audience")\nforbid (principal, action, resource == Audience::"{BLOCKED}");\n',
    )
    with pytest.raises(InvalidScope) as refused:
        request_token(runtime, client, resource=BLOCKED)
    assert refused.value.error == "invalid_scope"
    assert version in refused.value.description
    assert BLOCKED in refused.value.description
    # Every audience must be permitted: one blocked audience refuses the whole request.
    with pytest.raises(InvalidScope):
        request_token(runtime, client, pairs=[("resource", "https://ok.example"), ("resource", BLOCKED)])
    assert request_token(runtime, client, resource="https://ok.example").policy_version == version


def test_a_bundle_with_no_issue_permit_denies_every_token(runtime: Runtime, client: Client) -> None:
    apply_tokens_policy(runtime, "// issuing is switched off\n")
    with pytest.raises(InvalidScope, match="does not allow scope 'tickets:read tickets:write'"):
        request_token(runtime, client)


def test_max_ttl_on_the_issue_permit_caps_expires_in(runtime: Runtime, client: Client) -> None:
    apply_tokens_policy(runtime, with_annotations('@max_ttl("60")'))
    issued = request_token(runtime, client)
    assert issued.expires_in == 60
    claims = unverified_claims(issued.access_token)
    assert claims["exp"] - claims["iat"] == 60
    assert request_token(runtime, client, expires_in="30").expires_in == 30  # shorter still wins


def test_the_strictest_max_ttl_of_several_permits_applies(runtime: Runtime, client: Client) -> None:
    tokens = with_annotations('@max_ttl("120")') + (
        f'\n@id("tickets-are-short")\n@max_ttl("45")\n{ISSUE_PERMIT}\n'
        'when { context.scopes.contains("tickets:write") };\n'
    )
    apply_tokens_policy(runtime, tokens)
    assert request_token(runtime, client, scope="tickets:write").expires_in == 45
    assert request_token(runtime, client, scope="tickets:read").expires_in == 120


def test_approval_required_answers_per_ciba_instead_of_issuing(runtime: Runtime, client: Client) -> None:
    apply_tokens_policy(runtime, with_annotations('@approval("required")'))
    with pytest.raises(PendingApproval) as pending:
        request_token(runtime, client)
    assert set(pending.value.body) >= {"auth_req_id", "expires_in", "interval"}
    assert pending.value.body["status"] == "approval_pending"


def test_approval_required_without_an_approvals_flow_refuses(runtime: Runtime, client: Client) -> None:
    apply_tokens_policy(runtime, with_annotations('@approval("required")'))
    policy = IssuancePolicy(runtime.pdp, runtime.contexts, runtime.clock)
    with pytest.raises(AccessDenied) as refused:
        policy.check(
            client.agent,
            scopes=("tickets:read",),
            audience=(runtime.issuer,),
            authorization_details=(),
            client_ip=None,
        )
    assert refused.value.error == "access_denied"
    assert "approval" in refused.value.description


def test_the_issuing_context_carries_the_clock_and_the_scopes(
    runtime: Runtime, client: Client, clock: ManualClock
) -> None:
    office_hours = (
        f'@id("office-hours")\n{ISSUE_PERMIT}\n'
        "when { principal.scopes.containsAll(context.scopes) && "
        "context.time.hour >= 9 && context.time.hour < 17 };\n"
    )
    apply_tokens_policy(runtime, office_hours)
    with pytest.raises(InvalidScope):
        request_token(runtime, client)  # 08:00 UTC
    clock.advance(3600)
    assert request_token(runtime, client).policies == ("office-hours",)


def test_token_issued_records_carry_the_policy_version_and_policies(runtime: Runtime, client: Client) -> None:
    version = apply_tokens_policy(runtime, with_annotations('@max_ttl("60")'))
    issued = request_token(runtime, client, pairs=[("resource", "https://a.example"), ("resource", "urn:b")])
    record = audit_records(runtime.engine, "token.issued")[-1]
    assert record["subject"] == client.id
    assert record["decision"]["outcome"] == "permit"
    assert record["decision"]["policy_version"] == version
    assert record["decision"]["policies"] == ["issue-tokens-within-registered-scopes"]
    decision_ids = record["decision"]["decision_id"].split(",")
    assert len(decision_ids) == len(set(decision_ids)) == 2  # one decision per audience
    assert record["data"]["expires_in"] == issued.expires_in == 60


def test_a_refused_token_is_recorded_as_denied(runtime: Runtime, client: Client) -> None:
    apply_tokens_policy(runtime, "// issuing is switched off\n")
    with pytest.raises(InvalidScope):
        request_token(runtime, client)
    denied = audit_records(runtime.engine, "token.denied")
    assert denied
    assert denied[-1]["data"]["error"] == "invalid_scope"
    assert audit_records(runtime.engine, "token.issued") == []


def test_an_agent_registered_through_another_runtime_gets_a_token_at_once(
    runtime: Runtime, second_runtime: Runtime
) -> None:
    newcomer = register(runtime, scopes=("tickets:read",))
    # second_runtime has not read the change feed: its entity index does not know the agent yet.
    assert second_runtime.entities.get(Uid("Agent", newcomer.id)) is None
    issued = request_token(second_runtime, newcomer)
    assert issued.policies == ("issue-tokens-within-registered-scopes",)
