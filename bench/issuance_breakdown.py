"""Where a token's CPU goes: the issuance core in-process, by stage, without HTTP.

    python bench/issuance_breakdown.py [--tokens N] [--threads 8]

This is a diagnostic to go with ``bench/tokens.py``, not a benchmark with a
baseline. It builds a ``Runtime`` on a temporary SQLite home (synchronous=FULL,
background threads running), registers agents, and drives
``TokenEndpoint.handle`` from ``--threads`` threads with requests signed in
advance, exactly as the server's thread pool would. It wraps the main stages to
measure CPU time (the thread's own) and wall time per token. The stages it
wraps are internal names, so it may need updating when they move.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import tessera.tokens.endpoint as endpoint_module
import tessera.tokens.issuer as issuer_module
from tessera.config import Settings
from tessera.identity.service import NewAgent
from tessera.runtime import Runtime
from tessera.sdk.proofs import client_assertion, dpop_proof, generate_private_jwk, load_private_jwk
from tessera.tokens.requests import build_token_request

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class Stages:
    def __init__(self) -> None:
        self.cpu: dict[str, float] = {}
        self.wall: dict[str, float] = {}
        self._lock = threading.Lock()

    def wrap(self, owner: Any, name: str, label: str) -> None:
        original: Callable[..., Any] | None = getattr(owner, name, None)
        if original is None:
            print(f"(stage '{label}' not found: {name})")
            return
        inner: Callable[..., Any] = original

        def timed(*args: Any, **kwargs: Any) -> Any:
            cpu, wall = time.thread_time(), time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                with self._lock:
                    self.cpu[label] = self.cpu.get(label, 0.0) + time.thread_time() - cpu
                    self.wall[label] = self.wall.get(label, 0.0) + time.perf_counter() - wall

        setattr(owner, name, timed)

    def reset(self) -> None:
        self.cpu.clear()
        self.wall.clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--cpu", type=int, default=0, help="the one CPU to run on, as the server worker does")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {args.cpu})
    home = Path(tempfile.mkdtemp(prefix="tessera-breakdown-"))
    runtime = Runtime(Settings(home=home, port=8400))
    runtime.start()
    try:
        run(runtime, args.tokens, args.threads)
    finally:
        runtime.stop()


def run(runtime: Runtime, total: int, threads: int) -> None:
    agents = []
    for index in range(threads):
        private = generate_private_jwk("ES256")
        public = {k: v for k, v in private.items() if k != "d"}
        agent = runtime.agents.create(
            NewAgent(
                name=f"breakdown-{index}",
                owner="bench@example.com",
                scopes=("tickets:read",),
                jwks=(public,),
                require_dpop=True,
            )
        )
        agents.append((agent.id, *load_private_jwk(private)))
    url = runtime.settings.token_endpoint
    details = json.dumps([{"type": "agent_task", "task_id": "T-1", "purpose": "benchmark"}])

    def signed(count: int) -> list[tuple[str, str]]:
        requests = []
        for index in range(count):
            agent_id, key, kid, alg = agents[index % len(agents)]
            assertion = client_assertion(key, kid, alg, client_id=agent_id, audience=runtime.issuer)
            body = urlencode(
                [
                    ("grant_type", "client_credentials"),
                    ("scope", "tickets:read"),
                    ("authorization_details", details),
                    ("client_assertion_type", ASSERTION_TYPE),
                    ("client_assertion", assertion),
                ]
            )
            requests.append((body, dpop_proof(key, alg, method="POST", url=url)))
        return requests

    def handle(item: tuple[str, str]) -> None:
        body, proof = item
        pairs = parse_qsl(body, strict_parsing=True, max_num_fields=64)
        request = build_token_request(
            pairs, method="POST", url=url, authorization=None, dpop_headers=[proof], client_ip="127.0.0.1"
        )
        runtime.token_endpoint.handle(request)

    stages = Stages()
    stages.wrap(runtime.token_endpoint, "handle", "token endpoint, in all")
    stages.wrap(runtime.authenticator, "authenticate", "  client authentication")
    stages.wrap(runtime.authenticator, "_lookup", "    agent lookup (database read)")
    stages.wrap(endpoint_module, "verify_dpop_proof", "  DPoP proof")
    grant = runtime.token_endpoint._grants[0]  # a diagnostic reaches inside
    policy = getattr(grant, "_policy", None)
    if policy is not None:
        stages.wrap(policy, "check", "  issuance policy")
    stages.wrap(runtime.issuer_service, "issue", "  issue (sign + group-committed write)")
    stages.wrap(issuer_module, "mint_access_token", "    sign the token")
    stages.wrap(runtime.auditor, "record", "  audit record (durable)")

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(handle, signed(threads * 20)))  # warm up
        requests = signed(total)
        stages.reset()
        cpu, began = time.process_time(), time.perf_counter()
        list(pool.map(handle, requests))
        elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu

    print(f"{total} tokens from {threads} threads: {total / elapsed:.0f}/s on one core")
    print(f"process CPU per token: {cpu / total * 1e6:.0f} us (all threads: workers, audit writer, follower)")
    print(f"{'stage':44} {'CPU us':>8} {'wall us':>8}")
    for label, seconds in stages.cpu.items():
        print(f"{label:44} {seconds / total * 1e6:8.0f} {stages.wall[label] / total * 1e6:8.0f}")
    outside = cpu - stages.cpu.get("token endpoint, in all", 0.0)
    print(f"{'other threads (audit writer, feed, pool)':44} {outside / total * 1e6:8.0f}")


if __name__ == "__main__":
    main()
