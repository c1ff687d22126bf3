"""Notifications (Slack-shaped webhooks, bounded retries, SSRF-safe pings) and the canonical hash."""

from __future__ import annotations

import httpx
import pytest

from tessera.access.canonical import asked_hash, canonical_json
from tessera.access.notify import Delivery, Notifier, slack_message, unsafe_callback
from tessera.runtime import Runtime
from tests.unit.access.conftest import ask, payment
from tests.unit.helpers import Client


def test_canonical_json_sorts_keys_and_drops_whitespace() -> None:
    assert (
        canonical_json({"b": [1, {"d": True, "c": "é"}], "a": None})
        == '{"a":null,"b":[1,{"c":"é","d":true}]}'
    )
    assert asked_hash({"x": 1, "y": 2}) == asked_hash({"y": 2, "x": 1})
    assert asked_hash({"amount": 500}) != asked_hash({"amount": 5000})


def test_canonical_json_refuses_floats() -> None:
    with pytest.raises(ValueError, match="non-integer"):
        canonical_json({"amount": 0.1})


def test_the_approver_message_is_a_slack_incoming_webhook_body() -> None:
    body = slack_message("Approval needed", ["*agent* a", "*asks* pay"])
    assert isinstance(body["text"], str)
    assert body["blocks"][0]["type"] == "header"
    assert body["blocks"][1] == {
        "type": "section",
        "text": {"type": "mrkdwn", "text": "*agent* a\n*asks* pay"},
    }


def test_a_pending_request_notifies_approvers_in_the_background(
    runtime: Runtime, payments: Runtime, pay_bot: Client
) -> None:
    sent: list[Delivery] = []
    runtime.notifier.webhook_urls = ("https://hooks.example/T1",)
    runtime.notifier._post = lambda d: sent.append(d) or 200  # type: ignore[method-assign,func-returns-value]
    answer = ask(payments, pay_bot, payment(pay_bot.id, 20_000))
    assert sent == []  # nothing was sent on the request's thread
    assert runtime.notifier.drain() == 1
    assert sent[0].url == "https://hooks.example/T1"
    assert answer["request_id"] in sent[0].body["text"]
    assert "payments-approvers" in sent[0].body["text"]


def test_deliveries_are_retried_a_bounded_number_of_times() -> None:
    attempts: list[int] = []
    waits: list[float] = []

    def failing(_delivery: Delivery) -> int:
        attempts.append(1)
        raise httpx.ConnectError("refused")

    notifier = Notifier(("https://hooks.example/T1",), post=failing, wait=lambda s: waits.append(s) or False)
    assert notifier.deliver(Delivery("https://hooks.example/T1", {"text": "x"})) is False
    assert len(attempts) == 3
    assert waits == [1.0, 2.0]


@pytest.mark.parametrize(
    "url",
    [
        "http://agent.example/cb",
        "https://127.0.0.1/cb",
        "https://10.0.0.8/cb",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/cb",
        "https://user:pw@agent.example/cb",
        "file:///etc/passwd",
        "https:///nohost",
    ],
)
def test_ping_callbacks_refuse_internal_and_odd_urls(url: str) -> None:
    assert unsafe_callback(url, allow_private=False) is not None


def test_a_refused_callback_is_never_posted() -> None:
    posted: list[Delivery] = []
    notifier = Notifier((), post=lambda d: posted.append(d) or 200)  # type: ignore[func-returns-value]
    notifier.ping("https://127.0.0.1/cb", "req-1", "secret")
    notifier.drain()
    assert posted == []


def test_the_queue_is_bounded() -> None:
    notifier = Notifier(("https://hooks.example/T1",), post=lambda _d: 200)
    for _ in range(1100):
        notifier.approvers("t", ["l"])
    assert notifier.drain() == 1000
