"""Break-glass: an admin's emergency access skips approval, briefly, loudly, and every use is listed."""

from __future__ import annotations

import pytest

from tessera.access.grants import GrantKind
from tessera.audit.records import Actor, ActorType
from tessera.audit.service import RequestContext
from tessera.clock import ManualClock
from tessera.errors import ValidationFailed
from tessera.runtime import Runtime
from tests.unit.access.conftest import evaluate, payment
from tests.unit.helpers import Client
from tests.unit.policy.helpers import audit_records

ADMIN = RequestContext(Actor(ActorType.PERSON, "adam@example.com"))


def test_break_glass_lets_approval_gated_actions_through_until_it_expires(
    payments: Runtime, pay_bot: Client, clock: ManualClock
) -> None:
    body = payment(pay_bot.id, 50_000)
    assert evaluate(payments, body)["decision"] is False
    grant = payments.grants.grant_break_glass(pay_bot.id, "payroll run blocked, incident 4711", 600, ADMIN)
    record = audit_records(payments.engine, "access.break_glass.granted")[-1]
    assert record["data"]["severity"] == "critical"
    assert record["actor"] == {"type": "person", "id": "adam@example.com"}
    assert evaluate(payments, body)["decision"] is True
    assert evaluate(payments, payment(pay_bot.id, 1_000_000))["decision"] is False  # forbid still wins
    uses = payments.grants.uses(grant.id)
    assert len(uses) == 1
    assert uses[0].data["action"] == "pay"
    clock.advance(600)
    assert evaluate(payments, body)["decision"] is False


def test_break_glass_can_be_revoked_and_is_reviewed(payments: Runtime, pay_bot: Client) -> None:
    grant = payments.grants.grant_break_glass(pay_bot.id, "payroll run blocked, incident 4711", 600, ADMIN)
    payments.grants.revoke(grant.id, "incident closed", ADMIN)
    assert evaluate(payments, payment(pay_bot.id, 50_000))["decision"] is False
    reviewed = payments.grants.review(grant.id, "justified; payroll went out", ADMIN)
    assert reviewed.reviewed_by == "adam@example.com"
    listed = payments.grants.list(kind=GrantKind.BREAK_GLASS)
    assert [g.id for g in listed] == [grant.id]


@pytest.mark.parametrize(
    ("justification", "duration"),
    [
        ("", 600),
        ("because", 600),
        ("payroll run blocked, incident 4711", 0),
        ("payroll blocked, incident", 10**6),
    ],
)
def test_break_glass_needs_a_justification_and_a_short_duration(
    payments: Runtime, pay_bot: Client, justification: str, duration: int
) -> None:
    with pytest.raises(ValidationFailed):
        payments.grants.grant_break_glass(pay_bot.id, justification, duration, ADMIN)


def test_break_glass_reaches_other_replicas_through_the_change_feed(
    payments: Runtime, pay_bot: Client
) -> None:
    grant = payments.grants.grant_break_glass(pay_bot.id, "payroll run blocked, incident 4711", 600, ADMIN)
    payments.grants.break_glass = type(payments.grants.break_glass)()  # a replica that has not heard yet
    assert payments.grants.break_glass.active(pay_bot.id, payments.clock.now()) is None
    assert payments.follower is not None
    payments.follower.poll_once()
    assert payments.grants.break_glass.active(pay_bot.id, payments.clock.now()) == grant.id
