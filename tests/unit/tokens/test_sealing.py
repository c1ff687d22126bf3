"""The master key and the AEAD envelope that seals signing keys at rest."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from tessera.tokens.sealing import (
    KEY_BYTES,
    MasterKeyError,
    Sealer,
    b64url_decode,
    b64url_encode,
    load_or_create_master_key,
    parse_master_key,
)


def test_the_master_key_file_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "home" / "master.key"
    key = load_or_create_master_key(None, path)
    assert len(key) == KEY_BYTES
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_master_key(None, path) == key
    assert b64url_decode(path.read_text().strip()) == key


def test_the_file_mode_does_not_depend_on_a_lax_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        load_or_create_master_key(None, tmp_path / "master.key")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "master.key").stat().st_mode) == 0o600


def test_the_environment_wins_and_writes_nothing(tmp_path: Path) -> None:
    key = os.urandom(KEY_BYTES)
    path = tmp_path / "master.key"
    assert load_or_create_master_key(b64url_encode(key), path) == key
    assert not path.exists()


def test_a_padded_master_key_is_read() -> None:
    key = os.urandom(KEY_BYTES)
    assert parse_master_key(b64url_encode(key) + "=\n") == key


@pytest.mark.parametrize(
    "text", ["", "short", b64url_encode(b"x" * 31), b64url_encode(b"x" * 33), "!" * 43, "é" * 43]
)
def test_malformed_master_keys_are_refused(text: str) -> None:
    with pytest.raises(MasterKeyError):
        parse_master_key(text)


def test_a_malformed_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    path.write_text("not a key\n")
    with pytest.raises(MasterKeyError):
        load_or_create_master_key(None, path)


def test_seal_and_open() -> None:
    sealer = Sealer(os.urandom(KEY_BYTES))
    sealed = sealer.seal(b"private jwk", b"kid-1")
    assert b"private jwk" not in sealed
    assert sealer.open(sealed, b"kid-1") == b"private jwk"
    assert sealer.seal(b"private jwk", b"kid-1") != sealed  # fresh nonce each time


def test_another_master_key_cannot_open() -> None:
    sealed = Sealer(os.urandom(KEY_BYTES)).seal(b"secret", b"kid-1")
    with pytest.raises(MasterKeyError, match="not the one that sealed"):
        Sealer(os.urandom(KEY_BYTES)).open(sealed, b"kid-1")


def test_a_sealed_value_is_bound_to_its_kid() -> None:
    sealer = Sealer(os.urandom(KEY_BYTES))
    with pytest.raises(MasterKeyError):
        sealer.open(sealer.seal(b"secret", b"kid-1"), b"kid-2")


def test_tampering_is_detected() -> None:
    sealer = Sealer(os.urandom(KEY_BYTES))
    sealed = bytearray(sealer.seal(b"secret", b"kid"))
    for index in (0, 5, len(sealed) - 1):
        tampered = bytearray(sealed)
        tampered[index] ^= 1
        with pytest.raises(MasterKeyError):
            sealer.open(bytes(tampered), b"kid")
    with pytest.raises(MasterKeyError, match="format"):
        sealer.open(bytes(sealed[:20]), b"kid")


def test_subkeys_are_per_purpose_and_deterministic() -> None:
    master = os.urandom(KEY_BYTES)
    a, b = Sealer(master), Sealer(master)
    assert a.derive("tessera/dpop-nonce/v1") == b.derive("tessera/dpop-nonce/v1")
    assert a.derive("tessera/dpop-nonce/v1") != a.derive("tessera/audit-hmac/v1")
    assert master not in (a.derive("tessera/seal/v1"), a.derive("x"))


def test_a_master_key_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(MasterKeyError):
        Sealer(b"x" * 16)


def test_a_key_file_created_by_another_process_meanwhile_is_adopted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers sharing a fresh home race to create the file: the loser reads the winner's key."""
    path = tmp_path / "master.key"
    winner = load_or_create_master_key(None, path)
    real_exists = Path.exists
    calls: list[Path] = []

    def not_yet(self: Path) -> bool:  # the file appears just after this check
        if self == path and not calls:
            calls.append(self)
            return False
        return real_exists(self)

    monkeypatch.setattr(Path, "exists", not_yet)
    assert load_or_create_master_key(None, path) == winner
    assert calls == [path]
    assert [p.name for p in tmp_path.iterdir()] == ["master.key"]  # no temporary files left


def first_starts(path: Path, count: int) -> tuple[list[bytes], list[BaseException]]:
    """``count`` threads load-or-create the key at ``path`` at the same moment."""
    barrier = threading.Barrier(count)
    keys: list[bytes] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            barrier.wait(timeout=10)
            keys.append(load_or_create_master_key(None, path))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return keys, errors


def test_concurrent_first_starts_agree_on_one_key(tmp_path: Path) -> None:
    for round_ in range(5):
        path = tmp_path / f"home-{round_}" / "master.key"
        keys, errors = first_starts(path, 8)
        assert errors == []
        assert len(keys) == 8
        assert len(set(keys)) == 1
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
