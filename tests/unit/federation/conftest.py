from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tessera.federation.issuers import TrustedIssuer
from tessera.runtime import Runtime
from tests.federation_issuer import LocalIssuer


@pytest.fixture
def local_issuer() -> Iterator[LocalIssuer]:
    issuer = LocalIssuer().start()
    yield issuer
    issuer.stop()


def trust(runtime: Runtime, local_issuer: LocalIssuer, **spec: Any) -> TrustedIssuer:
    """Register ``local_issuer`` (allowed on loopback) with ephemeral identities unless told otherwise."""
    base: dict[str, Any] = {
        "issuer": local_issuer.issuer,
        "jwks_url": local_issuer.jwks_url,
        "allow_private_network": True,
        "audiences": [runtime.issuer],
        "attributes": {"namespace": "claims['kubernetes.io']['namespace']"},
        "subject": {"type": "ephemeral", "owner": "platform@example.com", "scopes": ["reports:read"]},
        "region": "eu",
    }
    base.update(spec)
    return runtime.trusted_issuers.add({k: v for k, v in base.items() if v is not None})
