"""Agent lifecycle: the transition table, and what each state means for live tokens."""

from __future__ import annotations

import pytest

from tessera.clock import ManualClock
from tessera.errors import Conflict, NotFound, UnauthorizedClient, ValidationFailed
from tessera.identity.agents import Agent, LifecycleState, Transition, next_state
from tessera.identity.service import NewAgent
from tessera.runtime import Runtime
from tessera.tokens.introspection import Caller
from tessera.tokens.jose import JwsError
from tests.unit.helpers import local_verifier, register, request_token

A, S, Q, D = (
    LifecycleState.ACTIVE,
    LifecycleState.SUSPENDED,
    LifecycleState.QUARANTINED,
    LifecycleState.DECOMMISSIONED,
)
# (from, transition) -> to; every pair not listed is forbidden.
ALLOWED = {
    (A, Transition.SUSPEND): S,
    (S, Transition.RESUME): A,
    (A, Transition.QUARANTINE): Q,
    (S, Transition.QUARANTINE): Q,
    (Q, Transition.RELEASE): A,
    (A, Transition.DECOMMISSION): D,
    (S, Transition.DECOMMISSION): D,
    (Q, Transition.DECOMMISSION): D,
}
ALL = [(state, t) for state in LifecycleState for t in Transition]


@pytest.mark.parametrize(("state", "transition"), ALL)
def test_the_transition_table(state: LifecycleState, transition: Transition) -> None:
    if (state, transition) in ALLOWED:
        assert next_state(state, transition, "agt_1") is ALLOWED[(state, transition)]
    else:
        with pytest.raises(Conflict, match=f"cannot {transition.value} agent 'agt_1'"):
            next_state(state, transition, "agt_1")


def test_decommissioned_is_terminal() -> None:
    for transition in Transition:
        with pytest.raises(Conflict):
            next_state(D, transition, "agt_1")


def test_a_quarantined_agent_is_released_not_resumed() -> None:
    with pytest.raises(Conflict, match="use release"):
        next_state(Q, Transition.RESUME, "agt_1")


@pytest.mark.parametrize("transition", [Transition.SUSPEND, Transition.QUARANTINE, Transition.DECOMMISSION])
def test_live_tokens_stop_at_once(runtime: Runtime, transition: Transition) -> None:
    client = register(runtime)
    tokens = [request_token(runtime, client).access_token for _ in range(3)]
    result = runtime.agents.transition(client.id, transition, reason="incident 7")
    assert result.revoked_tokens == 3
    assert result.agent.state_reason == "incident 7"
    for token in tokens:
        with pytest.raises(JwsError):
            runtime.validator.verify(token)
        assert runtime.introspector.introspect(token, Caller(admin=True))[0] == {"active": False}


@pytest.mark.parametrize(
    ("stop", "restart"),
    [(Transition.SUSPEND, Transition.RESUME), (Transition.QUARANTINE, Transition.RELEASE)],
)
def test_old_tokens_are_not_resurrected(runtime: Runtime, stop: Transition, restart: Transition) -> None:
    client = register(runtime)
    before = request_token(runtime, client).access_token
    runtime.agents.transition(client.id, stop)
    runtime.agents.transition(client.id, restart)
    with pytest.raises(JwsError, match="revoked"):
        runtime.validator.verify(before)
    after = request_token(runtime, client).access_token
    assert runtime.validator.verify(after).client_id == client.id


def test_quarantine_from_suspended(runtime: Runtime) -> None:
    client = register(runtime)
    runtime.agents.transition(client.id, Transition.SUSPEND)
    assert runtime.agents.transition(client.id, Transition.QUARANTINE).agent.state is Q
    with pytest.raises(Conflict):
        runtime.agents.transition(client.id, Transition.RESUME)
    assert runtime.agents.transition(client.id, Transition.RELEASE).agent.state is A


def test_decommissioning_keeps_the_record(runtime: Runtime) -> None:
    client = register(runtime, segment="billing", attributes={"team": "ops"})
    runtime.agents.transition(client.id, Transition.DECOMMISSION, reason="retired")
    kept = runtime.agents.get(client.id)
    assert kept.state is D
    assert kept.state_reason == "retired"
    assert kept.name == client.agent.name
    assert [k.kid for k in kept.keys] == [client.kid]
    assert kept.attributes == {"team": "ops"}
    assert [a.id for a in runtime.agents.list(state=D)] == [client.id]
    for transition in Transition:
        with pytest.raises(Conflict):
            runtime.agents.transition(client.id, transition)
    with pytest.raises(Conflict, match="decommissioned"):
        runtime.agents.add_key(client.id, client.agent.keys[0].jwk)


def test_an_agent_expires(runtime: Runtime, clock: ManualClock) -> None:
    client = register(runtime, expires_at=clock.now() + 200)
    token = request_token(runtime, client).access_token  # lives 300 s, past the agent's expiry
    sdk = local_verifier(runtime)
    clock.advance(199)
    assert runtime.validator.verify(token)
    clock.advance(1)
    with pytest.raises(JwsError, match="not active"):
        runtime.validator.verify(token)
    # The SDK sees only the signature and lifetime: expiry reaches it through introspection.
    assert sdk.verify_token(token)
    assert runtime.introspector.introspect(token, Caller(admin=True))[0] == {"active": False}


def test_an_expiry_in_the_past_is_refused(runtime: Runtime, clock: ManualClock) -> None:
    with pytest.raises(ValidationFailed, match="past"):
        runtime.agents.create(NewAgent(name="late", owner="o@example.com", expires_at=clock.now()))


def test_a_transition_of_an_unknown_agent(runtime: Runtime) -> None:
    with pytest.raises(NotFound):
        runtime.agents.transition("agt_nobody", Transition.SUSPEND)


@pytest.mark.parametrize(
    ("stop", "restart"),
    [(Transition.SUSPEND, Transition.RESUME), (Transition.QUARANTINE, Transition.RELEASE)],
)
def test_a_token_request_racing_a_suspension_gets_nothing(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, stop: Transition, restart: Transition
) -> None:
    """The agent is suspended between client authentication and the token being recorded."""
    client = register(runtime)
    find = runtime.agents.find

    def find_then_stop(agent_id: str) -> Agent | None:
        agent = find(agent_id)
        runtime.agents.transition(agent_id, stop)  # lands while the request is in flight
        return agent

    monkeypatch.setattr(runtime.authenticator, "_lookup", find_then_stop)
    issued: list[str] = []
    with pytest.raises(UnauthorizedClient, match=r"is (suspended|quarantined)"):
        issued.append(request_token(runtime, client).access_token)
    monkeypatch.undo()
    runtime.agents.transition(client.id, restart)
    assert issued == []
    assert runtime.validator.verify(request_token(runtime, client).access_token)
