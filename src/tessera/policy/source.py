"""Locating policies in Cedar source text, so errors can be reported as ``file:line``.

Cedar's parser reports no positions and numbers policies by order (``policy0``,
``policy1``…). :func:`split_policies` finds where each policy starts by scanning
for the ``;`` that ends it, outside strings and comments.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PolicySource:
    index: int
    line: int
    text: str


def split_policies(text: str) -> list[PolicySource]:  # noqa: PLR0912 - one small lexer loop
    """Split Cedar text into its policies, each with the line where it starts (1-based)."""
    policies: list[PolicySource] = []
    start: int | None = None
    start_line = 1
    line = 1
    i = 0
    in_string = False
    length = len(text)
    while i < length:
        char = text[i]
        if in_string:
            if char == "\\":
                i += 2
                continue
            if char == '"':
                in_string = False
            elif char == "\n":
                line += 1
            i += 1
            continue
        if char == "/" and i + 1 < length and text[i + 1] == "/":
            while i < length and text[i] != "\n":
                i += 1
            continue
        if char == "\n":
            line += 1
        elif not char.isspace():
            if start is None:
                start, start_line = i, line
            if char == '"':
                in_string = True
            elif char == ";":
                policies.append(PolicySource(len(policies), start_line, text[start : i + 1]))
                start = None
        i += 1
    if start is not None and text[start:].strip():
        policies.append(PolicySource(len(policies), start_line, text[start:]))
    return policies
