"""The bootstrap admin credential: created once, stored hashed, written 0600, adoptable from a preset."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from tessera.clock import ManualClock
from tessera.identity.admin_credentials import ADMIN_TOKEN_PREFIX, AdminCredentials
from tessera.storage.database import reading
from tessera.storage.tables import admin_credentials

PRESET = "preset-admin-token-0123456789-abcdef"


def test_created_once_and_written_0600(engine: Engine, clock: ManualClock, tmp_path: Path) -> None:
    path = tmp_path / "home" / "admin-token"
    admin = AdminCredentials(engine, clock)
    token = admin.bootstrap(path, None)
    assert token is not None
    assert token.startswith(ADMIN_TOKEN_PREFIX)
    assert path.read_text().strip() == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert admin.verify(token)
    # A restart (or a second replica on the same database) creates nothing new.
    again = AdminCredentials(engine, clock)
    assert again.bootstrap(path, None) is None
    assert again.verify(token)
    assert path.read_text().strip() == token


def test_the_file_mode_does_not_depend_on_a_lax_umask(
    engine: Engine, clock: ManualClock, tmp_path: Path
) -> None:
    old = os.umask(0)
    try:
        AdminCredentials(engine, clock).bootstrap(tmp_path / "admin-token", None)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "admin-token").stat().st_mode) == 0o600


def test_only_a_hash_is_stored(engine: Engine, clock: ManualClock, tmp_path: Path) -> None:
    token = AdminCredentials(engine, clock).bootstrap(tmp_path / "admin-token", None)
    assert token is not None
    with reading(engine) as conn:
        (stored,) = conn.execute(select(admin_credentials.c.token_hash)).one()
    assert stored == hashlib.sha256(token.encode()).hexdigest()


def test_a_preset_token_is_adopted(engine: Engine, clock: ManualClock, tmp_path: Path) -> None:
    path = tmp_path / "admin-token"
    admin = AdminCredentials(engine, clock)
    assert admin.bootstrap(path, PRESET) is None
    assert admin.verify(PRESET)
    assert not path.exists()
    assert AdminCredentials(engine, clock).bootstrap(path, PRESET) is None
    with reading(engine) as conn:
        assert len(conn.execute(select(admin_credentials)).all()) == 1


def test_a_token_file_survives_a_wiped_database(engine: Engine, clock: ManualClock, tmp_path: Path) -> None:
    path = tmp_path / "admin-token"
    path.write_text(PRESET + "\n")
    admin = AdminCredentials(engine, clock)
    assert admin.bootstrap(path, None) is None
    assert admin.verify(PRESET)


def test_a_short_preset_is_refused(engine: Engine, clock: ManualClock, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least"):
        AdminCredentials(engine, clock).bootstrap(tmp_path / "admin-token", "short")


def test_verify_rejects_everything_else(engine: Engine, clock: ManualClock, tmp_path: Path) -> None:
    admin = AdminCredentials(engine, clock)
    token = admin.bootstrap(tmp_path / "admin-token", None)
    assert token is not None
    for other in (
        None,
        "",
        ADMIN_TOKEN_PREFIX,
        token[:-1],
        token + " ",
        token.upper(),
        " " + token,
        "x" * 10_000,
    ):
        assert not admin.verify(other)


def test_an_unloaded_instance_trusts_nothing(engine: Engine, clock: ManualClock, tmp_path: Path) -> None:
    token = AdminCredentials(engine, clock).bootstrap(tmp_path / "admin-token", None)
    fresh = AdminCredentials(engine, clock)
    assert not fresh.verify(token)
    fresh.load()
    assert fresh.verify(token)
