"""Verifying an audit export offline: only the file and the audit JWKS (a file, or fetched from a URL).

Offline, only signed checkpoints authenticate records, so every record of an export must
be covered by one: an unsigned tail fails verification rather than passing with a note.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from tessera.audit.verify import ExportFormatError, keys_from_jwks, verify_export
from tessera.cli.client import (
    TIMEOUT,
    CliError,
    describe_os_error,
    json_body,
    read_json_file,
    transport_error,
)

WELL_KNOWN_JWKS = "/.well-known/audit-jwks.json"
EXIT_TAMPERED, EXIT_USAGE = 1, 2
VERIFY_FIELDS = ("ok", "records", "checkpoints_verified", "first_seq", "last_seq", "unsigned_tail",
                 "problem", "bad_seq", "bad_id")  # fmt: skip


def read_jwks(source: str) -> dict[str, Any]:
    """A JWKS from a file, or fetched (no credential) from a server's audit JWKS URL."""
    if source.startswith(("http://", "https://")):
        url = source.rstrip("/") + WELL_KNOWN_JWKS if urlsplit(source).path in ("", "/") else source
        try:
            response = httpx.get(url, timeout=TIMEOUT, follow_redirects=False)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise CliError(transport_error(exc, url).message, EXIT_USAGE) from None
        if not response.is_success:
            raise CliError(f"cannot fetch jwks from {url}: http {response.status_code}", EXIT_USAGE)
        jwks = json_body(response)
    else:
        try:
            jwks = read_json_file(Path(source), "jwks file")
        except CliError as exc:
            raise CliError(exc.message, EXIT_USAGE) from None
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise CliError(f"'{source}' is not a jwk set (an object with 'keys')", EXIT_USAGE)
    return jwks


def verify_file(export: Path, jwks_source: str) -> dict[str, Any]:
    keys = keys_from_jwks(read_jwks(jwks_source))
    if not keys:
        raise CliError(f"no usable public keys in '{jwks_source}'", EXIT_USAGE)
    try:
        with export.open(encoding="utf-8") as handle:
            report = verify_export((raw.rstrip("\n") for raw in handle), keys)
    except ExportFormatError as exc:
        return {"ok": False, "problem": f"{export}: {exc}", "bad_seq": None, "bad_id": None}
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read export '{export}': {describe_os_error(exc)}", EXIT_USAGE) from None
    if report.ok and report.unsigned_tail and report.last_seq is not None:
        # Only a signed checkpoint authenticates records offline: without one, the end of the
        # file could have been rewritten (hashes recomputed, checkpoints dropped) undetectably.
        first_unsigned = report.last_seq - report.unsigned_tail + 1
        report.fail(
            f"{report.unsigned_tail} record(s) from seq {first_unsigned} on are not covered by "
            "a signed checkpoint, so they cannot be verified",
            seq=first_unsigned,
        )
    return {name: getattr(report, name) for name in VERIFY_FIELDS}
