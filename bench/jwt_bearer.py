"""The RFC 7523 jwt-bearer grant (federation) beside client-credentials issuance, in the same run.

One uvicorn worker (SQLite in a temporary TESSERA_HOME), ``--clients`` concurrent
keep-alive clients over 127.0.0.1, bearer tokens for the same scope:

- ``client_credentials``: registered agents authenticating with ``private_key_jwt``;
- ``jwt_bearer``: workloads of a trusted issuer (served by this script on loopback,
  registered with ``allow_private_network``) present their ES256 JWT, each with a
  fresh ``jti``, and get a token for their ephemeral federated identity. No client
  authentication. The JWKS is fetched once, in the warm-up.

The phases alternate for ``--rounds`` rounds; each phase's figure is its best round.
Every request is signed before the clock starts. Reported: tokens per elapsed second,
per second of server CPU, p50/p99 latency, and the jwt-bearer/client-credentials ratio.

Run ``python bench/jwt_bearer.py`` (about 45 s). It exits 1 on any non-200 response.
It talks only to 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey

from harness import LoadResult, Server, http_request, report_grant_against_baseline, run_load
from tessera.sdk.proofs import client_assertion, generate_private_jwk, load_private_jwk

SCOPE = "reports:read"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
MAX_REQUESTS_PER_PHASE = 20_000


class WorkloadIssuer:
    """An external issuer on loopback: one ES256 key, its JWKS, and tokens for its workloads."""

    def __init__(self) -> None:
        self.key = ECKey.generate_key("P-256", parameters={"kid": "bench-1"})
        public = dict(self.key.as_dict(private=False))
        public.update(kid="bench-1", alg="ES256", use="sig")
        body = json.dumps({"keys": [public]}).encode()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def token(self, subject: str, audience: str) -> str:
        now = int(time.time())
        claims = {
            "iss": self.url,
            "sub": subject,
            "aud": audience,
            "iat": now,
            "exp": now + 300,
            "jti": secrets.token_urlsafe(12),
            "kubernetes.io": {"namespace": "payments"},
        }
        return jwt.encode({"alg": "ES256", "kid": "bench-1"}, claims, self.key)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def request(port: int, form: list[tuple[str, str]]) -> bytes:
    body = urlencode(form).encode()
    return http_request(
        "POST", "/oauth2/token", port, {"Content-Type": "application/x-www-form-urlencoded"}, body
    )


def client_credentials_form(agent_id: str, private_jwk: dict[str, Any], issuer: str) -> list[tuple[str, str]]:
    key, kid, alg = load_private_jwk(private_jwk)
    assertion = client_assertion(key, kid, alg, client_id=agent_id, audience=issuer, lifetime=120)
    return [
        ("grant_type", "client_credentials"),
        ("scope", SCOPE),
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", assertion),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each phase round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    opts = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="tessera-bench-jwt-bearer-"))
    server = Server(app="tessera.server.app:create_app", env={}, log_path=tmp / "tessera.log", factory=True)
    server.env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    server.env.update(TESSERA_HOME=str(tmp / "home"), TESSERA_HOST="127.0.0.1", TESSERA_PORT=str(server.port))
    workload_issuer = WorkloadIssuer()
    server.start("/healthz")
    best: dict[str, LoadResult] = {}
    try:
        issuer = server.url
        admin_token = (tmp / "home" / "admin-token").read_text().strip()
        agents: list[tuple[str, dict[str, Any]]] = []
        with httpx.Client(base_url=issuer, headers={"Authorization": f"Bearer {admin_token}"}) as admin:
            for i in range(opts.clients):
                private = generate_private_jwk("ES256")
                public = {k: v for k, v in private.items() if k != "d"}
                body = {
                    "name": f"agent-{i}",
                    "owner": "bench@example.com",
                    "scopes": [SCOPE],
                    "jwks": [public],
                }
                response = admin.post("/admin/v1/agents", json=body)
                response.raise_for_status()
                agents.append((response.json()["id"], private))
            admin.post(
                "/admin/v1/issuers",
                json={
                    "issuer": workload_issuer.url,
                    "jwks_url": f"{workload_issuer.url}/jwks",
                    "allow_private_network": True,
                    "audiences": [issuer],
                    "attributes": {"namespace": "claims['kubernetes.io'].namespace"},
                    "subject": {"type": "ephemeral", "owner": "bench@example.com", "scopes": [SCOPE]},
                    "region": "eu",
                },
            ).raise_for_status()

        def forms(name: str, count: int) -> list[list[bytes]]:
            if name == "client_credentials":
                return [
                    [request(server.port, client_credentials_form(a, k, issuer)) for _ in range(count)]
                    for a, k in agents
                ]
            return [
                [
                    request(
                        server.port,
                        [
                            ("grant_type", JWT_BEARER),
                            ("assertion", workload_issuer.token(f"workload-{i}", issuer)),
                        ],
                    )
                    for _ in range(count)
                ]
                for i in range(opts.clients)
            ]

        names = ("client_credentials", "jwt_bearer")
        for name in names:  # warm both paths (and fetch the JWKS, create the identities)
            result = run_load(server.port, forms(name, 20), seconds=30)
            if result.errors:
                raise RuntimeError(f"warm-up failed {result.statuses}: {result.bodies[:1]!r}")
        per_client = min(
            MAX_REQUESTS_PER_PHASE // opts.clients, int(result.rate * opts.seconds * 2 / opts.clients) + 50
        )
        for _round in range(opts.rounds):
            for name in names:
                batches = forms(name, per_client)
                result = run_load(server.port, batches, seconds=opts.seconds, server_cpu=server.cpu_seconds)
                if result.errors:
                    raise RuntimeError(f"{name}: non-200 responses {result.statuses}: {result.bodies[:1]!r}")
                if name not in best or result.rate > best[name].rate:
                    best[name] = result
    finally:
        server.stop()
        workload_issuer.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    report_grant_against_baseline(
        best,
        "client_credentials",
        "jwt_bearer",
        {"clients": opts.clients, "seconds_per_round": opts.seconds, "rounds": opts.rounds},
        opts.json,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
