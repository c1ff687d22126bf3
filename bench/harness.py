"""Benchmark plumbing: a uvicorn server subprocess, a light HTTP/1.1 load client, and statistics.

The load client keeps one keep-alive connection per simulated client on one
asyncio loop and sends requests that were serialised to bytes before the clock
starts, so that as little client CPU as possible competes with the server (both
share the machine). Everything talks to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parent.parent
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def process_cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time of a process and all its threads (Linux ``/proc``)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def machine_busy_seconds() -> float | None:
    """CPU seconds spent busy on all CPUs since boot (Linux ``/proc/stat``), to spot other load."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return None
    values = [int(v) for v in first[1:9]]  # user nice system idle iowait irq softirq steal
    return (sum(values) - values[3] - values[4]) / _CLOCK_TICKS


def set_affinity(pid: int, cpus: set[int] | None) -> None:
    if cpus is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(pid, cpus)


@dataclass
class Server:
    """``uvicorn APP`` with one worker on 127.0.0.1, in its own process."""

    app: str
    env: dict[str, str]
    log_path: Path
    factory: bool = False
    app_dir: str | None = None
    cpus: set[int] | None = None
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, health_path: str, timeout: float = 60.0) -> Server:
        command = [sys.executable, "-m", "uvicorn", self.app, "--host", HOST, "--port", str(self.port)]
        command += ["--workers", "1", "--log-level", "warning", "--no-access-log"]
        if self.factory:
            command.append("--factory")
        if self.app_dir:
            command += ["--app-dir", self.app_dir]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        set_affinity(self.process.pid, self.cpus)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.app} exited early; see {self.log_path}")
            try:
                if httpx.get(f"{self.url}{health_path}", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.app} did not become healthy in {timeout:.0f}s; see {self.log_path}")

    def cpu_seconds(self) -> float | None:
        return process_cpu_seconds(self.process.pid) if self.process else None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def http_request(method: str, path: str, port: int, headers: dict[str, str], body: bytes) -> bytes:
    """One HTTP/1.1 request serialised to bytes, ready to write to a keep-alive connection."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass
class LoadResult:
    sent: int
    statuses: dict[int, int]
    latencies: list[float]
    elapsed: float
    bodies: list[bytes]
    server_cpu: float | None
    client_cpu: float
    other_cpu: float | None = None

    @property
    def other_share(self) -> float | None:
        """CPUs' worth of work done by processes other than the server and this client."""
        return self.other_cpu / self.elapsed if self.other_cpu is not None and self.elapsed else None

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def errors(self) -> int:
        return self.sent - self.ok

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def per_server_cpu(self) -> float:
        """Successful requests per second of the server's CPU time (all its threads)."""
        return self.ok / self.server_cpu if self.server_cpu else float("nan")

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length: int | None = None
    close = False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection" and value.strip().lower() == "close":
            close = True
        elif name == "transfer-encoding":
            raise RuntimeError("chunked responses are not expected from these endpoints")
    body = await reader.readexactly(length) if length else b""
    return status, body, close


@dataclass
class _Window:
    start: asyncio.Event = field(default_factory=asyncio.Event)
    deadline: float = float("inf")


async def _connection(
    port: int, requests: Iterable[bytes], window: _Window, result: LoadResult, keep_bodies: bool
) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    await window.start.wait()
    try:
        for request in requests:
            began = time.perf_counter()
            if began >= window.deadline:
                break
            writer.write(request)
            status, body, close = await _read_response(reader)
            result.latencies.append(time.perf_counter() - began)
            result.sent += 1
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if keep_bodies or status != 200:
                result.bodies.append(body)
            if close:
                writer.close()
                reader, writer = await asyncio.open_connection(HOST, port)
    finally:
        writer.close()


def run_load(
    port: int,
    per_connection: Sequence[Iterable[bytes]],
    *,
    seconds: float,
    keep_bodies: bool = False,
    server_cpu: Callable[[], float | None] = lambda: None,
) -> LoadResult:
    """Send each connection's requests in turn, until they run out or ``seconds`` pass."""

    async def main() -> LoadResult:
        result = LoadResult(0, {}, [], 0.0, [], None, 0.0)
        window = _Window()
        tasks = [
            asyncio.create_task(_connection(port, reqs, window, result, keep_bodies))
            for reqs in per_connection
        ]
        await asyncio.sleep(0.2)  # let every connection open before the clock starts
        cpu_before, client_before, busy_before = server_cpu(), time.process_time(), machine_busy_seconds()
        began = time.perf_counter()
        window.deadline = began + seconds
        window.start.set()
        await asyncio.gather(*tasks)
        result.elapsed = time.perf_counter() - began
        cpu_after, busy_after = server_cpu(), machine_busy_seconds()
        result.client_cpu = time.process_time() - client_before
        if cpu_before is not None and cpu_after is not None:
            result.server_cpu = cpu_after - cpu_before
            if busy_before is not None and busy_after is not None:
                other = busy_after - busy_before - result.server_cpu - result.client_cpu
                result.other_cpu = max(0.0, other)
        return result

    try:
        import uvloop
    except ImportError:
        return asyncio.run(main())
    return uvloop.run(main())


# --- what every benchmark reports about where it ran -----------------------------------------


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def describe_machine(packages: Sequence[str]) -> dict[str, str]:
    """Machine, Python, the named packages' versions and the commit (noting uncommitted src/)."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    commit = "?"
    with contextlib.suppress(OSError):
        git = ["git", "-C", str(REPO)]
        commit = (
            subprocess.run(
                [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
            ).stdout.strip()
            or "?"
        )
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--", "src"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if dirty:
            commit += " (plus uncommitted changes under src/)"
    return {
        "machine": f"{cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": ", ".join(f"{name} {package_version(name)}" for name in packages),
        "commit": commit,
    }


@contextlib.contextmanager
def other_load(into: dict[str, float], phase: str) -> Iterator[list[float]]:
    """Record in ``into[phase]`` how many CPUs' worth of work other processes did meanwhile.

    The caller may append the CPU seconds of servers it ran itself, which are not "other".
    """
    busy, own, began = machine_busy_seconds(), time.process_time(), time.perf_counter()
    ours: list[float] = []
    yield ours
    after = machine_busy_seconds()
    if busy is not None and after is not None:
        other = after - busy - (time.process_time() - own) - sum(ours)
        into[phase] = max(0.0, other) / (time.perf_counter() - began)


Message = MutableMapping[str, Any]


async def answer_lifespan(
    receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
) -> None:
    """Answer uvicorn's ASGI lifespan startup and shutdown (for the bare baseline apps)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def token_summary(result: LoadResult) -> dict[str, float]:
    """One grant's figures, as the token benchmarks report them."""
    return {
        "tokens_per_s": round(result.rate, 1),
        "tokens_per_server_cpu_s": round(result.per_server_cpu, 1),
        "p50_ms": round(result.percentile(0.5) * 1000, 2),
        "p99_ms": round(result.percentile(0.99) * 1000, 2),
        "ok": result.ok,
        "errors": result.errors,
    }


def report_grant_against_baseline(
    best: dict[str, LoadResult], baseline: str, grant: str, run: dict[str, Any], json_path: Path | None
) -> dict[str, Any]:
    """Print ``grant`` beside ``baseline`` (measured in the same run) and write the JSON report."""
    report: dict[str, Any] = {
        **describe_machine(["joserfc", "cryptography", "sqlalchemy", "uvicorn"]),
        **run,
        baseline: token_summary(best[baseline]),
        grant: token_summary(best[grant]),
    }
    ratio = f"ratio_{grant}_to_{baseline}"
    report[ratio] = round(best[grant].rate / best[baseline].rate, 3)
    for name in (baseline, grant):
        figures = report[name]
        print(
            f"{name:<20} {figures['tokens_per_s']:>8.1f} tokens/s  "
            f"{figures['tokens_per_server_cpu_s']:>8.1f} per server CPU-s  "
            f"p50 {figures['p50_ms']:.2f} ms  p99 {figures['p99_ms']:.2f} ms"
        )
    print(f"{grant} / {baseline}: {report[ratio]:.2f}x")
    print(f"{report['machine']}; {report['python']}; commit {report['commit']}")
    if json_path is not None:
        json_path.write_text(json.dumps(report, indent=2) + "\n")
    return report
