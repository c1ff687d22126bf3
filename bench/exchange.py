"""Token exchange (RFC 8693) beside client-credentials issuance, measured in the same run.

One uvicorn worker (SQLite in a temporary TESSERA_HOME), ``--clients`` concurrent
keep-alive clients over 127.0.0.1. Both phases authenticate with ``private_key_jwt``
and ask for a bearer token for the same scope:

- ``client_credentials``: the baseline, the grant every agent uses;
- ``token_exchange``: helper agents exchange one planner's token (the subject token is
  verified, its chain extended, the lineage checked and recorded).

The phases alternate for ``--rounds`` rounds so drift on a shared machine hits both
alike; each phase's figure is its best round. Every request is signed before the
clock starts. Reported: tokens per elapsed second, per second of server CPU, p50/p99
latency, and the exchange/client-credentials ratio.

Run ``python bench/exchange.py`` (about 30 s; ``--seconds`` per phase round). It exits 1
on any non-200 response. It talks only to 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from harness import LoadResult, Server, http_request, report_grant_against_baseline, run_load
from tessera.sdk.proofs import client_assertion, generate_private_jwk, load_private_jwk

SCOPE = "tickets:read"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS = "urn:ietf:params:oauth:token-type:access_token"
#: Signed requests must still be fresh (assertion lifetime 120 s) when they are sent.
MAX_REQUESTS_PER_PHASE = 20_000


@dataclass
class Agent:
    agent_id: str
    private_jwk: dict[str, Any]

    def form(self, issuer: str, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
        key, kid, alg = load_private_jwk(self.private_jwk)
        assertion = client_assertion(key, kid, alg, client_id=self.agent_id, audience=issuer, lifetime=120)
        return [*pairs, ("client_assertion_type", ASSERTION_TYPE), ("client_assertion", assertion)]


def request(port: int, form: list[tuple[str, str]]) -> bytes:
    body = urlencode(form).encode()
    return http_request(
        "POST", "/oauth2/token", port, {"Content-Type": "application/x-www-form-urlencoded"}, body
    )


def register(admin: httpx.Client, name: str) -> Agent:
    private = generate_private_jwk("ES256")
    public = {k: v for k, v in private.items() if k != "d"}
    body = {"name": name, "owner": "bench@example.com", "scopes": [SCOPE], "max_ttl": 3600, "jwks": [public]}
    response = admin.post("/admin/v1/agents", json=body)
    response.raise_for_status()
    return Agent(response.json()["id"], private)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each phase round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    opts = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="tessera-bench-exchange-"))
    server = Server(app="tessera.server.app:create_app", env={}, log_path=tmp / "tessera.log", factory=True)
    server.env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    server.env.update(
        TESSERA_HOME=str(tmp / "home"),
        TESSERA_HOST="127.0.0.1",
        TESSERA_PORT=str(server.port),
        TESSERA_MAX_ACCESS_TOKEN_TTL="3600",
    )
    server.start("/healthz")
    best: dict[str, LoadResult] = {}
    try:
        issuer = server.url
        admin_token = (tmp / "home" / "admin-token").read_text().strip()
        with httpx.Client(base_url=issuer, headers={"Authorization": f"Bearer {admin_token}"}) as admin:
            planner = register(admin, "planner")
            helpers = [register(admin, f"helper-{i}") for i in range(opts.clients)]
        subject = httpx.post(
            f"{issuer}/oauth2/token",
            data=dict(planner.form(issuer, [("grant_type", "client_credentials"), ("expires_in", "3600")])),
        ).json()["access_token"]
        grants = {
            "client_credentials": [("grant_type", "client_credentials"), ("scope", SCOPE)],
            "token_exchange": [
                ("grant_type", EXCHANGE),
                ("subject_token", subject),
                ("subject_token_type", ACCESS),
                ("scope", SCOPE),
            ],
        }
        # Warm both paths, then estimate how many requests a round needs.
        for pairs in grants.values():
            warm = [[request(server.port, h.form(issuer, pairs)) for _ in range(20)] for h in helpers]
            result = run_load(server.port, warm, seconds=30)
            if result.errors:
                raise RuntimeError(f"warm-up failed {result.statuses}: {result.bodies[:1]!r}")
        per_client = min(
            MAX_REQUESTS_PER_PHASE // opts.clients, int(result.rate * opts.seconds * 2 / opts.clients) + 50
        )
        for _round in range(opts.rounds):
            for name, pairs in grants.items():
                batches = [
                    [request(server.port, h.form(issuer, pairs)) for _ in range(per_client)] for h in helpers
                ]
                result = run_load(server.port, batches, seconds=opts.seconds, server_cpu=server.cpu_seconds)
                if result.errors:
                    raise RuntimeError(f"{name}: non-200 responses {result.statuses}: {result.bodies[:1]!r}")
                if name not in best or result.rate > best[name].rate:
                    best[name] = result
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    report_grant_against_baseline(
        best,
        "client_credentials",
        "token_exchange",
        {"clients": opts.clients, "seconds_per_round": opts.seconds, "rounds": opts.rounds},
        opts.json,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
