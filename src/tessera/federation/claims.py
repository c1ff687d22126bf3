"""A small, declarative path syntax to read values out of a JWT's claims. Nothing is evaluated.

A path starts at ``claims`` and descends with ``.name`` (a name of letters, digits,
``_`` and ``-``) or with a bracketed string or index::

    claims.sub
    claims['kubernetes.io']['namespace']
    claims["kubernetes.io"].serviceaccount.name
    claims.groups[0]

A bare name (``sub``) is read as ``claims.sub``. Paths are parsed once, when an
issuer is registered; reading one is a walk over dicts and lists that stops at
the first missing step.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tessera.errors import ValidationFailed

MAX_PATH_LENGTH = 256
MAX_STEPS = 8
_NAME = r"[A-Za-z_][A-Za-z0-9_-]{0,127}"
_STEP = re.compile(
    rf"\.(?P<name>{_NAME})"
    r"|\['(?P<single>[^'\\\x00-\x1f]{1,128})'\]"
    r'|\["(?P<double>[^"\\\x00-\x1f]{1,128})"\]'
    r"|\[(?P<index>0|[1-9][0-9]{0,3})\]"
)
_BARE = re.compile(_NAME)

Step = str | int


@dataclass(frozen=True, slots=True)
class ClaimPath:
    """A parsed path: the text it was written as, and its steps (names and list indexes)."""

    text: str
    steps: tuple[Step, ...]

    def read(self, claims: Mapping[str, Any]) -> Any | None:
        """The value at this path, or ``None`` when any step is missing."""
        value: Any = claims
        for step in self.steps:
            if isinstance(step, int):
                if not isinstance(value, list) or step >= len(value):
                    return None
                value = value[step]
            else:
                if not isinstance(value, dict) or step not in value:
                    return None
                value = value[step]
        return value


def parse_path(text: str) -> ClaimPath:
    """Parse ``claims.a['b'][0]`` (or a bare claim name); raise ``ValidationFailed`` on anything else."""
    if not isinstance(text, str) or not text or len(text) > MAX_PATH_LENGTH:
        raise ValidationFailed(f"claim path must be 1-{MAX_PATH_LENGTH} characters")
    if _BARE.fullmatch(text) and text != "claims":
        return ClaimPath(text, (text,))
    if not text.startswith("claims"):
        raise ValidationFailed(f"claim path '{text[:80]}' must start with 'claims'")
    steps: list[Step] = []
    position = len("claims")
    while position < len(text):
        match = _STEP.match(text, position)
        if match is None:
            raise ValidationFailed(f"malformed claim path '{text[:80]}' at character {position + 1}")
        if match.group("index") is not None:
            steps.append(int(match.group("index")))
        else:
            steps.append(match.group("name") or match.group("single") or match.group("double"))
        position = match.end()
    if not steps:
        raise ValidationFailed("claim path 'claims' names no claim")
    if len(steps) > MAX_STEPS:
        raise ValidationFailed(f"claim path '{text[:80]}' is deeper than {MAX_STEPS} steps")
    return ClaimPath(text, tuple(steps))


def scalar_text(value: Any) -> str | None:
    """A claim value as an attribute string: strings as they are, numbers and booleans as JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return None
