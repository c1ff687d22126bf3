"""The ``examples/eu-data-residency`` bundle: its own policy tests, and applied to a running server."""

from __future__ import annotations

from pathlib import Path

import pytest

from tessera.audit.service import RequestContext
from tessera.errors import InvalidScope
from tessera.policy.bundle import load_bundle
from tessera.policy.testing import run_tests
from tessera.runtime import Runtime
from tests.unit.helpers import register, request_token, unverified_claims
from tests.unit.tokens.exchange_helpers import exchange

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "eu-data-residency"
EU_CRM = "https://crm.eu.example/api"


def test_the_bundle_passes_its_own_policy_tests() -> None:
    report = run_tests(load_bundle(EXAMPLE))
    assert report.failed == 0, [r.message for r in report.results if not r.passed]
    assert report.passed == 9


def test_only_eu_region_agents_hold_tokens_for_the_eu_crm_even_by_delegation(runtime: Runtime) -> None:
    runtime.policies.apply(load_bundle(EXAMPLE), RequestContext())
    scopes = ("customers:read",)
    eu = register(runtime, scopes=scopes, attributes={"region": "eu"}, segment="branch-new-york")
    eu_helper = register(runtime, scopes=scopes, attributes={"region": "eu"}, segment="branch-lisbon")
    us = register(runtime, scopes=scopes, attributes={"region": "us"}, segment="branch-lisbon")
    token = request_token(runtime, eu, resource=EU_CRM)
    assert unverified_claims(token.access_token)["aud"] == EU_CRM
    with pytest.raises(InvalidScope):
        request_token(runtime, us, resource=EU_CRM)
    with pytest.raises(InvalidScope) as refused:
        exchange(runtime, us, token.access_token)
    assert "does not allow" in refused.value.description
    delegated = exchange(runtime, eu_helper, token.access_token)
    assert unverified_claims(delegated.access_token)["act"] == {"sub": eu_helper.id}
