"""Helpers for tests that run real server processes on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    """A Tessera server in its own process (uvicorn on 127.0.0.1), for integration tests."""

    home: Path
    database_url: str
    port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    #: the ASGI application factory uvicorn serves (another app, e.g. a resource server, for SDK tests)
    app: str = "tessera.server.app:create_app"
    health_path: str = "/healthz"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_token(self) -> str:
        return (self.home / "admin-token").read_text().strip()

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
        env.update(
            TESSERA_HOME=str(self.home),
            TESSERA_DATABASE_URL=self.database_url,
            TESSERA_HOST="127.0.0.1",
            TESSERA_PORT=str(self.port),
            TESSERA_CHANGE_POLL_INTERVAL="0.05",
        )
        env.update(self.env)
        return env

    def start(self, timeout: float = 30.0) -> ServerProcess:
        return self.spawn().wait_healthy(timeout)

    def spawn(self) -> ServerProcess:
        """Start the process without waiting (to start several at once); then ``wait_healthy``."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_path = self.home.parent / f"server-{self.port}.log"
        with open(self.log_path, "wb") as log:
            self.process = self._spawn(log)
        return self

    def wait_healthy(self, timeout: float = 30.0) -> ServerProcess:
        assert self.process is not None, "spawn() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early: {self.log_tail()}")
            try:
                if httpx.get(f"{self.url}{self.health_path}", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not become healthy in {timeout}s: {self.log_tail()}")

    def terminate(self) -> None:
        """Ask the process to stop without waiting (``stop`` waits)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def log_tail(self, lines: int = 20) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def _spawn(self, log: object) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                self.app,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            env=self.environment(),
            stdout=log,  # type: ignore[arg-type]
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def admin(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.admin_token}"}, timeout=10
        )
