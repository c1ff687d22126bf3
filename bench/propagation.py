"""Kill-switch propagation: kill an agent through one server, time until every other server denies it.

Several Tessera server processes share one database (PostgreSQL, and SQLite
with one file), as replicas or workers behind a load balancer. Each trial
registers nothing new: agents and their tokens are made before the clock
starts. A trial sends ``POST /admin/v1/kill`` to server A and then polls every
other server's introspection endpoint with the agent's token until it answers
``{"active": false}``. Two figures per server and trial: from A's ``201`` until
the denial (what the change feed costs), and from sending the kill until then
(what a caller waits in all). Between trials a random pause keeps trials out
of phase with SQLite's poll interval.

Targets (issue 7): p99 ≤ 250 ms on PostgreSQL, ≤ 1 s on SQLite (from A's 201).

    .venv/bin/python bench/propagation.py                    # both stores, 3 servers, 40 kills each
    .venv/bin/python bench/propagation.py --trials 100 --servers 2 --postgres postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import random
import secrets
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from harness import Server, describe_machine, other_load
from pdp import admin_client, scratch_postgres, tessera_env
from tessera.identity.admin_credentials import ADMIN_TOKEN_PREFIX, write_secret_file
from tessera.sdk.proofs import client_assertion, generate_private_jwk, load_private_jwk, public_jwk
from tessera.tokens.sealing import b64url_encode

TARGETS = {"postgres": 0.250, "sqlite": 1.0}
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass
class Sample:
    store: str
    server: int
    after_ack_s: float
    after_send_s: float


def start_servers(store: str, url: str, tmp: Path, count: int) -> list[Server]:
    """``count`` servers on one database, one issuer (the first's URL), shared secrets."""
    home = tmp / f"home-{store}"
    write_secret_file(home / "admin-token", ADMIN_TOKEN_PREFIX + secrets.token_urlsafe(32))
    master = b64url_encode(secrets.token_bytes(32))
    servers: list[Server] = []
    issuer = None
    for index in range(count):
        server = Server(
            app="tessera.server.app:create_app", env={}, log_path=tmp / f"{store}-{index}.log", factory=True
        )
        server.env = tessera_env(home, url, server.port)
        issuer = issuer or server.url
        server.env.update(TESSERA_ISSUER=issuer, TESSERA_MASTER_KEY=master)
        servers.append(server.start("/healthz"))
    return servers


def agent_with_token(admin: httpx.Client, issuer: str, index: int) -> tuple[str, str]:
    private = generate_private_jwk("ES256")
    created = admin.post(
        "/admin/v1/agents",
        json={
            "name": f"kill-{index}",
            "owner": "bench@example.com",
            "scopes": ["x"],
            "jwks": [public_jwk(private)],
        },
    )
    created.raise_for_status()
    agent_id = str(created.json()["id"])
    key, kid, alg = load_private_jwk(private)
    assertion = client_assertion(key, kid, alg, client_id=agent_id, audience=issuer)
    response = httpx.post(
        f"{issuer}/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        },
    )
    response.raise_for_status()
    return agent_id, str(response.json()["access_token"])


def denied(client: httpx.Client, token: str) -> bool:
    response = client.post("/oauth2/introspect", data={"token": token})
    response.raise_for_status()
    return not response.json()["active"]


def trials_on(
    store: str, url: str, tmp: Path, *, servers: int, trials: int, rng: random.Random
) -> list[Sample]:
    started = start_servers(store, url, tmp, servers)
    home = tmp / f"home-{store}"
    clients = [admin_client(s, home) for s in started]
    try:
        a = clients[0]
        pairs = [agent_with_token(a, started[0].url, i) for i in range(trials)]
        for other in clients[1:]:  # every server has seen every agent before the first kill
            deadline = time.monotonic() + 30
            while denied(other, pairs[-1][1]) and time.monotonic() < deadline:
                time.sleep(0.05)
        samples: list[Sample] = []
        for agent_id, token in pairs:
            time.sleep(rng.uniform(0.05, 0.4))
            sent = time.perf_counter()
            response = a.post("/admin/v1/kill", json={"agent": agent_id, "reason": "propagation benchmark"})
            acked = time.perf_counter()
            if response.status_code != 201:
                raise RuntimeError(f"kill failed: {response.status_code} {response.text[:200]}")
            pending = dict(enumerate(clients[1:], start=1))
            deadline = acked + 30
            while pending and time.perf_counter() < deadline:
                for index, client in list(pending.items()):
                    if denied(client, token):
                        now = time.perf_counter()
                        samples.append(Sample(store, index, now - acked, now - sent))
                        del pending[index]
            for index in pending:
                samples.append(Sample(store, index, float("inf"), float("inf")))
        return samples
    finally:
        for client in clients:
            client.close()
        for server in started:
            server.stop()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(samples: list[Sample], store: str, servers: int, load: float | None) -> bool:
    mine = [s for s in samples if s.store == store]
    ack = [s.after_ack_s * 1000 for s in mine]
    send = [s.after_send_s * 1000 for s in mine]
    target = TARGETS[store] * 1000
    p99 = percentile(ack, 0.99)
    ok = p99 <= target
    print(
        f"{store:<9} {servers:>7} {len(mine):>7} {statistics.median(ack):>8.1f} {p99:>8.1f} {max(ack):>8.1f} "
        f"{statistics.median(send):>9.1f} {percentile(send, 0.99):>8.1f} {'<=' + format(target, 'g'):>7}  "
        f"{'PASS' if ok else 'FAIL'}" + (f"   (other load {load:.2f} CPUs)" if load is not None else "")
    )
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=40, help="kills per store")
    parser.add_argument("--servers", type=int, default=3, help="server processes per store (>= 2)")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--stores", default="postgres,sqlite")
    opts = parser.parse_args(argv)
    if opts.servers < 2:
        parser.error("--servers must be at least 2")
    env = describe_machine(("sqlalchemy", "psycopg", "uvicorn"))
    for name, value in env.items():
        print(f"{name}: {value}")
    rng = random.Random(7)
    results: list[tuple[str, list[Sample], float | None]] = []
    loads: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="tessera-propagation-") as scratch:
        tmp = Path(scratch)
        for store in opts.stores.split(","):
            if store == "postgres":
                with scratch_postgres(opts.postgres) as url:
                    if url is None:
                        print("postgres: unreachable, skipped")
                        continue
                    with other_load(loads, store):
                        samples = trials_on(
                            store, url, tmp, servers=opts.servers, trials=opts.trials, rng=rng
                        )
            elif store == "sqlite":
                with other_load(loads, store):
                    samples = trials_on(
                        store,
                        f"sqlite:///{tmp / 'tessera.db'}",
                        tmp,
                        servers=opts.servers,
                        trials=opts.trials,
                        rng=rng,
                    )
            else:
                parser.error(f"unknown store '{store}'")
            results.append((store, samples, None))
    print()
    print("kill -> every other server denies the agent's token (introspection), milliseconds")
    print(
        f"{'store':<9} {'servers':>7} {'samples':>7} {'ack p50':>8} {'ack p99':>8} {'ack max':>8} "
        f"{'send p50':>9} {'send p99':>8} {'target':>7}  result"
    )
    ok = True
    for store, samples, _ in results:
        ok &= report(samples, store, opts.servers, loads.get(store))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
