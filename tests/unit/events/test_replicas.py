"""Two runtimes on one database, as two replicas: what one does, the other sees after a feed poll."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from tessera.clock import ManualClock
from tessera.config import Settings
from tessera.errors import InvalidClient, InvalidDPoPProof
from tessera.identity.agents import Transition
from tessera.runtime import Runtime
from tessera.tokens.introspection import Caller
from tessera.tokens.issuer import IssuedToken
from tessera.tokens.jose import JwsError
from tests.unit.helpers import (
    assertion,
    client_auth,
    private_key,
    proof,
    register,
    request_token,
    token_request,
    unverified_claims,
)


@pytest.fixture
def replica(settings: Settings, clock: ManualClock, runtime: Runtime) -> Iterator[Runtime]:
    """A second runtime on the same database and home, started after ``runtime``."""
    rt = Runtime(settings, clock=clock)
    rt.start(background=False)
    yield rt
    rt.stop()


def poll(rt: Runtime) -> None:
    assert rt.follower is not None
    rt.follower.poll_once()


@pytest.mark.parametrize("transition", [Transition.SUSPEND, Transition.QUARANTINE, Transition.DECOMMISSION])
def test_a_lifecycle_change_reaches_the_other_replica(
    runtime: Runtime, replica: Runtime, transition: Transition
) -> None:
    client = register(runtime)
    poll(replica)
    token = request_token(runtime, client).access_token
    assert replica.validator.verify(token)
    runtime.agents.transition(client.id, transition)
    poll(replica)
    with pytest.raises(JwsError):
        replica.validator.verify(token)
    assert replica.introspector.introspect(token, Caller(admin=True))[0] == {"active": False}


def test_a_resumed_agent_is_active_again_everywhere_but_old_tokens_stay_dead(
    runtime: Runtime, replica: Runtime
) -> None:
    client = register(runtime)
    old = request_token(runtime, client).access_token
    runtime.agents.transition(client.id, Transition.SUSPEND)
    runtime.agents.transition(client.id, Transition.RESUME)
    poll(replica)
    fresh = request_token(replica, client).access_token
    assert replica.validator.verify(fresh)
    with pytest.raises(JwsError, match="revoked"):
        replica.validator.verify(old)


def test_a_revocation_reaches_the_other_replica(runtime: Runtime, replica: Runtime) -> None:
    client = register(runtime)
    token = request_token(runtime, client).access_token
    poll(replica)
    assert replica.validator.verify(token)
    runtime.revoker.revoke_token(token, Caller(admin=True))
    poll(replica)
    with pytest.raises(JwsError, match="revoked"):
        replica.validator.verify(token)


def test_revocation_by_task_reaches_the_other_replica(runtime: Runtime, replica: Runtime) -> None:
    client = register(runtime)
    details = '[{"type": "agent_task", "task_id": "T-9", "purpose": "p"}]'
    token = request_token(runtime, client, authorization_details=details).access_token
    runtime.revoker.revoke(task_id="T-9", reason="cancelled")
    poll(replica)
    with pytest.raises(JwsError, match="revoked"):
        replica.validator.verify(token)


def test_an_agent_created_elsewhere_is_unknown_until_the_feed_says_so(
    runtime: Runtime, replica: Runtime
) -> None:
    client = register(runtime)
    token = request_token(runtime, client).access_token
    with pytest.raises(JwsError, match="not active"):
        replica.validator.verify(token)  # fail closed
    poll(replica)
    assert replica.validator.verify(token).client_id == client.id


def test_a_key_rotation_reaches_the_other_replica(
    runtime: Runtime, replica: Runtime, clock: ManualClock
) -> None:
    new = runtime.keys.rotate()
    poll(replica)
    assert new in {k["kid"] for k in replica.keyring().jwks(clock.now())["keys"]}
    clock.advance(runtime.settings.signing_key_publish_delay)
    client = register(replica)
    assert unverified_claims(request_token(replica, client).access_token)
    signer = replica.keyring().signing_key(clock.now())
    assert signer is not None
    assert signer.kid == new


def test_a_key_retirement_reaches_the_other_replica(runtime: Runtime, replica: Runtime) -> None:
    client = register(runtime)
    poll(replica)
    token = request_token(runtime, client).access_token
    assert replica.validator.verify(token)
    signer = runtime.keyring().signing_key(runtime.clock.now())
    assert signer is not None
    runtime.keys.retire(signer.kid)
    poll(replica)
    with pytest.raises(JwsError, match="retired"):
        replica.validator.verify(token)
    assert replica.validator.verify(request_token(replica, client).access_token)


def test_both_replicas_share_the_admin_credential(runtime: Runtime, replica: Runtime) -> None:
    token = runtime.settings.admin_token_path.read_text().strip()
    assert runtime.admin.verify(token)
    assert replica.admin.verify(token)


def test_an_assertion_replayed_on_another_replica_is_refused(runtime: Runtime, replica: Runtime) -> None:
    client = register(runtime)
    poll(replica)  # the replica's policy entities learn of the agent through the feed
    once = client_auth(assertion(runtime, client))
    pairs = [("grant_type", "client_credentials"), *once]
    runtime.token_endpoint.handle(token_request(runtime, pairs))
    with pytest.raises(InvalidClient, match="already been used"):
        replica.token_endpoint.handle(token_request(replica, pairs))


def test_a_dpop_proof_replayed_on_another_replica_is_refused(runtime: Runtime, replica: Runtime) -> None:
    client = register(runtime)
    poll(replica)  # the replica's policy entities learn of the agent through the feed
    once = proof(runtime, private_key())
    request_token(runtime, client, dpop=once)
    with pytest.raises(InvalidDPoPProof, match="already been used"):
        request_token(replica, client, dpop=once)


def race(replicas: list[Runtime], pairs: list[tuple[str, str]]) -> tuple[int, list[str], list[BaseException]]:
    """Send one token request to every replica at the same moment; (tokens issued, refusals, errors)."""
    barrier = threading.Barrier(len(replicas))
    issued: list[IssuedToken] = []
    refused: list[str] = []
    errors: list[BaseException] = []

    def attempt(rt: Runtime) -> None:
        request = token_request(rt, pairs)
        try:
            barrier.wait(timeout=30)
            issued.append(rt.token_endpoint.handle(request))
        except InvalidClient as exc:
            refused.append(exc.description)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=attempt, args=(rt,)) for rt in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return len(issued), refused, errors


def test_one_assertion_raced_on_two_replicas_yields_one_token(runtime: Runtime, replica: Runtime) -> None:
    client = register(runtime)
    poll(replica)  # the replica's policy entities learn of the agent through the feed
    replicas = [runtime, replica] * 3
    for _ in range(3):
        pairs = [("grant_type", "client_credentials"), *client_auth(assertion(runtime, client))]
        issued, refused, errors = race(replicas, pairs)
        assert errors == []
        assert issued == 1
        assert refused == ["client assertion jti has already been used"] * (len(replicas) - 1)
