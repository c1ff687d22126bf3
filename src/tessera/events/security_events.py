"""Outgoing security events: Security Event Tokens (RFC 8417) pushed to receivers (RFC 8935).

A SET is a JWT (RFC 8417 §2) signed with Tessera's current signing key, with
header ``typ: secevent+jwt`` (§2.3) and the claims ``iss``, ``iat``, ``jti``
(§2.2), ``aud`` (the receiver), ``sub_id`` (Shared Signals Framework 1.0 §3:
``{"format": "opaque", "id": <agent id>}``) and ``events``: one CAEP 1.0
event, ``risk-level-change`` (§3.8: ``principal``, ``current_level`` LOW,
MEDIUM or HIGH, ``previous_level``, ``risk_reason``, ``event_timestamp``).

Delivery is push (RFC 8935 §2): ``POST`` with ``Content-Type:
application/secevent+jwt`` and ``Accept: application/json``; the receiver
answers ``202 Accepted`` or ``400`` with ``{"err", "description"}`` (§2.3),
which is logged and not retried; other failures are retried a few times.
Deliveries (and plain JSON webhooks) run on one background thread through a
bounded queue, so a slow receiver never holds up detection.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc import jwt

log = logging.getLogger(__name__)
SET_TYPE = "secevent+jwt"
SET_MEDIA_TYPE = "application/secevent+jwt"
CAEP_RISK_LEVEL_CHANGE = "https://schemas.openid.net/secevent/caep/event-type/risk-level-change"
MAX_ATTEMPTS = 3


def risk_level(score: int) -> str:
    """CAEP's three levels for a 0-100 score: HIGH at 80, MEDIUM at 50 (the starter policy's lines)."""
    return "HIGH" if score >= 80 else "MEDIUM" if score >= 50 else "LOW"


def risk_level_change_event(*, score: int, previous: int | None, reason: str, at: float) -> dict[str, Any]:
    """The CAEP 1.0 §3.8 ``risk-level-change`` event body (an agent is a robotic ``USER``)."""
    body: dict[str, Any] = {
        "principal": "USER",
        "current_level": risk_level(score),
        "risk_reason": reason[:200],
        "event_timestamp": int(at),
    }
    if previous is not None:
        body["previous_level"] = risk_level(previous)
    return body


def security_event_token(
    *,
    private_key: Any,
    kid: str,
    alg: str,
    issuer: str,
    audience: str,
    jti: str,
    now: float,
    subject: str,
    events: dict[str, dict[str, Any]],
) -> str:
    """A signed SET (RFC 8417 §2.2 claims, §2.3 ``typ``); no ``exp`` or ``sub`` (§2.2, §3)."""
    header = {"alg": alg, "kid": kid, "typ": SET_TYPE}
    claims = {
        "iss": issuer,
        "iat": int(now),
        "jti": jti,
        "aud": audience,
        "sub_id": {"format": "opaque", "id": subject},
        "events": events,
    }
    return jwt.encode(header, claims, private_key, algorithms=[alg])


@dataclass(frozen=True, slots=True)
class Delivery:
    url: str
    #: A SET (pushed as application/secevent+jwt) or a JSON body (a webhook).
    set_token: str | None = None
    json_body: dict[str, Any] | None = None


class Deliverer:
    """One background thread that pushes SETs and posts webhooks, with a few retries."""

    def __init__(
        self, *, timeout: float = 5.0, capacity: int = 1000, http: httpx.Client | None = None
    ) -> None:
        self._queue: queue.Queue[Delivery | None] = queue.Queue(maxsize=capacity)
        self._http = http or httpx.Client(timeout=timeout, follow_redirects=False)
        self._thread: threading.Thread | None = None
        self.dropped = 0
        self.delivered = 0
        self.failed = 0

    def submit(self, delivery: Delivery) -> None:
        if self._thread is None:
            self.send(delivery)  # not started (tests, tools): deliver now
            return
        try:
            self._queue.put_nowait(delivery)
        except queue.Full:
            self.dropped += 1
            log.error("delivery queue full; dropped a delivery to %s", delivery.url)

    def send(self, delivery: Delivery) -> bool:
        """Deliver once with retries; True on success (202/2xx)."""
        for attempt in range(MAX_ATTEMPTS):
            try:
                if delivery.set_token is not None:
                    response = self._http.post(
                        delivery.url,
                        content=delivery.set_token,
                        headers={"Content-Type": SET_MEDIA_TYPE, "Accept": "application/json"},
                    )
                else:
                    response = self._http.post(delivery.url, json=delivery.json_body)
            except httpx.HTTPError as exc:
                log.warning("delivery to %s failed (attempt %d): %s", delivery.url, attempt + 1, exc)
            else:
                if response.is_success:
                    self.delivered += 1
                    return True
                if response.status_code == 400:
                    log.error("receiver %s refused the event: %s", delivery.url, response.text[:300])
                    break
                log.warning(
                    "delivery to %s answered %s (attempt %d)", delivery.url, response.status_code, attempt + 1
                )
            if self._thread is not None:
                time.sleep(0.5 * (attempt + 1))  # the delivery thread only: a real pause between retries
        self.failed += 1
        return False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tessera-deliveries", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            try:
                self._queue.put(None, timeout=1.0)
            except queue.Full:
                log.warning("delivery queue full at stop; pending deliveries are dropped")
            self._thread.join(timeout=10)
        self._thread = None
        self._http.close()

    def _run(self) -> None:
        while True:
            delivery = self._queue.get()
            if delivery is None:
                return
            try:
                self.send(delivery)
            except Exception:
                log.exception("delivery to %s failed", delivery.url)
