"""ContextBuilder: network zones by most specific CIDR, derived keys that callers cannot override."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tessera.clock import ManualClock
from tessera.errors import ValidationFailed
from tessera.policy.context import ContextBuilder, TokenFacts

ZONES = {
    "10.0.0.0/8": "corporate",
    "10.20.0.0/16": "lab",
    "10.20.30.0/24": "lab-secure",
    "2001:db8::/32": "corporate-v6",
    "2001:db8:aa::/48": "lab-v6",
    "::1/128": "local",
}


@pytest.fixture
def contexts() -> ContextBuilder:
    return ContextBuilder(ZONES)


@pytest.mark.parametrize(
    ("ip", "zone"),
    [
        ("10.1.2.3", "corporate"),
        ("10.20.1.1", "lab"),
        ("10.20.30.40", "lab-secure"),
        ("10.20.31.40", "lab"),
        ("2001:db8::1", "corporate-v6"),
        ("2001:db8:aa::7", "lab-v6"),
        ("2001:db8:ab::7", "corporate-v6"),
        ("::1", "local"),
        ("::ffff:10.20.30.40", "lab-secure"),  # IPv4 seen through a dual-stack socket
        ("192.0.2.1", "unknown"),
        ("2001:db9::1", "unknown"),
        ("not-an-ip", "unknown"),
        ("", "unknown"),
        (None, "unknown"),
    ],
)
def test_the_zone_is_the_most_specific_match(contexts: ContextBuilder, ip: str | None, zone: str) -> None:
    assert contexts.zone_of(ip) == zone


def test_the_table_order_does_not_matter() -> None:
    reversed_table = ContextBuilder(dict(reversed(list(ZONES.items()))))
    for ip in ("10.1.2.3", "10.20.1.1", "10.20.30.40", "2001:db8:aa::7"):
        assert reversed_table.zone_of(ip) == ContextBuilder(ZONES).zone_of(ip)


def test_an_ipv4_range_never_matches_an_ipv6_address() -> None:
    contexts = ContextBuilder({"0.0.0.0/0": "any-v4"})
    assert contexts.zone_of("2001:db8::1") == "unknown"
    assert contexts.zone_of("203.0.113.9") == "any-v4"


def test_an_invalid_cidr_is_refused() -> None:
    with pytest.raises(ValidationFailed, match=r"invalid cidr '10\.0\.0\.0/33'"):
        ContextBuilder({"10.0.0.0/33": "x"})


def test_time_is_the_clocks_hour_and_weekday_in_utc(contexts: ContextBuilder) -> None:
    clock = ManualClock()
    assert contexts.build({}, now=clock.now())["time"] == {"hour": 8, "weekday": "Fri"}  # 2027-01-15T08:00Z
    clock.set(datetime(2026, 11, 29, 23, 59, 59, tzinfo=UTC).timestamp())
    assert contexts.build({}, now=clock.now())["time"] == {"hour": 23, "weekday": "Sun"}
    clock.advance(1)
    assert contexts.build({}, now=clock.now())["time"] == {"hour": 0, "weekday": "Mon"}


def test_derived_keys_override_what_the_caller_supplies(contexts: ContextBuilder) -> None:
    supplied = {
        "risk": 0,
        "agent_state": "active",
        "network_zone": "corporate",
        "time": {"hour": 12, "weekday": "Wed"},
        "task_id": "T-forged",
        "purpose": "forged",
        "delegation_depth": 0,
    }
    context = contexts.build(
        supplied,
        now=ManualClock().now(),
        agent_state="quarantined",
        risk=85,
        token=TokenFacts(task_id="T-1", purpose="triage", delegation_depth=2),
        client_ip="192.0.2.1",
    )
    assert context["risk"] == 85
    assert context["agent_state"] == "quarantined"
    assert context["network_zone"] == "unknown"
    assert context["time"] == {"hour": 8, "weekday": "Fri"}
    assert (context["task_id"], context["purpose"], context["delegation_depth"]) == ("T-1", "triage", 2)
    assert supplied["network_zone"] == "corporate"  # the caller's mapping is not modified


def test_without_a_token_the_task_keys_are_empty_whatever_is_supplied(contexts: ContextBuilder) -> None:
    context = contexts.build({"task_id": "T-9", "purpose": "p", "delegation_depth": 5}, now=0)
    assert (context["task_id"], context["purpose"], context["delegation_depth"]) == ("", "", 0)
    assert (context["agent_state"], context["risk"]) == ("unknown", 0)


def test_the_zone_follows_the_client_ip_the_pep_passes_not_a_zone_it_claims(
    contexts: ContextBuilder,
) -> None:
    # A PEP (gateway) knows its client's address; Tessera maps it to the zone itself.
    context = contexts.build(
        {"client_ip": "10.20.30.1", "network_zone": "internet"}, now=0, client_ip="192.0.2.1"
    )
    assert (context["client_ip"], context["network_zone"]) == ("10.20.30.1", "lab-secure")
    fallback = contexts.build({"client_ip": 12345, "network_zone": "corporate"}, now=0, client_ip="192.0.2.1")
    assert (fallback["client_ip"], fallback["network_zone"]) == ("192.0.2.1", "unknown")
    nothing = contexts.build({}, now=0)
    assert (nothing["client_ip"], nothing["network_zone"]) == ("", "unknown")


def test_posture_passes_through_and_other_keys_are_kept(contexts: ContextBuilder) -> None:
    posture = {"compliant": True, "attested": False, "environment": "prod", "image_digest": "sha256:ab"}
    context = contexts.build({"posture": posture, "scopes": ["a"], "custom": {"x": 1}}, now=0)
    assert context["posture"] == posture
    assert (context["scopes"], context["custom"]) == (["a"], {"x": 1})


@pytest.mark.parametrize("posture", [None, "compliant", ["compliant"], 1])
def test_a_posture_that_is_not_a_mapping_becomes_empty(contexts: ContextBuilder, posture: object) -> None:
    assert contexts.build({"posture": posture}, now=0)["posture"] == {}
    assert contexts.build(None, now=0)["posture"] == {}
