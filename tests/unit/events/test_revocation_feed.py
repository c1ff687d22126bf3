"""The revocation feed (server side, in memory) and the SDK follower's checks, on crafted changes."""

from __future__ import annotations

from typing import Any

from tessera.events.change_feed import Change
from tessera.events.revocation_feed import RevocationFeed
from tessera.sdk.revocations import RevocationFollower
from tessera.tokens.access_tokens import AccessToken

SNAPSHOT = {"revoked": {"at_old": 9e9}, "agents": {"agt_gone": "suspended"}, "kills": []}


def feed(capacity: int = 100) -> RevocationFeed:
    f = RevocationFeed(
        snapshot=lambda: dict(SNAPSHOT), owner_agents=lambda owner: ["agt_1", "agt_2"], capacity=capacity
    )
    f.reset(10)
    return f


def change(seq: int, kind: str, subject: str, payload: dict[str, Any]) -> Change:
    return Change(seq, kind, subject, payload, 0.0)


def test_a_first_call_gets_a_snapshot_then_only_what_is_new() -> None:
    f = feed()
    first = f.since(0)
    assert first == {"cursor": 10, "reset": True, **SNAPSHOT}
    assert f.since(10) is None
    f.on_change(change(11, "tokens.revoked", "agt_1", {"tokens": {"at_1": 5.0}, "reason": "x"}))
    f.on_change(change(12, "agent", "agt_1", {"state": "quarantined", "expires_at": None, "name": "secret?"}))
    answer = f.since(10)
    assert answer is not None
    assert answer["cursor"] == 12
    assert [e["seq"] for e in answer["events"]] == [11, 12]
    assert answer["events"][1]["payload"] == {
        "state": "quarantined",
        "expires_at": None,
    }  # only what a PEP needs
    assert f.since(12) is None


def test_an_owner_kill_names_the_owners_agents_and_an_old_cursor_gets_a_snapshot() -> None:
    f = feed(capacity=2)
    f.on_change(
        change(11, "kill", "o@x", {"id": "kill_1", "scope": "owner", "target": "o@x", "released_at": None})
    )
    answer = f.since(10)
    assert answer is not None
    assert answer["events"][0]["payload"]["agents"] == ["agt_1", "agt_2"]
    for seq in (12, 13, 14):
        f.on_change(change(seq, "tokens.revoked", "a", {"tokens": {}}))
    stale = f.since(10)
    assert stale is not None
    assert stale["reset"] is True


def token(**fields: Any) -> AccessToken:
    base: dict[str, Any] = {
        "jti": "at_1",
        "issuer": "http://t",
        "subject": "agt_1",
        "client_id": "agt_1",
        "audience": ("http://t",),
        "scopes": (),
        "issued_at": 0.0,
        "expires_at": 60.0,
        "kid": "k",
    }
    base.update(fields)
    return AccessToken(**base)


def follower(now: list[float]) -> RevocationFollower:
    return RevocationFollower("http://t", lambda _m, _u: {}, clock=lambda: now[0], fail_closed_after=60)


def test_the_follower_refuses_revoked_stopped_and_killed_tokens_and_fails_closed() -> None:
    now = [100.0]
    f = follower(now)
    assert f.stopped(token()) == "the revocation feed has not been reached recently"
    f._apply(
        {"cursor": 5, "reset": True, "revoked": {"at_r": 9e9}, "agents": {"agt_s": "suspended"}, "kills": []}
    )
    f._last_contact = now[0]
    assert f.stopped(token()) is None
    assert f.stopped(token(jti="at_r")) == "token has been revoked"
    assert f.stopped(token(client_id="agt_s")) == "the token's agent is suspended"
    kills = [
        {"id": "k1", "scope": "task", "target": "T-1", "released_at": None},
        {"id": "k2", "scope": "delegator", "target": "alice", "released_at": None},
        {"id": "k3", "scope": "owner", "target": "o@x", "agents": ["agt_9"], "released_at": None},
    ]
    f._apply(
        {
            "cursor": 9,
            "events": [
                {"seq": 6 + i, "kind": "kill", "subject": "", "payload": k} for i, k in enumerate(kills)
            ],
        }
    )
    task = ({"type": "agent_task", "task_id": "T-1"},)
    assert "k1" in (f.stopped(token(authorization_details=task)) or "")
    assert "k2" in (f.stopped(token(subject="alice")) or "")
    assert "k3" in (f.stopped(token(client_id="agt_9")) or "")
    f._apply(
        {
            "cursor": 10,
            "events": [
                {"seq": 10, "kind": "kill", "subject": "", "payload": {**kills[0], "released_at": 1.0}}
            ],
        }
    )
    assert f.stopped(token(authorization_details=task)) is None
    f._apply(
        {
            "cursor": 11,
            "events": [{"seq": 11, "kind": "agent", "subject": "agt_s", "payload": {"state": "active"}}],
        }
    )
    assert f.stopped(token(client_id="agt_s")) is None
    assert f.cursor == 11
    now[0] += 61
    assert f.stopped(token()) == "the revocation feed has not been reached recently"
