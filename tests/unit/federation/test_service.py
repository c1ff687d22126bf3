"""Trusted issuer storage and service on SQLite and PostgreSQL: add, list, show, remove, conflicts."""

from __future__ import annotations

import pytest

from tessera.clock import ManualClock
from tessera.errors import Conflict, NotFound, ValidationFailed
from tessera.runtime import Runtime
from tests.federation_issuer import LocalIssuer
from tests.unit.federation.conftest import trust


def test_add_list_show_remove(runtime: Runtime, local_issuer: LocalIssuer, clock: ManualClock) -> None:
    added = trust(runtime, local_issuer)
    assert added.id.startswith("iss_")
    assert runtime.trusted_issuers.find(local_issuer.issuer) == added
    assert runtime.trusted_issuers.get(added.id) == added
    assert [i.id for i in runtime.trusted_issuers.list()] == [added.id]
    clock.advance(1)
    static = runtime.trusted_issuers.add(
        {
            "issuer": "spiffe://example.org",
            "jwks": local_issuer.jwks(),
            "subject": {"type": "agent", "agent_id": "agt_x"},
            "subject_claim": "sub",
        }
    )
    assert static.audiences == (runtime.issuer, runtime.settings.token_endpoint)
    assert [i.issuer for i in runtime.trusted_issuers.list()] == [local_issuer.issuer, "spiffe://example.org"]
    runtime.trusted_issuers.remove(added.id)
    assert runtime.trusted_issuers.find(local_issuer.issuer) is None
    with pytest.raises(NotFound, match=f"no trusted issuer '{added.id}'"):
        runtime.trusted_issuers.get(added.id)
    with pytest.raises(NotFound):
        runtime.trusted_issuers.remove(added.id)


def test_one_registration_per_issuer(runtime: Runtime, local_issuer: LocalIssuer) -> None:
    trust(runtime, local_issuer)
    with pytest.raises(Conflict, match=f"issuer '{local_issuer.issuer}' is already trusted"):
        trust(runtime, local_issuer)
    assert len(runtime.trusted_issuers.list()) == 1


def test_invalid_registration_writes_nothing(runtime: Runtime, local_issuer: LocalIssuer) -> None:
    with pytest.raises(ValidationFailed):
        trust(runtime, local_issuer, algorithms=["HS256"])
    assert runtime.trusted_issuers.list() == []
