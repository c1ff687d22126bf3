"""Key-encryption: signing keys are stored sealed with AES-256-GCM under the master key.

The master key comes from ``TESSERA_MASTER_KEY`` (base64url, 32 bytes) or from
``$TESSERA_HOME/master.key``, created with mode 0600 on first start. Purpose-bound
subkeys (DPoP nonces, token hashing) are derived with HKDF-SHA256 (RFC 5869).
"""

from __future__ import annotations

import base64
import hmac
import os
import re
import secrets
from hashlib import sha256
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_BYTES = 32
NONCE_BYTES = 12
SEAL_VERSION = b"\x01"


class MasterKeyError(Exception):
    """The master key is missing, malformed, or not the one that sealed the stored keys."""


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def b64url_decode(text: str) -> bytes:
    """Strict base64url without padding (RFC 7515 §2): any other character is an error."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    padded = text + "=" * (-len(text) % 4)
    return base64.urlsafe_b64decode(padded.encode("ascii"))


def parse_master_key(text: str) -> bytes:
    try:
        key = b64url_decode(text.strip().rstrip("="))
    except (ValueError, UnicodeEncodeError) as exc:
        raise MasterKeyError("master key is not valid base64url") from exc
    if len(key) != KEY_BYTES:
        raise MasterKeyError(f"master key must be {KEY_BYTES} bytes, got {len(key)}")
    return key


def load_or_create_master_key(env_value: str | None, path: Path) -> bytes:
    """Return the master key from the environment, else from ``path``, creating it (0600)."""
    if env_value:
        return parse_master_key(env_value)
    if path.exists():
        return parse_master_key(path.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(KEY_BYTES)
    # Written whole to a private temporary file, then linked into place: workers starting
    # together on a fresh home never see a partial file, and the first link wins.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(b64url_encode(key) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return parse_master_key(path.read_text())
    finally:
        tmp.unlink(missing_ok=True)
    return key


class Sealer:
    """AEAD envelope: ``version || nonce || AES-GCM(ciphertext+tag)`` with caller-given AAD."""

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != KEY_BYTES:
            raise MasterKeyError(f"master key must be {KEY_BYTES} bytes")
        self._master = master_key
        self._aead = AESGCM(self.derive("tessera/seal/v1"))

    def derive(self, purpose: str, length: int = KEY_BYTES) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=purpose.encode()).derive(
            self._master
        )

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return SEAL_VERSION + nonce + self._aead.encrypt(nonce, plaintext, aad)

    def open(self, sealed: bytes, aad: bytes) -> bytes:
        if not sealed.startswith(SEAL_VERSION) or len(sealed) < 1 + NONCE_BYTES + 16:
            raise MasterKeyError("sealed value has an unknown format")
        nonce = sealed[1 : 1 + NONCE_BYTES]
        try:
            return self._aead.decrypt(nonce, sealed[1 + NONCE_BYTES :], aad)
        except InvalidTag as exc:
            raise MasterKeyError(
                "cannot unseal: the master key is not the one that sealed this value"
            ) from exc


def token_hash(value: str) -> str:
    """SHA-256 hex of a high-entropy secret (admin tokens); not for passwords."""
    return sha256(value.encode()).hexdigest()


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
