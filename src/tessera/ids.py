"""Identifier generation. Ids are random, URL-safe and carry a type prefix."""

from __future__ import annotations

import secrets
from typing import Protocol


class IdGenerator(Protocol):
    def new(self, prefix: str) -> str: ...


class RandomIds:
    """128 bits of randomness, base64url without padding, e.g. ``agt_q0Jf…``."""

    def new(self, prefix: str) -> str:
        return f"{prefix}_{secrets.token_urlsafe(16)}"


class SequentialIds:
    """Predictable ids for tests: ``agt_1``, ``agt_2``…"""

    def __init__(self) -> None:
        self._counter = 0

    def new(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}_{self._counter}"
