"""Audit benchmarks (issue 4, section 8): every figure beside a baseline measured in the same run.

1. Appends through ``AuditWriter``: many submitter threads call ``record()`` at once
   (each blocks until its record is durable, as a request handler does) and the
   group-commit thread chains, hashes and writes them, with signed checkpoints every
   1,000 records. Beside it, a plain batched ``INSERT`` of the very rows the writer
   stored, in the same batch sizes it used, one transaction per batch, on an engine
   with the same settings (SQLite WAL with ``synchronous=FULL``, as the server runs;
   PostgreSQL in a scratch database created and dropped here). Target: >= 0.7x.
2. Verification: ``verify_store`` (what ``tessera audit verify`` runs) over a chain of
   100,000 records with a signed checkpoint every 1,000, in records per second of wall
   time and of CPU time; beside it, the floor of reading the same rows and hashing
   their stored bodies. Target: >= 100,000 records/s.

Run ``python bench/audit.py`` (``make bench``) or ``--quick`` for a short smoke run.
It exits 1 if anything is wrong (a record refused or missing, a chain that does not
verify), and with ``--strict`` also on a missed target. Everything is bounded in
records, talks only to 127.0.0.1, stops by itself and drops its scratch databases.
Results: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import secrets
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from joserfc.jwk import ECKey
from sqlalchemy import Engine, delete, insert, select, update

from harness import describe_machine, other_load
from tessera.audit.checkpoints import sign_checkpoint
from tessera.audit.records import GENESIS_HASH, Actor, ActorType, AuditEvent, AuditRecord
from tessera.audit.verify import KeyMap, keys_from_jwks, verify_store
from tessera.audit.writer import AuditWriter, CheckpointSigner
from tessera.clock import SystemClock
from tessera.ids import RandomIds
from tessera.storage.audit import SqlAuditStore
from tessera.storage.database import create_database_engine, migrate, reading, writing
from tessera.storage.tables import audit_checkpoints, audit_head, audit_records

REPO = Path(__file__).resolve().parent.parent
APPEND_TARGET = 0.7
VERIFY_TARGET = 100_000
ISSUER = "http://127.0.0.1:8400"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
CHECKPOINT_EVERY = 1000


# --- records -------------------------------------------------------------------------------------


def sample_events(count: int, seed: int = 3) -> list[AuditEvent]:
    """A mix like a busy server's: mostly decisions, some token issuance, a few admin changes."""
    rng = random.Random(seed)
    events = []
    for _ in range(count):
        agent = f"agt_{rng.randrange(2000):05d}{rng.getrandbits(32):08x}"
        ip = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        draw = rng.random()
        if draw < 0.8:
            allowed = rng.random() < 0.6
            event = AuditEvent(
                type="decision",
                actor=Actor(ActorType.AGENT, f"agt_pep{rng.randrange(8)}"),
                subject=agent,
                task_id=f"task-{rng.randrange(10_000)}",
                outcome="permit" if allowed else "deny",
                policies=(f"p{rng.randrange(1000):04d}",) if allowed or rng.random() < 0.5 else (),
                policy_version=f"{rng.getrandbits(64):016x}",
                decision_id=f"dec_{rng.getrandbits(96):024x}",
                ip=ip,
                zone="corporate",
                data={
                    "action": rng.choice(("read", "list", "write", "delete")),
                    "resource": f"Resource::res-{rng.randrange(10_000):05d}",
                    "errors": [],
                    "network_zone": "corporate",
                },
            )
        elif draw < 0.97:
            event = AuditEvent(
                type="token.issued",
                actor=Actor(ActorType.AGENT, agent),
                subject=agent,
                task_id=f"task-{rng.randrange(10_000)}",
                token_hash=f"{rng.getrandbits(256):064x}",
                delegation=(f"user:{rng.randrange(50)}@example.com",) if rng.random() < 0.3 else (),
                ip=ip,
                zone="corporate",
                data={"scopes": ["tickets:read"], "audience": ISSUER, "ttl": 300, "dpop": True},
            )
        else:
            event = AuditEvent(
                type="agent.updated",
                actor=Actor(ActorType.ADMIN, "admin"),
                subject=agent,
                ip="127.0.0.1",
                zone="local",
                reason="benchmark change",
                data={"fields": ["labels", "attributes"]},
            )
        events.append(event)
    return events


@dataclass
class Signer:
    key: ECKey
    kid: str

    @classmethod
    def generate(cls) -> Signer:
        key = ECKey.generate_key("P-256")
        return cls(key, key.thumbprint())

    def checkpoint_signer(self) -> CheckpointSigner:
        return CheckpointSigner(self.key, self.kid, "ES256")

    def keys(self) -> KeyMap:
        jwk = dict(self.key.as_dict(private=False))
        jwk.update(kid=self.kid, alg="ES256", use="sig")
        return keys_from_jwks({"keys": [jwk]})


def reset(engine: Engine) -> None:
    """An empty chain: no records, no checkpoints, the head back at the genesis."""
    with writing(engine) as conn:
        conn.execute(delete(audit_records))
        conn.execute(delete(audit_checkpoints))
        conn.execute(
            update(audit_head)
            .where(audit_head.c.id == 1)
            .values(seq=0, hash=GENESIS_HASH, anchor_seq=0, anchor_hash=GENESIS_HASH)
        )


# --- 1. appends ----------------------------------------------------------------------------------


class CountingWriter(AuditWriter):
    """The production writer, noting the size of each batch it commits."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batches: list[int] = []

    def _commit(self, batch: list[tuple[AuditEvent, Future[AuditRecord]]]) -> list[AuditRecord]:
        self.batches.append(len(batch))
        return super()._commit(batch)


@dataclass
class AppendRun:
    records: int
    seconds: float
    batches: list[int]

    @property
    def rate(self) -> float:
        return self.records / self.seconds


def writer_run(engine: Engine, events: list[AuditEvent], submitters: int, signer: Signer) -> AppendRun:
    reset(engine)
    writer = CountingWriter(
        engine,
        SystemClock(),
        RandomIds(),
        issuer=ISSUER,
        signer=signer.checkpoint_signer,
        checkpoint_every=CHECKPOINT_EVERY,
    )
    writer.start()
    failures: list[BaseException] = []
    start = threading.Barrier(submitters + 1)

    def submit(share: list[AuditEvent]) -> None:
        start.wait()
        try:
            for event in share:
                writer.record(event)
        except BaseException as exc:  # reported after the run
            failures.append(exc)

    threads = [
        threading.Thread(target=submit, args=(events[i::submitters],), daemon=True) for i in range(submitters)
    ]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join(timeout=600)
    elapsed = time.perf_counter() - began
    writer.stop()
    if failures or any(t.is_alive() for t in threads):
        raise RuntimeError(f"the writer failed: {failures[:1]!r}")
    with reading(engine) as conn:
        stored = SqlAuditStore().count(conn)
    if stored != len(events):
        raise RuntimeError(f"{len(events)} records submitted but {stored} stored")
    return AppendRun(len(events), elapsed, writer.batches)


def stored_rows(engine: Engine) -> list[dict[str, Any]]:
    with reading(engine) as conn:
        return [dict(r._mapping) for r in conn.execute(select(audit_records).order_by(audit_records.c.seq))]


def plain_run(engine: Engine, rows: list[dict[str, Any]], batches: list[int]) -> AppendRun:
    """The same rows as plain batched INSERTs, one transaction (one commit) per batch."""
    reset(engine)
    position = 0
    began = time.perf_counter()
    for size in batches:
        with engine.begin() as conn:
            conn.execute(insert(audit_records), rows[position : position + size])
        position += size
    elapsed = time.perf_counter() - began
    assert position == len(rows)
    return AppendRun(len(rows), elapsed, batches)


@dataclass
class AppendFigures:
    store: str
    writer: list[AppendRun] = field(default_factory=list)
    plain: list[AppendRun] = field(default_factory=list)

    @staticmethod
    def rate(runs: list[AppendRun]) -> float:
        return sum(r.records for r in runs) / sum(r.seconds for r in runs)


def append_phase(store: str, engine: Engine, opts: Options, signer: Signer) -> AppendFigures:
    figures = AppendFigures(store)
    events = sample_events(opts.records)
    writer_run(engine, events[: min(2000, len(events))], opts.submitters, signer)  # warm-up
    rows: list[dict[str, Any]] = []
    batches: list[int] = []
    for round_index in range(opts.rounds):
        # The order alternates (writer first, then plain first), so drifting machine load
        # hits both alike. The plain INSERTs replay the rows the writer stored last, in its
        # batch sizes; its checkpoint rows are the writer's own extra work.
        for what in ("writer", "plain") if round_index % 2 == 0 else ("plain", "writer"):
            if what == "writer":
                run = writer_run(engine, events, opts.submitters, signer)
                figures.writer.append(run)
                rows, batches = stored_rows(engine), run.batches
            else:
                figures.plain.append(plain_run(engine, rows, batches))
    return figures


# --- 2. verification -----------------------------------------------------------------------------


def build_chain(engine: Engine, count: int, signer: Signer) -> None:
    """``count`` records chained by the store, with a signed checkpoint after every 1,000."""
    reset(engine)
    store = SqlAuditStore()
    ids = RandomIds()
    events = sample_events(CHECKPOINT_EVERY, seed=5)
    now_ms = int(time.time() * 1000)
    for start in range(0, count, CHECKPOINT_EVERY):
        size = min(CHECKPOINT_EVERY, count - start)
        batch = [(events[i], ids.new("aud"), now_ms + start + i) for i in range(size)]
        with writing(engine) as conn:
            records = store.append(conn, batch)
            head = records[-1]
            checkpoint = sign_checkpoint(
                signer.key,
                signer.kid,
                "ES256",
                issuer=ISSUER,
                seq=head.seq,
                head_hash=head.hash,
                ts_ms=now_ms,
            )
            store.add_checkpoint(conn, checkpoint)


@dataclass
class VerifyFigures:
    store: str
    records: int
    wall: list[float] = field(default_factory=list)  # seconds per verify_store run
    cpu: list[float] = field(default_factory=list)
    floor_wall: list[float] = field(default_factory=list)  # read the rows, hash the stored bodies
    floor_cpu: list[float] = field(default_factory=list)

    @staticmethod
    def rate(records: int, seconds: list[float]) -> float:
        return records / min(seconds) if seconds else 0.0


def floor_pass(engine: Engine) -> int:
    """What no verifier can skip: read every row and hash its stored body."""
    count = 0
    position = 0
    while True:
        with reading(engine) as conn:
            rows = conn.execute(
                select(audit_records.c.seq, audit_records.c.body, audit_records.c.hash)
                .where(audit_records.c.seq > position)
                .order_by(audit_records.c.seq)
                .limit(5000)
            ).all()
        if not rows:
            return count
        for row in rows:
            if hashlib.sha256(row.body.encode("utf-8")).hexdigest() == row.hash:
                count += 1
        position = rows[-1].seq


def verify_phase(store: str, engine: Engine, opts: Options, signer: Signer) -> VerifyFigures:
    build_chain(engine, opts.verify_records, signer)
    keys = signer.keys()
    figures = VerifyFigures(store, opts.verify_records)
    for _ in range(opts.rounds):
        # Interleaved, so drifting machine load hits both alike.
        wall, cpu = time.perf_counter(), time.process_time()
        report = verify_store(engine, keys, ISSUER)
        figures.wall.append(time.perf_counter() - wall)
        figures.cpu.append(time.process_time() - cpu)
        if not report.ok or report.records != opts.verify_records:
            raise RuntimeError(f"verification failed: {report.problem} ({report.records} records)")
        if report.checkpoints_verified != opts.verify_records // CHECKPOINT_EVERY:
            raise RuntimeError(f"only {report.checkpoints_verified} checkpoints were verified")
        wall, cpu = time.perf_counter(), time.process_time()
        hashed = floor_pass(engine)
        figures.floor_wall.append(time.perf_counter() - wall)
        figures.floor_cpu.append(time.process_time() - cpu)
        if hashed != opts.verify_records:
            raise RuntimeError(f"stored bodies do not hash to their hash column ({hashed})")
    return figures


# --- stores --------------------------------------------------------------------------------------


@contextlib.contextmanager
def sqlite_engine(tmp: Path) -> Iterator[Engine]:
    engine = create_database_engine(f"sqlite:///{tmp / 'audit.db'}")  # WAL, synchronous=FULL
    migrate(engine)
    try:
        yield engine
    finally:
        engine.dispose()


@contextlib.contextmanager
def postgres_engine(base: str) -> Iterator[Engine | None]:
    """An engine on a fresh scratch database (dropped afterwards), or None if unreachable."""
    import psycopg
    from sqlalchemy.engine import make_url

    try:
        admin = psycopg.connect(base, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        yield None
        return
    name = f"tessera_bench_{secrets.token_hex(6)}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    engine: Engine | None = None
    try:
        url = make_url(base).set(drivername="postgresql+psycopg", database=name)
        engine = create_database_engine(url.render_as_string(hide_password=False))
        migrate(engine)
        yield engine
    finally:
        if engine is not None:
            engine.dispose()
        with psycopg.connect(base, autocommit=True, connect_timeout=10) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- report --------------------------------------------------------------------------------------


@dataclass
class Options:
    quick: bool
    records: int
    submitters: int
    rounds: int
    verify_records: int
    postgres: str | None
    json: Path | None
    strict: bool = False


@dataclass
class Results:
    env: dict[str, str] = field(default_factory=dict)
    appends: list[AppendFigures] = field(default_factory=list)
    verifies: list[VerifyFigures] = field(default_factory=list)
    postgres: str = "not tried"
    other_load: dict[str, float] = field(default_factory=dict)
    load_average: tuple[float, float] = (0.0, 0.0)


def environment() -> dict[str, str]:
    return describe_machine(("sqlalchemy", "psycopg", "joserfc"))


def report(results: Results, opts: Options) -> bool:
    env = results.env
    print()
    print("Tessera audit benchmarks")
    for key in ("machine", "python", "packages", "commit", "command"):
        print(f"  {key + ':':11} {env[key]}")
    print()
    ok = True
    print(
        f"Appends: {opts.records:,} records per run, {opts.submitters} submitter threads, "
        f"{opts.rounds} rounds (records/s)"
    )
    header = (
        f"{'store':>10} {'writer':>8} {'plain INSERT':>12} {'ratio':>6} {'target':>7}  result  "
        f"{'mean batch':>10} {'commits':>8}  per round (writer / plain)"
    )
    print(header)
    print("-" * len(header))
    for a in results.appends:
        ratio = AppendFigures.rate(a.writer) / AppendFigures.rate(a.plain)
        passed = ratio >= APPEND_TARGET
        ok &= passed
        batches = [size for run in a.writer for size in run.batches]
        rounds = ", ".join(f"{w.rate:.0f}/{p.rate:.0f}" for w, p in zip(a.writer, a.plain, strict=True))
        target = ">=" + format(APPEND_TARGET, ".1f") + "x"
        print(
            f"{a.store:>10} {AppendFigures.rate(a.writer):8.0f} {AppendFigures.rate(a.plain):12.0f} "
            f"{ratio:5.2f}x {target:>7}  {'PASS' if passed else 'FAIL':6}  "
            f"{sum(batches) / len(batches):10.1f} {len(batches) // len(a.writer):8d}  {rounds}"
        )
    print()
    print(
        f"Verification: verify_store over {opts.verify_records:,} records, a signed checkpoint every "
        f"{CHECKPOINT_EVERY:,} (records/s, best of {opts.rounds})"
    )
    header = (
        f"{'store':>10} {'wall':>9} {'CPU':>9} {'target':>9}  result  "
        f"{'floor wall':>10} {'floor CPU':>10} {'CPU / floor':>11}"
    )
    print(header)
    print("-" * len(header))
    for v in results.verifies:
        wall, cpu = VerifyFigures.rate(v.records, v.wall), VerifyFigures.rate(v.records, v.cpu)
        floor_wall, floor_cpu = (
            VerifyFigures.rate(v.records, v.floor_wall),
            VerifyFigures.rate(v.records, v.floor_cpu),
        )
        passed = wall >= VERIFY_TARGET
        ok &= passed
        print(
            f"{v.store:>10} {wall:9.0f} {cpu:9.0f} {'>=' + format(VERIFY_TARGET, ',d'):>9}  "
            f"{'PASS' if passed else 'FAIL':6}  {floor_wall:10.0f} {floor_cpu:10.0f} {cpu / floor_cpu:10.2f}x"
        )
    print(f"  PostgreSQL: {results.postgres}")
    print()
    phases = ", ".join(f"{phase} {share:.2f}" for phase, share in results.other_load.items())
    print(
        f"other processes on this machine, in CPUs busy: {phases}; "
        f"1-min load average {results.load_average[0]:.1f} before, {results.load_average[1]:.1f} after"
    )
    if max(results.other_load.values(), default=0.0) > 0.1:
        print("warning: other processes competed for the CPUs; these figures are noisier than usual")
    print(f"overall: {'PASS' if ok else 'FAIL'}")
    return ok


def to_json(results: Results) -> dict[str, Any]:
    return {
        "environment": results.env,
        "appends": [
            {
                "store": a.store,
                "writer_rate": AppendFigures.rate(a.writer),
                "plain_rate": AppendFigures.rate(a.plain),
                "rounds": [
                    {"writer": w.rate, "plain": p.rate} for w, p in zip(a.writer, a.plain, strict=True)
                ],
                "mean_batch": sum(sum(r.batches) for r in a.writer) / sum(len(r.batches) for r in a.writer),
            }
            for a in results.appends
        ],
        "verification": [
            {
                "store": v.store,
                "records": v.records,
                "wall_rate": VerifyFigures.rate(v.records, v.wall),
                "cpu_rate": VerifyFigures.rate(v.records, v.cpu),
                "floor_wall_rate": VerifyFigures.rate(v.records, v.floor_wall),
                "floor_cpu_rate": VerifyFigures.rate(v.records, v.floor_cpu),
            }
            for v in results.verifies
        ],
        "postgres": results.postgres,
        "other_load_cpus": results.other_load,
        "load_average": results.load_average,
    }


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short smoke run (well under a minute)")
    parser.add_argument("--records", type=int, default=None, help="records appended per run (20000)")
    parser.add_argument("--submitters", type=int, default=32, help="concurrent submitter threads (32)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of each measurement (3)")
    parser.add_argument(
        "--verify-records", type=int, default=None, help="records in the verified chain (100000)"
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get("TESSERA_BENCH_POSTGRES", DEFAULT_PG),
        help="PostgreSQL server for a scratch database (created and dropped); 'none' to skip",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when a target is missed (always: on a wrong result)"
    )
    args = parser.parse_args(argv)
    quick = bool(args.quick)
    opts = Options(
        quick=quick,
        records=args.records or (3000 if quick else 20_000),
        submitters=args.submitters,
        rounds=args.rounds or (1 if quick else 3),
        verify_records=args.verify_records or (10_000 if quick else 100_000),
        postgres=None if args.postgres.lower() == "none" else args.postgres,
        json=args.json,
        strict=args.strict,
    )
    if not 100 <= opts.records <= 1_000_000 or not 1 <= opts.submitters <= 256:
        parser.error("--records 100-1000000, --submitters 1-256")
    if not 1_000 <= opts.verify_records <= 5_000_000 or not 1 <= opts.rounds <= 20:
        parser.error("--verify-records 1000-5000000, --rounds 1-20")
    return opts


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="tessera-bench-audit-"))
    results = Results(env=environment())
    results.env["command"] = " ".join(
        ["python", "bench/audit.py", *(argv if argv is not None else sys.argv[1:])]
    )
    signer = Signer.generate()
    load_before = os.getloadavg()[0]
    try:
        with sqlite_engine(tmp) as engine:
            print(f"bench: appends on SQLite ({opts.records:,} records x {opts.rounds})…", flush=True)
            with other_load(results.other_load, "appends sqlite"):
                results.appends.append(append_phase("sqlite", engine, opts, signer))
            print(f"bench: verification on SQLite ({opts.verify_records:,} records)…", flush=True)
            with other_load(results.other_load, "verify sqlite"):
                results.verifies.append(verify_phase("sqlite", engine, opts, signer))
        if opts.postgres is None:
            results.postgres = "skipped (--postgres none)"
        else:
            with postgres_engine(opts.postgres) as engine:
                if engine is None:
                    results.postgres = f"unreachable at {opts.postgres.split('@')[-1]}; not measured"
                else:
                    print("bench: appends and verification on PostgreSQL…", flush=True)
                    with other_load(results.other_load, "appends postgresql"):
                        results.appends.append(append_phase("postgresql", engine, opts, signer))
                    with other_load(results.other_load, "verify postgresql"):
                        results.verifies.append(verify_phase("postgresql", engine, opts, signer))
                    results.postgres = "scratch database on 127.0.0.1:5432, dropped afterwards"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results.load_average = (load_before, os.getloadavg()[0])
    targets_met = report(results, opts)
    if opts.json is not None:
        opts.json.write_text(json.dumps(to_json(results), indent=2) + "\n")
    # Wrong results (a refused or lost record, a chain that fails) raised before this point.
    return 0 if targets_met or not opts.strict else 1


if __name__ == "__main__":
    sys.exit(main())
