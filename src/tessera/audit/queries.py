"""Parsing audit search parameters: times (RFC 3339 or relative ``15m``/``2h``/``7d``) and tokens."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from tessera.errors import ValidationFailed
from tessera.tokens.sealing import b64url_decode

_RELATIVE = re.compile(r"^(\d{1,6})([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time_ms(value: str | None, now: float) -> int | None:
    """``2026-11-29T10:00:00Z``, a date, or a duration back from now (``30m``)."""
    if value is None or value == "":
        return None
    relative = _RELATIVE.match(value.strip())
    if relative:
        return int((now - int(relative.group(1)) * _UNITS[relative.group(2)]) * 1000)
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValidationFailed(
            f"invalid time '{value[:40]}': use RFC 3339 or a duration like 15m, 2h, 7d"
        ) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def token_id(value: str) -> str:
    """The ``jti`` of a JWT (read without verifying, only to search), or ``value`` itself."""
    if value.count(".") != 2:
        return value
    try:
        claims = json.loads(b64url_decode(value.split(".")[1]))
    except ValueError as exc:
        raise ValidationFailed("token is not a readable jwt; pass its jti instead") from exc
    jti = claims.get("jti") if isinstance(claims, dict) else None
    if not isinstance(jti, str):
        raise ValidationFailed("token has no jti")
    return jti
