"""Complete approval flows through the runtime: approve, deny, expire, escalate, two people,
replay, hash binding, separation of duties, slow_down, and grant expiry (injected clock)."""

from __future__ import annotations

import pytest

from tessera.access.maintenance import maintain
from tessera.access.requests import APPROVAL_DETAIL, Status
from tessera.audit.service import RequestContext
from tessera.clock import ManualClock
from tessera.errors import (
    AccessDenied,
    AuthorizationPending,
    Conflict,
    ExpiredToken,
    Forbidden,
    InvalidGrant,
    SlowDown,
)
from tessera.runtime import Runtime
from tests.unit.access.conftest import OWNER, Staff, add_person, ask, evaluate, payment, poll
from tests.unit.helpers import Client, unverified_claims
from tests.unit.policy.helpers import audit_records


def approve(runtime: Runtime, staff: Staff, request_id: str, reason: str | None = "ok") -> Status:
    shown = runtime.access.show(request_id)
    return runtime.access.vote(
        request_id,
        staff.person,
        approve=True,
        reason=reason,
        shown_hash=shown["asked_hash"],
        context=RequestContext(staff.person.actor),
    ).status


def test_a_small_payment_is_granted_at_once_and_its_token_carries_the_grant(
    payments: Runtime, pay_bot: Client
) -> None:
    answer = ask(payments, pay_bot, payment(pay_bot.id, 500))
    assert answer["status"] == "granted"
    issued = poll(payments, pay_bot, answer["auth_req_id"])
    claims = unverified_claims(issued.access_token)
    detail = next(d for d in claims["authorization_details"] if d["type"] == APPROVAL_DETAIL)
    assert detail["approval_id"] == answer["request_id"]
    assert claims["exp"] - claims["iat"] == payments.settings.access_grant_ttl  # 15 minutes by default


def test_a_large_payment_waits_for_a_person_then_the_token_works_for_exactly_that_payment(
    payments: Runtime, pay_bot: Client, alice: Staff, clock: ManualClock
) -> None:
    answer = ask(payments, pay_bot, payment(pay_bot.id, 50_000, "globex"))
    assert answer["status"] == "approval_pending"
    assert answer["interval"] == 5
    assert answer["expires_in"] == 3600
    with pytest.raises(AuthorizationPending):
        poll(payments, pay_bot, answer["auth_req_id"])
    # Without an approval, the PDP answers deny for the large payment, naming the obligation.
    denied = evaluate(payments, payment(pay_bot.id, 50_000, "globex"))
    assert denied["decision"] is False
    assert any("approval" in e for e in denied["context"]["errors"])

    approved_at = clock.now()
    assert approve(payments, alice, answer["request_id"]) is Status.APPROVED
    clock.advance(5)
    token = poll(payments, pay_bot, answer["auth_req_id"]).access_token
    claims = unverified_claims(token)
    assert claims["exp"] == approved_at + 600  # the grant's end: @max_ttl("600") from the approval

    assert evaluate(payments, payment(pay_bot.id, 50_000, "globex"), token)["decision"] is True
    # The same approval cannot pay more, or someone else, or add a field.
    for changed in (
        payment(pay_bot.id, 60_000, "globex"),
        payment(pay_bot.id, 50_000, "initech"),
        payment(pay_bot.id, 50_000, "globex", memo="also this"),
    ):
        answer_for_changed = evaluate(payments, changed, token)
        assert answer_for_changed["decision"] is False
        assert any("hash mismatch" in e for e in answer_for_changed["context"]["errors"])

    records = [r["type"] for r in audit_records(payments.engine) if r["type"].startswith("access.")]
    assert "access.requested" in records
    assert "access.approved" in records
    voted = audit_records(payments.engine, "approval.approved")[-1]
    assert voted["actor"] == {"type": "person", "id": "alice@example.com"}


def test_a_replayed_auth_req_id_is_invalid_grant(payments: Runtime, pay_bot: Client, alice: Staff) -> None:
    answer = ask(payments, pay_bot, payment(pay_bot.id, 20_000))
    approve(payments, alice, answer["request_id"])
    poll(payments, pay_bot, answer["auth_req_id"])
    with pytest.raises(InvalidGrant, match="already been redeemed"):
        poll(payments, pay_bot, answer["auth_req_id"])


def test_the_redemption_is_single_use_even_if_the_status_update_is_lost(
    payments: Runtime, pay_bot: Client, alice: Staff
) -> None:
    """The database claim (not the status) is what makes a redemption single use across replicas."""
    answer = ask(payments, pay_bot, payment(pay_bot.id, 20_000))
    approve(payments, alice, answer["request_id"])
    approved = payments.token_approvals.approved(answer["auth_req_id"], pay_bot.agent)
    poll(payments, pay_bot, answer["auth_req_id"])
    # Another replica read the request as approved before the first one marked it redeemed.
    from tessera.tokens.grants.ciba import CibaGrant

    class Stale:
        def approved(self, auth_req_id: str, agent: object) -> object:
            return approved

        def redeemed(self, *_args: object) -> None:
            raise AssertionError("must not be reached")

    grant = CibaGrant(payments.issuer_service, payments.clock, Stale())  # type: ignore[arg-type]
    from tests.unit.access.conftest import GRANT_TYPE
    from tests.unit.helpers import assertion, client_auth, token_request

    form = [("grant_type", GRANT_TYPE), ("auth_req_id", "x"), *client_auth(assertion(payments, pay_bot))]
    client = payments.authenticator.authenticate(dict(form), None, payments.clock.now())
    with pytest.raises(InvalidGrant):
        grant.handle(token_request(payments, form), client, None)


def test_an_unknown_or_foreign_auth_req_id_is_invalid_grant(
    payments: Runtime, pay_bot: Client, ops_bot: Client
) -> None:
    answer = ask(payments, pay_bot, payment(pay_bot.id, 20_000))
    with pytest.raises(InvalidGrant):
        poll(payments, pay_bot, answer["auth_req_id"] + "x")
    with pytest.raises(InvalidGrant):
        poll(payments, ops_bot, answer["auth_req_id"])


def test_a_denied_request_answers_access_denied(payments: Runtime, pay_bot: Client, alice: Staff) -> None:
    answer = ask(payments, pay_bot, payment(pay_bot.id, 20_000))
    request = payments.access.vote(
        answer["request_id"],
        alice.person,
        approve=False,
        reason="not on the payee list",
        shown_hash=None,
        context=RequestContext(alice.person.actor),
    )
    assert request.status is Status.DENIED
    with pytest.raises(AccessDenied, match="not on the payee list"):
        poll(payments, pay_bot, answer["auth_req_id"])


def test_an_unanswered_request_expires(
    payments: Runtime, pay_bot: Client, alice: Staff, clock: ManualClock
) -> None:
    answer = ask(payments, pay_bot, payment(pay_bot.id, 20_000))
    clock.advance(3600)
    with pytest.raises(ExpiredToken):
        poll(payments, pay_bot, answer["auth_req_id"])
    maintain(payments.access)
    assert payments.access.get(answer["request_id"]).status is Status.EXPIRED
    with pytest.raises(Conflict, match="expired"):
        approve(payments, alice, answer["request_id"])


def test_an_unanswered_request_escalates_to_the_next_group(
    payments: Runtime, pay_bot: Client, alice: Staff, clock: ManualClock
) -> None:
    lead = add_person(payments, "lena@example.com", "approver", "finance-leads")
    answer = ask(payments, pay_bot, payment(pay_bot.id, 20_000))
    with pytest.raises(Forbidden, match="not in the approver groups"):
        approve(payments, lead, answer["request_id"])
    clock.advance(899)
    assert maintain(payments.access) == (0, 0)
    clock.advance(1)
    assert maintain(payments.access) == (0, 1)
    assert payments.access.get(answer["request_id"]).eligible_groups == (
        "payments-approvers",
        "finance-leads",
    )
    assert audit_records(payments.engine, "access.escalated")[-1]["data"]["approver_group"] == "finance-leads"
    assert approve(payments, lead, answer["request_id"]) is Status.APPROVED


def test_deleting_production_data_needs_two_distinct_people(
    payments: Runtime, ops_bot: Client, alice: Staff, bob: Staff
) -> None:
    body = {
        "subject": {"type": "Agent", "id": ops_bot.id},
        "action": {"name": "delete"},
        "resource": {"type": "Resource", "id": "orders-db"},
        "context": {},
    }
    answer = ask(payments, ops_bot, body, purpose="drop the stale orders table")
    assert approve(payments, alice, answer["request_id"]) is Status.PENDING
    with pytest.raises(Conflict, match="already answered"):
        approve(payments, alice, answer["request_id"])
    with pytest.raises(AuthorizationPending):
        poll(payments, ops_bot, answer["auth_req_id"])
    assert approve(payments, bob, answer["request_id"]) is Status.APPROVED
    token = poll(payments, ops_bot, answer["auth_req_id"]).access_token
    assert evaluate(payments, body, token)["decision"] is True


def test_the_owner_may_not_approve_their_own_agent_where_policy_says_so(
    payments: Runtime, pay_bot: Client
) -> None:
    owner = add_person(payments, OWNER, "approver", "payments-approvers")
    answer = ask(payments, pay_bot, payment(pay_bot.id, 20_000))
    with pytest.raises(Forbidden, match="owner"):
        approve(payments, owner, answer["request_id"])


def test_an_approval_of_a_changed_request_is_refused(
    payments: Runtime, pay_bot: Client, alice: Staff
) -> None:
    answer = ask(payments, pay_bot, payment(pay_bot.id, 20_000))
    shown = payments.access.show(answer["request_id"])
    # What the approver saw is not what is stored now (edited in the database).
    from sqlalchemy import update

    from tessera.storage.database import writing
    from tessera.storage.tables import access_requests

    changed = {**shown["asked"], "context": {**shown["asked"]["context"], "amount": 900_000}}
    with writing(payments.engine) as conn:
        conn.execute(update(access_requests).where(access_requests.c.id == shown["id"]).values(asked=changed))
    with pytest.raises(Conflict, match="does not match"):
        payments.access.vote(
            shown["id"],
            alice.person,
            approve=True,
            reason=None,
            shown_hash=shown["asked_hash"],
            context=RequestContext(alice.person.actor),
        )
    # And a hash the approver never saw is refused too.
    with pytest.raises(Conflict):
        payments.access.vote(
            shown["id"],
            alice.person,
            approve=True,
            reason=None,
            shown_hash="0" * 64,
            context=RequestContext(alice.person.actor),
        )


def test_polling_faster_than_the_interval_gets_slow_down_and_a_longer_interval(
    payments: Runtime, pay_bot: Client, clock: ManualClock
) -> None:
    answer = ask(payments, pay_bot, payment(pay_bot.id, 20_000))
    with pytest.raises(AuthorizationPending):
        poll(payments, pay_bot, answer["auth_req_id"])
    clock.advance(2)
    with pytest.raises(SlowDown):
        poll(payments, pay_bot, answer["auth_req_id"])
    assert payments.access.get(answer["request_id"]).poll_interval == 10
    clock.advance(6)
    with pytest.raises(SlowDown):  # 6 s < the new 10 s interval
        poll(payments, pay_bot, answer["auth_req_id"])
    clock.advance(15)
    with pytest.raises(AuthorizationPending):
        poll(payments, pay_bot, answer["auth_req_id"])


def test_a_grant_stops_working_at_its_expiry(
    payments: Runtime, pay_bot: Client, alice: Staff, clock: ManualClock
) -> None:
    body = payment(pay_bot.id, 50_000)
    answer = ask(payments, pay_bot, body)
    approve(payments, alice, answer["request_id"])
    token = poll(payments, pay_bot, answer["auth_req_id"]).access_token
    clock.advance(599)
    assert evaluate(payments, body, token)["decision"] is True
    clock.advance(1)
    assert evaluate(payments, body, token)["decision"] is False


def test_an_approved_grant_not_collected_in_time_expires(
    payments: Runtime, pay_bot: Client, alice: Staff, clock: ManualClock
) -> None:
    answer = ask(payments, pay_bot, payment(pay_bot.id, 50_000))
    approve(payments, alice, answer["request_id"])
    clock.advance(600)
    with pytest.raises(ExpiredToken):
        poll(payments, pay_bot, answer["auth_req_id"])


def test_revoking_a_grant_revokes_its_token(payments: Runtime, pay_bot: Client, alice: Staff) -> None:
    body = payment(pay_bot.id, 50_000)
    answer = ask(payments, pay_bot, body)
    approve(payments, alice, answer["request_id"])
    token = poll(payments, pay_bot, answer["auth_req_id"]).access_token
    grant_id = payments.access.get(answer["request_id"]).grant_id
    assert grant_id is not None
    payments.grants.revoke(grant_id, "payee fraud suspected", RequestContext())
    assert evaluate(payments, body, token)["decision"] is False


def test_policy_denials_are_refused_at_once(payments: Runtime, pay_bot: Client) -> None:
    with pytest.raises(Forbidden, match="policy denies"):
        ask(payments, pay_bot, payment(pay_bot.id, 1_000_000))


def test_only_approvers_answer(payments: Runtime, pay_bot: Client) -> None:
    auditor = add_person(payments, "audrey@example.com", "auditor", "payments-approvers")
    admin = add_person(payments, "adam@example.com", "admin", "payments-approvers")
    answer = ask(payments, pay_bot, payment(pay_bot.id, 20_000))
    for person in (auditor, admin):
        with pytest.raises(Forbidden, match="only approvers"):
            approve(payments, person, answer["request_id"])


def test_a_token_request_that_needs_approval_is_answered_per_ciba_and_issued_as_asked(
    payments: Runtime, pay_bot: Client, alice: Staff
) -> None:
    """Path (a): client_credentials with authorization_details; the issue_token policy wants a person."""
    from tessera.policy.bundle import Bundle, load_bundle
    from tessera.tokens.grants import PendingApproval
    from tests.unit.access.conftest import EXAMPLE
    from tests.unit.helpers import request_token

    files = dict(load_bundle(EXAMPLE).files)
    files["tokens.cedar"] = files["tokens.cedar"].replace(
        '@id("issue-tokens-within-registered-scopes")',
        '@id("issue-tokens-within-registered-scopes")\n@approval("payments-approvers")',
    )
    payments.policies.apply(Bundle(files), RequestContext())
    task = '[{"type":"agent_task","task_id":"PAYRUN-9","purpose":"monthly payroll","actions":["pay"]}]'
    with pytest.raises(PendingApproval) as pending:
        request_token(payments, pay_bot, scope="payments:write", authorization_details=task)
    body = pending.value.body
    shown = payments.access.show(body["request_id"])
    assert shown["task_id"] == "PAYRUN-9"
    assert shown["asked"]["scope"] == ["payments:write"]
    approve(payments, alice, body["request_id"])
    issued = poll(payments, pay_bot, body["auth_req_id"])
    assert issued.scope == "payments:write"
    kinds = [d["type"] for d in unverified_claims(issued.access_token)["authorization_details"]]
    assert kinds == ["agent_task", APPROVAL_DETAIL]


def test_a_ping_callback_tells_the_agent_its_result_is_ready(payments: Runtime, alice: Staff) -> None:
    """CIBA §10.2: POST {auth_req_id} with the client_notification_token to the registered endpoint."""
    from tessera.access.notify import Delivery
    from tessera.identity.service import NewAgent
    from tessera.sdk.proofs import generate_private_jwk, public_jwk

    jwk = generate_private_jwk("ES256")
    agent = payments.agents.create(
        NewAgent(
            name="pay-bot",
            owner="olivia@example.com",
            scopes=("access:request",),
            attributes={"role": "payments", "ciba_notification_endpoint": "https://agent.example/cb"},
            segment="payments",
            jwks=(public_jwk(jwk),),
        )
    )
    sent: list[Delivery] = []
    payments.notifier.allow_private_callbacks = True  # no DNS in unit tests; the SSRF check is tested apart
    payments.notifier._post = lambda d: sent.append(d) or 200  # type: ignore[method-assign,func-returns-value]
    client = Client(agent, jwk)
    answer = ask(payments, client, payment(agent.id, 20_000), callback_token="cb-secret-1")
    approve(payments, alice, answer["request_id"])
    payments.notifier.drain()
    pings = [d for d in sent if d.url == "https://agent.example/cb"]
    assert len(pings) == 1
    assert pings[0].body == {"auth_req_id": answer["auth_req_id"]}
    assert pings[0].headers == {"Authorization": "Bearer cb-secret-1"}


def test_oversized_and_missing_auth_req_ids_are_invalid_requests(payments: Runtime, pay_bot: Client) -> None:
    from tessera.errors import InvalidRequest

    for value in ("x" * 300, ""):
        with pytest.raises(InvalidRequest):
            poll(payments, pay_bot, value)


def test_the_list_counts_approvals_so_far(payments: Runtime, ops_bot: Client, alice: Staff) -> None:
    from tessera.access.flows import request_summary

    body = {
        "subject": {"type": "Agent", "id": ops_bot.id},
        "action": {"name": "delete"},
        "resource": {"type": "Resource", "id": "orders-db"},
        "context": {},
    }
    answer = ask(payments, ops_bot, body, purpose="drop the stale orders table")
    approve(payments, alice, answer["request_id"])
    (listed,) = [request_summary(r) for r in payments.access.list(status=Status.PENDING)]
    assert (listed["approvals"], listed["approvals_required"]) == (1, 2)
