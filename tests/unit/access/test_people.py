"""People: argon2 passwords, TOTP (RFC 6238) that works once, personal tokens that expire and revoke."""

from __future__ import annotations

import pytest

from tessera.audit.service import RequestContext
from tessera.clock import ManualClock
from tessera.errors import Conflict, Unauthorized, ValidationFailed
from tessera.identity.people import TOKEN_PREFIX
from tessera.runtime import Runtime
from tests.unit.access.conftest import PASSWORD, Staff, add_person
from tests.unit.policy.helpers import audit_records


@pytest.fixture
def alice(runtime: Runtime) -> Staff:
    return add_person(runtime, "alice@example.com", "approver", "payments-approvers")


def test_login_with_password_and_totp_gives_a_personal_token(
    runtime: Runtime, alice: Staff, clock: ManualClock
) -> None:
    issued = runtime.people.login("alice@example.com", PASSWORD, alice.code(clock), "127.0.0.1")
    assert issued.token.startswith(TOKEN_PREFIX)
    person = runtime.people.verify_token(issued.token)
    assert person is not None
    assert person.username == "alice@example.com"
    assert audit_records(runtime.engine, "person.login")[-1]["subject"] == "alice@example.com"


def test_a_totp_code_works_once(runtime: Runtime, alice: Staff, clock: ManualClock) -> None:
    code = alice.code(clock)
    runtime.people.login("alice@example.com", PASSWORD, code, None)
    with pytest.raises(Unauthorized):
        runtime.people.login("alice@example.com", PASSWORD, code, None)
    clock.advance(30)  # still inside the ±1 step window: still refused
    with pytest.raises(Unauthorized):
        runtime.people.login("alice@example.com", PASSWORD, code, None)
    runtime.people.login("alice@example.com", PASSWORD, alice.code(clock), None)


def test_totp_codes_outside_the_window_and_wrong_codes_are_refused(
    runtime: Runtime, alice: Staff, clock: ManualClock
) -> None:
    for code in (alice.code(clock, -2), alice.code(clock, 2), "000000", "12345", "abcdef", "", None):
        with pytest.raises(Unauthorized):
            runtime.people.login("alice@example.com", PASSWORD, code, None)
    runtime.people.login("alice@example.com", PASSWORD, alice.code(clock, -1), None)


def test_wrong_passwords_unknown_people_and_disabled_accounts_get_the_same_answer(
    runtime: Runtime, alice: Staff, clock: ManualClock
) -> None:
    answers = []
    for username, password in (("alice@example.com", "wrong password!"), ("nobody", PASSWORD)):
        with pytest.raises(Unauthorized) as refused:
            runtime.people.login(username, password, alice.code(clock), None)
        answers.append(refused.value.description)
    issued = runtime.people.login("alice@example.com", PASSWORD, alice.code(clock), None)
    runtime.people.disable("alice@example.com", RequestContext())
    assert runtime.people.verify_token(issued.token) is None  # its tokens are revoked
    clock.advance(60)
    with pytest.raises(Unauthorized) as refused:
        runtime.people.login("alice@example.com", PASSWORD, alice.code(clock), None)
    answers.append(refused.value.description)
    assert len(set(answers)) == 1
    assert [r["reason"] for r in audit_records(runtime.engine, "person.login_failed")][
        -1
    ] == "account disabled"


def test_personal_tokens_expire_and_log_out(runtime: Runtime, alice: Staff, clock: ManualClock) -> None:
    issued = runtime.people.login("alice@example.com", PASSWORD, alice.code(clock), None)
    clock.advance(runtime.settings.person_token_ttl - 1)
    assert runtime.people.verify_token(issued.token) is not None
    clock.advance(1)
    assert runtime.people.verify_token(issued.token) is None
    again = runtime.people.login("alice@example.com", PASSWORD, alice.code(clock), None)
    assert runtime.people.logout(again.token, RequestContext())
    assert runtime.people.verify_token(again.token) is None
    for forged in (None, "", "tsr_pat_" + "x" * 43, again.token + "x", "x" * 10_000):
        assert runtime.people.verify_token(forged) is None


def test_an_auditor_needs_no_totp_and_admins_and_approvers_must_enrol(runtime: Runtime) -> None:
    auditor = add_person(runtime, "audrey@example.com", "auditor")
    assert auditor.totp_secret is None
    runtime.people.login("audrey@example.com", PASSWORD, None, None)
    admin = add_person(runtime, "adam@example.com", "admin")
    assert admin.totp_secret is not None
    with pytest.raises(Unauthorized):
        runtime.people.login("adam@example.com", PASSWORD, None, None)


def test_reset_totp_replaces_the_secret_and_revokes_tokens(
    runtime: Runtime, alice: Staff, clock: ManualClock
) -> None:
    issued = runtime.people.login("alice@example.com", PASSWORD, alice.code(clock), None)
    enrolment = runtime.people.reset_totp("alice@example.com", RequestContext())
    assert enrolment.otpauth_uri is not None
    assert runtime.people.verify_token(issued.token) is None
    clock.advance(90)
    with pytest.raises(Unauthorized):  # the old app's codes no longer work
        runtime.people.login("alice@example.com", PASSWORD, alice.code(clock), None)


@pytest.mark.parametrize(
    ("username", "role", "password", "groups"),
    [
        ("bad name", "approver", PASSWORD, ()),
        ("carol", "root", PASSWORD, ()),
        ("carol", "auditor", "short", ()),
        ("carol", "auditor", PASSWORD, ("no spaces allowed",)),
    ],
)
def test_invalid_accounts_are_refused(
    runtime: Runtime, username: str, role: str, password: str, groups: tuple[str, ...]
) -> None:
    with pytest.raises(ValidationFailed):
        runtime.people.create(username, role, password, groups, RequestContext())


def test_usernames_are_unique(runtime: Runtime, alice: Staff) -> None:
    with pytest.raises(Conflict):
        runtime.people.create("alice@example.com", "auditor", PASSWORD, (), RequestContext())
    stored = runtime.people.list()
    assert [p.username for p in stored] == ["alice@example.com"]
