"""Fail closed: with the audit store unwritable nothing is issued or changed, and decisions deny."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from tessera.audit.maintenance import prune_before
from tessera.audit.records import AuditEvent
from tessera.audit.service import ADMIN, RequestContext
from tessera.errors import ServiceUnavailable
from tessera.identity.agents import LifecycleState, Transition
from tessera.identity.service import NewAgent
from tessera.runtime import Runtime
from tessera.sdk.proofs import generate_private_jwk, public_jwk
from tests.unit.audit.helpers import audit_down, fill, rows, sample_event, verify
from tests.unit.helpers import Client, register, request_token

CONTEXT = RequestContext(actor=ADMIN, ip="127.0.0.1")


def decision() -> AuditEvent:
    return sample_event(1, type="decision", outcome="permit", policies=("p1",), policy_version="v1")


def count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())  # noqa: S608 - fixed names


def refused(exc: pytest.ExceptionInfo[ServiceUnavailable]) -> str:
    error = exc.value
    assert error.status == 503
    assert error.error == "temporarily_unavailable"
    assert "\n" not in error.description
    assert "audit" in error.description
    return error.description


@pytest.fixture
def down(runtime: Runtime, engine: Engine) -> Iterator[None]:
    """The audit store refuses inserts, after the runtime started (its startup records written)."""
    with audit_down(engine):
        yield


@pytest.fixture
def client(runtime: Runtime) -> Client:
    return register(runtime)


def test_the_token_endpoint_refuses_without_a_record(
    runtime: Runtime, engine: Engine, client: Client
) -> None:
    before = rows(engine)
    with audit_down(engine), pytest.raises(ServiceUnavailable) as exc:
        request_token(runtime, client)
    assert "token.issued" in refused(exc)
    assert rows(engine) == before
    issued = request_token(runtime, client)  # and once the store is back, it issues again
    assert rows(engine)[-1]["token_hash"] == runtime.auditor.token_hash(issued.jti)


@pytest.mark.usefixtures("down")
def test_creating_an_agent_is_refused_and_does_not_happen(runtime: Runtime, engine: Engine) -> None:
    agents, changes = count(engine, "agents"), count(engine, "changes")
    with pytest.raises(ServiceUnavailable) as exc:
        runtime.agents.create(NewAgent(name="ghost", owner="o@example.com", scopes=("s",)), CONTEXT)
    refused(exc)
    assert (count(engine, "agents"), count(engine, "changes")) == (agents, changes)


def test_lifecycle_and_key_changes_are_refused_and_do_not_happen(
    runtime: Runtime, engine: Engine, client: Client
) -> None:
    token = request_token(runtime, client)
    with audit_down(engine):
        with pytest.raises(ServiceUnavailable) as exc:
            runtime.agents.transition(client.id, Transition.SUSPEND, "incident", CONTEXT)
        refused(exc)
        with pytest.raises(ServiceUnavailable):
            runtime.agents.add_key(client.id, public_jwk(generate_private_jwk()), context=CONTEXT)
        with pytest.raises(ServiceUnavailable):
            runtime.keys.rotate(context=CONTEXT)
    agent = runtime.agents.get(client.id)
    assert agent.state is LifecycleState.ACTIVE
    assert len(agent.keys) == 1
    assert len(runtime.keys.load().keys) == 1
    assert runtime.validator.verify(token.access_token).jti == token.jti  # the suspension never happened
    assert verify(runtime).ok


def test_a_revocation_is_refused_and_the_token_stays_live(
    runtime: Runtime, engine: Engine, client: Client
) -> None:
    token = request_token(runtime, client)
    with audit_down(engine), pytest.raises(ServiceUnavailable) as exc:
        runtime.revoker.revoke(reason="incident", jti=token.jti, context=CONTEXT)
    assert "live" in exc.value.description or "audit" in exc.value.description
    assert exc.value.status == 503
    assert runtime.validator.verify(token.access_token).jti == token.jti
    runtime.follower.poll_once()  # type: ignore[union-attr]
    assert runtime.validator.verify(token.access_token).jti == token.jti
    assert runtime.revoker.revoke(reason="incident", jti=token.jti, context=CONTEXT) == {
        token.jti: pytest.approx(runtime.clock.now() + token.expires_in, abs=2)
    }


@pytest.mark.usefixtures("down")
def test_pruning_is_refused_and_deletes_nothing(runtime: Runtime, engine: Engine) -> None:
    runtime.audit_writer.checkpoint()
    before = rows(engine)
    with pytest.raises(ServiceUnavailable):
        prune_before(engine, runtime.auditor, int(runtime.clock.now() * 1000) + 1, CONTEXT)
    assert rows(engine) == before


@pytest.mark.usefixtures("down")
def test_a_decision_is_denied_when_its_record_cannot_be_written(runtime: Runtime) -> None:
    with pytest.raises(ServiceUnavailable) as exc:
        runtime.auditor.record_decision(decision(), fail_open=False)
    assert "denied" in refused(exc)


@pytest.mark.usefixtures("down")
def test_fail_open_decisions_answer_and_log_loudly(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.CRITICAL, logger="tessera.audit.service"):
        assert runtime.auditor.record_decision(decision(), fail_open=True) is None
    critical = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(critical) == 1
    assert "FAIL-OPEN" in critical[0].getMessage()
    assert "agt_1" in critical[0].getMessage()


def test_with_the_store_up_fail_open_changes_nothing(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        record = runtime.auditor.record_decision(decision(), fail_open=True)
    assert record is not None
    assert record.decision == {
        "outcome": "permit",
        "policies": ["p1"],
        "policy_version": "v1",
        "decision_id": None,
    }
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.usefixtures("down")
def test_async_records_never_raise_into_the_caller(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="tessera.audit.service"):
        runtime.auditor.record_async(sample_event(1, type="token.denied"))
    assert any("could not be written" in r.getMessage() for r in caplog.records)


def test_after_an_outage_the_chain_is_consistent(runtime: Runtime, engine: Engine, client: Client) -> None:
    fill(runtime, 3)
    with audit_down(engine):
        for _ in range(3):
            with pytest.raises(ServiceUnavailable):
                request_token(runtime, client)
        with pytest.raises(ServiceUnavailable):
            runtime.agents.create(NewAgent(name="ghost", owner="o@example.com", scopes=("s",)), CONTEXT)
    request_token(runtime, client)
    fill(runtime, 3, start=3)
    runtime.audit_writer.checkpoint()
    report = verify(runtime)
    assert report.ok, report.problem
    assert report.unsigned_tail == 0
