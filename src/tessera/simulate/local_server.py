"""A Tessera server for one simulation: in this process, on loopback, with a clock the simulator moves.

The server is the real one (``create_app``, uvicorn, SQLite in a temporary data
directory, under ``/dev/shm`` where there is one); only its clock is a
:class:`ManualClock`, so days of traffic replay in minutes. The simulator and
the server's threads hand the interpreter to each other on every request, so
the run shortens Python's thread switch interval while the server is up.
Between requests the simulator calls :meth:`LocalServer.settle`,
which waits until the detector has taken in every audit record so far and the
change feed has reached this worker — what a real-time server does in the
seconds between an agent's requests.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from tessera.audit.records import AuditRecord
from tessera.clock import ManualClock
from tessera.config import Settings
from tessera.events.change_feed import latest_seq
from tessera.runtime import Runtime
from tessera.server.app import create_app
from tessera.simulate.model import NETWORK_ZONES

SWITCH_INTERVAL = 0.0005  # seconds; Python's default 0.005 makes every hand-off between threads slow
SETTLE_LIMIT = 5.0
#: Audit record types that never come with a change-feed entry: after only these,
#: ``settle`` need not ask the database how far the feed has got.
UNCHANGING = frozenset(
    {"decision", "admin.read", "token.issued", "token.denied"}
)  # seconds of real time; a detector that lags longer is reported, not waited for


def memory_directory() -> str | None:
    """``/dev/shm`` where there is one: a throwaway run's database need not wait on a disk's fsync."""
    shm = Path("/dev/shm")  # noqa: S108 - a private TemporaryDirectory (mode 0700) is made inside it
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LocalServer:
    def __init__(
        self, start_epoch: float, *, home: Path | None = None, settings: dict[str, Any] | None = None
    ):
        self._tmp = (
            tempfile.TemporaryDirectory(prefix="tessera-simulate-", dir=memory_directory())
            if home is None
            else None
        )
        self.home = home or Path(self._tmp.name if self._tmp else ".")
        self.port = free_port()
        self.clock = ManualClock(start_epoch)
        zones = {**NETWORK_ZONES, "127.0.0.0/8": "local"}
        defaults: dict[str, Any] = {
            # Housekeeping timed on the (simulated) clock would otherwise run on almost every
            # request once minutes pass between them: audit checkpoints and risk-profile
            # snapshots every simulated hour instead (both exist for restarts and replicas).
            "audit_checkpoint_interval": 3600.0,
            "risk_snapshot_interval": 3600.0,
            "change_poll_interval": 0.05,
        }
        self.settings = Settings(
            home=self.home,
            database_url=f"sqlite:///{(self.home / 'tessera.db').resolve()}",
            host="127.0.0.1",
            port=self.port,
            # This server's own, whatever the environment says (other TESSERA_* apply, for tuning).
            issuer=f"http://127.0.0.1:{self.port}",
            admin_token=None,
            policy_bundle=None,
            network_zones=zones,
            **{**defaults, **(settings or {})},
        )
        self.runtime = Runtime(self.settings, clock=self.clock)
        # Every durable audit record is offered to the detector's event stream; count them
        # too, so that ``settle`` knows when the stream has handled all there were.
        self._offered = 0
        self._offered_lock = threading.Lock()
        self._changed = False  # a record that may come with a change-feed entry was seen
        self.runtime.auditor.subscribe(self._count)
        self.admin_token = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.lagged = 0
        self._switch_interval = sys.getswitchinterval()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LocalServer:
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL)
        created = self.runtime.start()
        self.admin_token = created or self.settings.admin_token_path.read_text().strip()
        app = create_app(runtime=self.runtime)
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="tessera-simulate-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the simulation's server did not start")
            time.sleep(0.01)
        return self

    def now(self) -> float:
        return self.clock.now()

    def advance_to(self, epoch: float) -> None:
        if epoch > self.clock.now():
            self.clock.set(epoch)

    def settle(self) -> None:
        """Wait until the detector and the change feed have caught up with what the server did."""
        deadline = time.monotonic() + SETTLE_LIMIT
        while not self._caught_up():
            if time.monotonic() > deadline:
                self.lagged += 1
                return
            time.sleep(0.001)

    def _count(self, records: list[AuditRecord]) -> None:
        with self._offered_lock:
            self._offered += len(records)
            if any(r.type not in UNCHANGING for r in records):
                self._changed = True

    def _caught_up(self) -> bool:
        events = self.runtime.events
        if events.running and events.delivered + events.dropped < self._offered:
            return False
        if not self._changed:
            return True
        follower = self.runtime.follower
        if follower is None or follower.position >= latest_seq(self.runtime.engine):
            self._changed = False
            return True
        return False

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        else:
            self.runtime.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
        sys.setswitchinterval(self._switch_interval)
