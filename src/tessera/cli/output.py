"""Printing: JSON as the API sent it, rich tables for people, and one-line errors on stderr."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the API's JSON response.")]

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:\d\d)$")


def one_line(message: str) -> str:
    """Collapse whitespace and neutralise control characters (server text may quote user input)."""
    return _CONTROL.sub("?", " ".join(message.split()))


def error(message: str) -> None:
    typer.echo(f"error: {one_line(message)}", err=True)


def note(message: str) -> None:
    """A remark for the person at the terminal, on stderr so stdout stays machine-readable."""
    typer.echo(f"tessera: {one_line(message)}", err=True)


def line(text: str) -> None:
    typer.echo(text)


def emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=False))


def text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return " ".join(text(v) for v in value) if value else "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) if value else "-"
    return str(value)


def _console() -> Console:
    return Console(highlight=False, emoji=False, markup=False)


def cell(value: Any) -> str:
    """``text`` for a table cell; timestamps lose their fractions of a second and may wrap at the T."""
    return _TIMESTAMP.sub(r"\1 \2\3", value) if isinstance(value, str) else text(value)


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A table; on a terminal too narrow for it, one block of ``column value`` lines per row."""
    rows = [[cell(value) for value in row] for row in rows]
    console = _console()
    grid = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for index, column in enumerate(columns):
        grid.add_column(column, no_wrap=index == 0, overflow="fold")
    for row in rows:
        grid.add_row(*row)
    natural = console.measure(grid, options=console.options.update_width(10_000)).maximum
    if natural <= console.width:
        console.print(grid)
        return
    if title:
        console.print(title)
    for row in rows:
        console.print()
        console.print(_record(dict(zip(columns, row, strict=True)), columns))


def _record(record: Mapping[str, Any], names: Sequence[str]) -> Table:
    grid = Table(show_header=False, box=None, pad_edge=False)
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for name in names:
        grid.add_row(name, text(record.get(name)))
    return grid


def fields(record: Mapping[str, Any], names: Sequence[str]) -> None:
    _console().print(_record(record, names))
