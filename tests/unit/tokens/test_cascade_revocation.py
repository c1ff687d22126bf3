"""Revoking any token in a delegation chain revokes everything derived from it (RFC 8693 + RFC 7009)."""

from __future__ import annotations

import pytest
from sqlalchemy import insert, select

from tessera.errors import InvalidGrant, UnauthorizedClient
from tessera.identity.agents import Transition
from tessera.runtime import Runtime
from tessera.storage.database import writing
from tessera.storage.tables import issued_tokens
from tessera.tokens.introspection import Caller
from tessera.tokens.revocation import RevocationState, revoke_tokens
from tests.unit.helpers import Client, register, request_token
from tests.unit.tokens.exchange_helpers import JWT_TOKEN_TYPE, PersonIssuer, exchange


@pytest.fixture
def person(runtime: Runtime) -> PersonIssuer:
    idp = PersonIssuer(runtime)
    runtime.subject_verifiers.append(idp.verifier())
    return idp


@pytest.fixture
def hops(runtime: Runtime) -> list[Client]:
    return [register(runtime) for _ in range(3)]


def revoked_in_db(runtime: Runtime, jtis: list[str]) -> list[bool]:
    with runtime.engine.connect() as conn:
        rows = dict(
            conn.execute(
                select(issued_tokens.c.jti, issued_tokens.c.revoked_at).where(issued_tokens.c.jti.in_(jtis))
            ).all()
        )
    return [rows[jti] is not None for jti in jtis]


def chain(runtime: Runtime, hops: list[Client]) -> list[str]:
    """agent 0's own token, exchanged by agent 1, then by agent 2: three jtis, root first."""
    root = request_token(runtime, hops[0])
    first = exchange(runtime, hops[1], root.access_token)
    second = exchange(runtime, hops[2], first.access_token)
    return [root.jti, first.jti, second.jti]


def active(runtime: Runtime, token: str) -> bool:
    body, _ = runtime.introspector.introspect(token, Caller(admin=True))
    return bool(body["active"])


def test_revoking_the_root_revokes_the_whole_chain(runtime: Runtime, hops: list[Client]) -> None:
    jtis = chain(runtime, hops)
    other = chain(runtime, hops)
    revoked = runtime.revoker.revoke(jti=jtis[0], reason="test")
    assert set(revoked) == set(jtis)
    assert revoked_in_db(runtime, jtis) == [True, True, True]
    assert revoked_in_db(runtime, other) == [False, False, False]
    assert all(runtime.revocation.is_jti_revoked(jti) for jti in jtis)


def test_revoking_a_middle_hop_spares_what_came_before(runtime: Runtime, hops: list[Client]) -> None:
    jtis = chain(runtime, hops)
    runtime.revoker.revoke(jti=jtis[1], reason="test")
    assert revoked_in_db(runtime, jtis) == [False, True, True]


def test_the_rfc_7009_endpoint_cascades(runtime: Runtime, hops: list[Client]) -> None:
    root = request_token(runtime, hops[0])
    first = exchange(runtime, hops[1], root.access_token)
    second = exchange(runtime, hops[2], first.access_token)
    assert runtime.revoker.revoke_token(root.access_token, Caller(agent=hops[0].agent)) is True
    assert not active(runtime, first.access_token)
    assert not active(runtime, second.access_token)


def test_suspending_an_agent_revokes_what_others_hold_on_its_behalf(
    runtime: Runtime, hops: list[Client]
) -> None:
    jtis = chain(runtime, hops)
    runtime.agents.transition(hops[0].id, Transition.SUSPEND, reason="test")
    assert revoked_in_db(runtime, jtis) == [True, True, True]


def test_a_revoked_parent_cannot_be_exchanged_even_when_this_worker_has_not_heard(
    runtime: Runtime, hops: list[Client]
) -> None:
    root = request_token(runtime, hops[0])
    with writing(runtime.engine) as conn:
        revoke_tokens(conn, now=runtime.clock.now(), reason="another replica", jti=root.jti)
    assert not runtime.revocation.is_jti_revoked(root.jti)  # the feed has not been followed yet
    with pytest.raises(InvalidGrant) as refused:
        exchange(runtime, hops[1], root.access_token)
    assert refused.value.description == "subject token has been revoked"


def test_a_person_token_reported_revoked_takes_its_chain_down_and_cannot_be_reused(
    runtime: Runtime, person: PersonIssuer, hops: list[Client]
) -> None:
    token = person.token()
    first = exchange(runtime, hops[0], token, subject_token_type=JWT_TOKEN_TYPE)
    second = exchange(runtime, hops[1], first.access_token)
    with pytest.raises(UnauthorizedClient):
        runtime.revoker.revoke_token(token, Caller(agent=hops[2].agent))  # holds nothing derived from it
    assert runtime.revoker.revoke_token(token, Caller(agent=hops[0].agent)) is True
    assert revoked_in_db(runtime, [first.jti, second.jti]) == [True, True]
    with pytest.raises(InvalidGrant) as refused:
        exchange(runtime, hops[0], token, subject_token_type=JWT_TOKEN_TYPE)
    assert refused.value.description == "subject token has been revoked"
    # A restarted worker still knows.
    fresh = RevocationState()
    fresh.load(runtime.engine, runtime.clock.now())
    assert fresh.revoked_count == runtime.revocation.revoked_count
    # Reporting it again is fine (RFC 7009 §2.2) and changes nothing.
    assert runtime.revoker.revoke_token(token, Caller(admin=True)) is True


def test_unknown_and_forged_tokens_are_a_no_op(runtime: Runtime, person: PersonIssuer) -> None:
    assert runtime.revoker.revoke_token("garbage", Caller(admin=True)) is False
    stranger = PersonIssuer(runtime, issuer="https://stranger.example").token()
    assert runtime.revoker.revoke_token(stranger, Caller(admin=True)) is False
    forged = person.token(key=PersonIssuer(runtime).key)
    assert runtime.revoker.revoke_token(forged, Caller(admin=True)) is False


def _rows(runtime: Runtime, pairs: list[tuple[str, str | None]]) -> None:
    now = runtime.clock.now()
    with writing(runtime.engine) as conn:
        conn.execute(
            insert(issued_tokens),
            [
                {
                    "jti": jti,
                    "agent_id": "agent-x",
                    "kid": "k",
                    "scope": "",
                    "audience": [],
                    "issued_at": now,
                    "expires_at": now + 300,
                    "subject": "agent-x",
                    "parent_jti": parent,
                }
                for jti, parent in pairs
            ],
        )


def test_a_lineage_cycle_terminates(runtime: Runtime) -> None:
    _rows(runtime, [("c-a", "c-b"), ("c-b", "c-a"), ("c-c", "c-b")])
    revoked = runtime.revoker.revoke(jti="c-a", reason="test")
    assert set(revoked) == {"c-a", "c-b", "c-c"}


def test_a_large_fan_out_is_revoked_completely(runtime: Runtime) -> None:
    children = [(f"f-{i:05d}", "f-root") for i in range(1200)]
    grandchildren = [(f"g-{i:05d}", f"f-{i:05d}") for i in range(0, 1200, 7)]
    _rows(runtime, [("f-root", None), *children, *grandchildren])
    revoked = runtime.revoker.revoke(jti="f-root", reason="test")
    assert len(revoked) == 1 + len(children) + len(grandchildren)
