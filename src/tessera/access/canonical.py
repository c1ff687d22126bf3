"""The hash of exactly what was asked: canonical JSON (RFC 8785 style) and SHA-256.

Objects are serialised with keys sorted, no insignificant whitespace, strings as
UTF-8 with only the escapes JSON requires (RFC 8785 §3.2.2.2). What Tessera hashes
holds strings, integers, booleans, arrays and objects (Cedar decimals arrive as
``{"__extn": …}`` objects), so RFC 8785's number formatting reduces to integers;
a float is refused rather than hashed in a form another implementation might
spell differently. Keys are compared as Python strings (code points), which equals
RFC 8785's UTF-16 order for every key outside the astral planes.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def _check(value: Any, depth: int = 0) -> None:
    if depth > 64:
        raise ValueError("value is nested more than 64 levels")
    if isinstance(value, float):
        raise ValueError(f"non-integer number {value!r} cannot be hashed canonically")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError("object keys must be strings")
            _check(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            _check(item, depth + 1)


def canonical_json(value: Any) -> str:
    _check(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def asked_hash(value: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of ``value``."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()
