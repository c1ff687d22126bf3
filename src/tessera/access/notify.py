"""Telling people and agents, in the background: approver webhooks and CIBA ping callbacks.

- Approver webhooks get a JSON body a Slack incoming webhook accepts
  (``{"text": …, "blocks": [section…]}``); any other receiver can read ``text``.
- Ping callbacks (OpenID CIBA Core 1.0 §10.2): ``POST`` ``{"auth_req_id": …}`` to the
  agent's registered ``ciba_notification_endpoint`` attribute, with
  ``Authorization: Bearer <client_notification_token>``.

Messages wait in a bounded queue served by one thread: a request never waits for
a receiver. Each delivery is tried at most ``attempts`` times (1 s, 2 s, 4 s… apart);
a full queue drops the message and logs it. Callback URLs are checked against
SSRF: ``https`` only, and the host must resolve to public addresses only, unless
``allow_private`` is set (tests, labs). Redirects are not followed.
"""

from __future__ import annotations

import ipaddress
import logging
import queue
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

log = logging.getLogger(__name__)
QUEUE_SIZE = 1000
TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Delivery:
    url: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    check_ssrf: bool = False


def slack_message(title: str, lines: list[str]) -> dict[str, Any]:
    """A Slack incoming-webhook body: fallback ``text`` plus one ``section`` block in mrkdwn."""
    text = f"{title}\n" + "\n".join(lines)
    return {
        "text": text[:3000],
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:3000] or " "}},
        ],
    }


def unsafe_callback(url: str, *, allow_private: bool) -> str | None:  # noqa: PLR0911 - one return per reason
    """Why ``url`` may not be called back (SSRF), or ``None`` if it may."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "not a url"
    if parts.scheme != "https" and not (allow_private and parts.scheme == "http"):
        return "callback urls must use https"
    if not parts.hostname or parts.username or parts.password:
        return "callback url needs a host and no credentials"
    if allow_private:
        return None
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
    except OSError:
        return f"cannot resolve '{parts.hostname}'"
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            return f"'{parts.hostname}' resolves to a non-public address"
    return None


Poster = Callable[[Delivery], int]


def _http_post(delivery: Delivery) -> int:
    with httpx.Client(timeout=TIMEOUT, follow_redirects=False) as client:
        return client.post(delivery.url, json=delivery.body, headers=delivery.headers).status_code


class Notifier:
    def __init__(
        self,
        webhook_urls: tuple[str, ...],
        *,
        allow_private_callbacks: bool = False,
        attempts: int = 3,
        post: Poster = _http_post,
        wait: Callable[[float], bool] | None = None,
    ) -> None:
        self.webhook_urls = webhook_urls
        self.allow_private_callbacks = allow_private_callbacks
        self._attempts = attempts
        self._post = post
        self._queue: queue.Queue[Delivery] = queue.Queue(QUEUE_SIZE)
        self._stop = threading.Event()
        self._wait = wait or self._stop.wait
        self._thread: threading.Thread | None = None

    def approvers(self, title: str, lines: list[str]) -> None:
        for url in self.webhook_urls:
            self._enqueue(Delivery(url, slack_message(title, lines)))

    def ping(self, url: str, auth_req_id: str, token: str | None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._enqueue(Delivery(url, {"auth_req_id": auth_req_id}, headers, check_ssrf=True))

    def _enqueue(self, delivery: Delivery) -> None:
        try:
            self._queue.put_nowait(delivery)
        except queue.Full:
            log.error("notification queue is full; dropped a message for %s", urlsplit(delivery.url).hostname)

    def deliver(self, delivery: Delivery) -> bool:
        """Try one delivery up to ``attempts`` times; True once the receiver answered 2xx."""
        if delivery.check_ssrf:
            why = unsafe_callback(delivery.url, allow_private=self.allow_private_callbacks)
            if why is not None:
                log.warning("callback to %s refused: %s", urlsplit(delivery.url).hostname, why)
                return False
        for attempt in range(self._attempts):
            try:
                if 200 <= self._post(delivery) < 300:
                    return True
            except httpx.HTTPError as exc:
                log.warning("notification to %s failed: %s", urlsplit(delivery.url).hostname, exc)
            if attempt + 1 < self._attempts and self._wait(float(2**attempt)):
                return False  # stopping
        return False

    def drain(self) -> int:
        """Deliver everything queued now, in this thread (tests and shutdown); returns how many."""
        count = 0
        while True:
            try:
                delivery = self._queue.get_nowait()
            except queue.Empty:
                return count
            self.deliver(delivery)
            count += 1

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tessera-notify", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                delivery = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                self.deliver(delivery)
            except Exception:
                log.exception("notification failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
