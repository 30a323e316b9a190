"""Shared pieces of the command line: the --project/--format options, settings, error rendering."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from dataflow.config import Settings

P = ParamSpec("P")
R = TypeVar("R")


class OutputFormat(StrEnum):
    """How commands that print data print it."""

    TABLE = "table"
    """A Rich table for people."""
    JSON = "json"
    """JSON for programs."""


ProjectOption = Annotated[
    Path | None,
    typer.Option(
        "--project",
        "-p",
        help="Project folder (default: env DATAFLOW_PROJECT, else the current folder).",
        show_default=False,
    ),
]
FormatOption = Annotated[
    OutputFormat, typer.Option("--format", help="Output format: table or json.")
]
EngineOption = Annotated[
    str | None,
    typer.Option(
        "--engine",
        help="Engine of the transform: duckdb or spark (default: `engine:` in dataflow.yaml).",
    ),
]


def engine_overrides(engine: str | None) -> dict[str, Any]:
    """Settings overrides of ``--engine`` (the top-level engine and the transform's own).

    Example:
        >>> engine_overrides("spark")
        {'engine': 'spark', 'transform.engine': 'spark'}
        >>> engine_overrides(None)
        {}
    """
    if engine is None:
        return {}
    return {"engine": engine, "transform.engine": engine}


DebugOption = Annotated[
    bool, typer.Option("--debug", help="Show tracebacks on errors.", hidden=True)
]


@functools.cache
def console(stderr: bool = False) -> Console:
    """The Rich console of stdout (or stderr); 160 columns wide when not a terminal."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() or os.environ.get("COLUMNS") else 160
    return Console(stderr=stderr, highlight=False, soft_wrap=False, width=width)


def settings_for(project: Path | None, **overrides: Any) -> Settings:
    """Load the project's settings with explicit overrides (``None`` values are ignored)."""
    from dataflow.config import load_settings

    given = {key: value for key, value in overrides.items() if value is not None}
    return load_settings(project, overrides=given)


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn DataflowError into a one-line message on stderr and its exit code (2 for bad input)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from dataflow.errors import DataflowError

        try:
            return func(*args, **kwargs)
        except DataflowError as exc:
            if kwargs.get("debug") or os.environ.get("DATAFLOW_DEBUG"):
                raise
            print(f"error: {exc}", file=sys.stderr)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt as exc:
            # a run stopped by SIGTERM says so, and exits 128 + 15 as a killed process would
            print(f"{exc}" if str(exc) else "interrupted", file=sys.stderr)
            raise typer.Exit(getattr(exc, "exit_code", 130)) from None

    return wrapper


def print_json(data: Any) -> None:
    """Print data as JSON on stdout (dates and paths as strings)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def print_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print rows as a Rich table."""
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*["" if cell is None else str(cell) for cell in row])
    console().print(table)


def human_size(value: float | str | None) -> str:
    """Bytes as people read them: ``406.2 KB``; empty for no value.

    Example:
        >>> human_size(415949), human_size(512), human_size(None)
        ('406.2 KB', '512 B', '')
    """
    if value in (None, ""):
        return ""
    size = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"
