"""Policy bundles: a directory of ``*.cedar`` policies, a schema, static entities and tests.

Layout::

    bundle/
      *.cedar                     policies (every file, sorted by name)
      schema.cedarschema          Cedar schema (or schema.cedarschema.json)
      entities.json               optional static entities (Cedar JSON entity format)
      tests/*.yaml                policy tests (see tessera.policy.testing)

A bundle's version is the SHA-256 of its files (names and contents), so the same
content always has the same version, wherever it was applied from.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tessera.errors import ValidationFailed

SCHEMA_FILES = ("schema.cedarschema", "schema.cedarschema.json")
ENTITIES_FILE = "entities.json"
MAX_FILE_BYTES = 1024 * 1024
MAX_FILES = 500


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class Bundle:
    """The files of a bundle, by relative path (``policies.cedar``, ``tests/basic.yaml``…)."""

    files: dict[str, str] = field(default_factory=dict)

    @property
    def version(self) -> str:
        digest = hashlib.sha256()
        for name in sorted(self.files):
            digest.update(name.encode() + b"\0" + self.files[name].encode() + b"\0")
        return digest.hexdigest()[:16]

    @property
    def policy_files(self) -> list[str]:
        return sorted(name for name in self.files if name.endswith(".cedar") and "/" not in name)

    @property
    def schema_file(self) -> str | None:
        return next((name for name in SCHEMA_FILES if name in self.files), None)

    @property
    def schema_text(self) -> str | None:
        name = self.schema_file
        return self.files[name] if name else None

    @property
    def test_files(self) -> list[str]:
        return sorted(n for n in self.files if n.startswith("tests/") and n.endswith((".yaml", ".yml")))

    def static_entities(self) -> list[dict[str, Any]]:
        raw = self.files.get(ENTITIES_FILE)
        if raw is None:
            return []
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise ValidationFailed(f"{ENTITIES_FILE}: not valid json ({exc})") from exc
        if not isinstance(value, list):
            raise ValidationFailed(f"{ENTITIES_FILE}: expected a json array of entities")
        return value

    def to_json(self) -> dict[str, str]:
        return dict(self.files)


def _wanted(relative: str) -> bool:
    if relative.startswith("tests/"):
        return relative.endswith((".yaml", ".yml")) and relative.count("/") == 1
    return "/" not in relative and (
        relative.endswith(".cedar") or relative in SCHEMA_FILES or relative == ENTITIES_FILE
    )


def load_bundle(directory: Path) -> Bundle:
    """Read a bundle directory; unknown files are ignored, oversized ones refused."""
    if not directory.is_dir():
        raise ValidationFailed(f"'{directory}' is not a directory")
    files: dict[str, str] = {}
    for path in sorted(directory.rglob("*")):
        if not path.is_file():
            continue
        relative = path.relative_to(directory).as_posix()
        if not _wanted(relative):
            continue
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ValidationFailed(f"{relative}: larger than {MAX_FILE_BYTES} bytes")
        try:
            files[relative] = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ValidationFailed(f"{relative}: not utf-8 text") from exc
        if len(files) > MAX_FILES:
            raise ValidationFailed(f"bundle has more than {MAX_FILES} files")
    return bundle_from_files(files)


def bundle_from_files(files: dict[str, str]) -> Bundle:
    for name, content in files.items():
        if not isinstance(name, str) or not isinstance(content, str) or not _wanted(name):
            raise ValidationFailed(f"unexpected bundle file '{str(name)[:80]}'")
        if len(content.encode()) > MAX_FILE_BYTES:
            raise ValidationFailed(f"{name}: larger than {MAX_FILE_BYTES} bytes")
    bundle = Bundle(dict(files))
    if not bundle.policy_files:
        raise ValidationFailed("bundle has no *.cedar policy files")
    if bundle.schema_file is None:
        raise ValidationFailed(f"bundle has no schema ({' or '.join(SCHEMA_FILES)})")
    return bundle


def write_bundle(bundle: Bundle, directory: Path) -> None:
    for name, content in bundle.files.items():
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
