"""Agent key files: reading a JWK to register, and writing a newly generated private JWK (mode 0600)."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tessera.cli.client import CliError, describe_os_error, read_json_file
from tessera.sdk.proofs import generate_private_jwk, public_jwk

KEY_TYPES = ("ES256", "Ed25519")
# Private members of JWKs (RFC 7518 §6.2.2, §6.3.2; RFC 8037 §2): never sent to the server.
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth"})


def public_part(jwk: Any, path: Path) -> dict[str, Any]:
    if not isinstance(jwk, dict) or not isinstance(jwk.get("kty"), str):
        raise CliError(f"'{path}' does not hold a jwk (an object with 'kty')")
    if jwk["kty"] == "oct":
        raise CliError(f"'{path}' holds a symmetric key; register a public EC P-256 or Ed25519 key")
    return {name: value for name, value in jwk.items() if name not in PRIVATE_MEMBERS}


def read_public_jwks(path: Path) -> list[dict[str, Any]]:
    """The public keys in a JWK or JWK Set file; private members are dropped, never sent."""
    data = read_json_file(path, "key file")
    if isinstance(data, dict) and "keys" in data and "kty" not in data:
        keys = data["keys"]
        if not isinstance(keys, list) or not keys:
            raise CliError(f"'{path}' holds a jwk set without keys")
        return [public_part(jwk, path) for jwk in keys]
    return [public_part(data, path)]


def read_one_public_jwk(path: Path) -> dict[str, Any]:
    keys = read_public_jwks(path)
    if len(keys) != 1:
        raise CliError(f"'{path}' holds {len(keys)} keys; give a file with exactly one")
    return keys[0]


def read_private_jwk(path: Path) -> dict[str, Any]:
    data = read_json_file(path, "key file")
    if not isinstance(data, dict):
        raise CliError(f"'{path}' does not hold a jwk (an object with 'kty')")
    if "d" not in data:
        raise CliError(f"'{path}' holds no private key ('d'); give the private jwk the agent signs with")
    return data


def write_private_jwk(path: Path, kind: str) -> dict[str, Any]:
    """Generate a key and write it to a new file readable by its owner only; never overwrite."""
    if kind not in KEY_TYPES:
        raise CliError(f"unsupported key type '{kind}': use ES256 or Ed25519")
    jwk = generate_private_jwk(kind)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CliError(f"refusing to overwrite existing file '{path}'") from None
    except OSError as exc:
        raise CliError(f"cannot create key file '{path}': {describe_os_error(exc)}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)
            json.dump(jwk, handle, indent=2)
            handle.write("\n")
    except OSError as exc:
        with contextlib.suppress(OSError):
            path.unlink()
        raise CliError(f"cannot write key file '{path}': {describe_os_error(exc)}") from None
    return jwk


@contextlib.contextmanager
def new_key_file(path: Path, kind: str) -> Iterator[dict[str, Any]]:
    """Yield the public half of a newly written key; remove the file if registering it fails."""
    private = write_private_jwk(path, kind)
    try:
        yield public_jwk(private)
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise
