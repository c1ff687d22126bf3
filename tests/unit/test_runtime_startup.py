"""Starting runtimes: workers or replicas starting together on a fresh home and database agree."""

from __future__ import annotations

import stat
import threading

from sqlalchemy import func, select

from tessera.clock import ManualClock
from tessera.config import Settings
from tessera.runtime import Runtime
from tessera.storage.database import reading
from tessera.storage.tables import admin_credentials, signing_keys
from tests.unit.helpers import register, request_token


def start_together(
    settings: Settings, clock: ManualClock, count: int
) -> tuple[list[Runtime], list[BaseException]]:
    barrier = threading.Barrier(count)
    started: list[Runtime] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            barrier.wait(timeout=30)
            rt = Runtime(settings, clock=clock)
            started.append(rt)
            rt.start(background=False)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return started, errors


def test_workers_starting_together_share_one_key_and_one_admin_credential(
    settings: Settings, clock: ManualClock
) -> None:
    runtimes, errors = start_together(settings, clock, 4)
    try:
        assert errors == []
        with reading(runtimes[0].engine) as conn:
            assert conn.execute(select(func.count()).select_from(signing_keys)).scalar_one() == 1
            assert conn.execute(select(func.count()).select_from(admin_credentials)).scalar_one() == 1
        token = settings.admin_token_path.read_text().strip()
        assert all(rt.admin.verify(token) for rt in runtimes)
        assert stat.S_IMODE(settings.admin_token_path.stat().st_mode) == 0o600
        assert stat.S_IMODE(settings.master_key_path.stat().st_mode) == 0o600
        client = register(runtimes[0])
        for rt in runtimes:
            assert rt.follower is not None
            rt.follower.poll_once()
        issued = request_token(runtimes[1], client).access_token
        assert all(rt.validator.verify(issued).client_id == client.id for rt in runtimes)
    finally:
        for rt in runtimes:
            rt.stop()


def test_a_restart_reuses_everything(settings: Settings, clock: ManualClock) -> None:
    first = Runtime(settings, clock=clock)
    created = first.start(background=False)
    assert created is not None
    signer = first.keyring().signing_key(clock.now())
    assert signer is not None
    first.stop()
    again = Runtime(settings, clock=clock)
    try:
        assert again.start(background=False) is None  # the admin token is printed only once
        again_signer = again.keyring().signing_key(clock.now())
        assert again_signer is not None
        assert again_signer.kid == signer.kid
        assert again.admin.verify(created)
    finally:
        again.stop()
