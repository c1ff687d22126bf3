"""Security Event Tokens (RFC 8417) and their push delivery (RFC 8935) to a local receiver."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tessera.events.security_events import (
    CAEP_RISK_LEVEL_CHANGE,
    SET_MEDIA_TYPE,
    Deliverer,
    Delivery,
    risk_level,
    risk_level_change_event,
    security_event_token,
)
from tessera.runtime import Runtime


class Receiver:
    """A push endpoint on loopback that records what it receives and answers ``status``."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.status = 202
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                receiver.received.append((dict(self.headers.items()), self.rfile.read(length)))
                self.send_response(receiver.status)
                body = b"" if receiver.status == 202 else b'{"err":"invalid_request","description":"no"}'
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                return

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def signed_set(runtime: Runtime, audience: str) -> str:
    key = runtime.keyring().signing_key(runtime.clock.now())
    assert key is not None
    return security_event_token(
        private_key=key.private_key,
        kid=key.kid,
        alg=key.alg,
        issuer=runtime.issuer,
        audience=audience,
        jti="set_1",
        now=runtime.clock.now(),
        subject="agt_1",
        events={CAEP_RISK_LEVEL_CHANGE: risk_level_change_event(score=85, previous=40, reason="x", at=1.0)},
    )


def test_a_set_has_the_rfc_8417_shape_and_verifies_with_the_published_keys(runtime: Runtime) -> None:
    token = signed_set(runtime, "https://receiver.example/events")
    keys = KeySet.import_key_set(runtime.keyring().jwks(runtime.clock.now()))  # type: ignore[arg-type]
    decoded = jwt.decode(token, keys, algorithms=[runtime.keyring().signing_key(runtime.clock.now()).alg])  # type: ignore[union-attr]
    assert decoded.header["typ"] == "secevent+jwt"  # RFC 8417 §2.3
    claims = decoded.claims
    assert claims["iss"] == runtime.issuer
    assert claims["jti"] == "set_1"
    assert isinstance(claims["iat"], int)
    assert claims["aud"] == "https://receiver.example/events"
    assert "exp" not in claims
    assert "sub" not in claims
    assert claims["sub_id"] == {"format": "opaque", "id": "agt_1"}
    event = claims["events"][CAEP_RISK_LEVEL_CHANGE]
    assert event == {
        "principal": "USER",
        "current_level": "HIGH",
        "previous_level": "LOW",
        "risk_reason": "x",
        "event_timestamp": 1,
    }


def test_risk_levels() -> None:
    assert [risk_level(s) for s in (0, 49, 50, 79, 80, 100)] == [
        "LOW",
        "LOW",
        "MEDIUM",
        "MEDIUM",
        "HIGH",
        "HIGH",
    ]


def test_a_set_is_pushed_as_rfc_8935_says(runtime: Runtime, receiver: Receiver) -> None:
    token = signed_set(runtime, receiver.url)
    deliverer = Deliverer(timeout=5)
    try:
        assert deliverer.send(Delivery(receiver.url, set_token=token))
    finally:
        deliverer.stop()
    headers, body = receiver.received[0]
    assert headers["Content-Type"] == SET_MEDIA_TYPE
    assert headers["Accept"] == "application/json"
    assert body.decode() == token


def test_a_receivers_400_is_final_and_other_failures_are_retried(
    runtime: Runtime, receiver: Receiver
) -> None:
    deliverer = Deliverer(timeout=5)
    try:
        receiver.status = 400
        assert not deliverer.send(Delivery(receiver.url, set_token=signed_set(runtime, receiver.url)))
        assert len(receiver.received) == 1
        receiver.status = 503
        assert not deliverer.send(Delivery(receiver.url, json_body={"type": "tessera.alert"}))
        assert len(receiver.received) == 4
        assert json.loads(receiver.received[-1][1]) == {"type": "tessera.alert"}
    finally:
        deliverer.stop()
    assert deliverer.failed == 2


def test_a_playbook_alert_pushes_a_set_to_every_registered_receiver(
    runtime: Runtime, receiver: Receiver
) -> None:
    from tessera.audit.service import RequestContext
    from tessera.detect.observations import Observation
    from tessera.detect.risk import Reason
    from tessera.response.playbooks import parse_yaml
    from tests.unit.helpers import register

    runtime.receivers.add(receiver.url, "soc", RequestContext())
    runtime.playbooks.apply(
        parse_yaml("playbooks: [{name: alert-50, when: {risk_at_least: 50}, actions: [alert]}]"),
        RequestContext(),
    )
    agent = register(runtime).id
    now = runtime.clock.now()
    view = runtime.risk_board.add(agent, [Reason("new_zone", 60, "zone x", now)], learning=False, now=now)
    runtime.playbooks.on_risk(Observation(agent, now, "decision"), [], view)
    ((_headers, body),) = receiver.received
    keys = KeySet.import_key_set(runtime.keyring().jwks(now))  # type: ignore[arg-type]
    claims = jwt.decode(body.decode(), keys).claims
    assert claims["sub_id"]["id"] == agent
    assert claims["events"][CAEP_RISK_LEVEL_CHANGE]["current_level"] == "MEDIUM"
