"""`dataflow query "SQL"`: run one read-only statement over the catalog and print the rows.

Every cataloged table is addressable as ``database.table`` (``market.time_series``,
``raw.quote``); unqualified names resolve in ``market``. Output: a table for people (the first
``--limit`` rows), ``--format csv`` (a header row, then every row) or ``--format json`` (a JSON
array of row objects, timestamps as ISO-8601 strings). The SQL comes from the argument or from
``--file`` (``-`` reads standard input).
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from dataflow.cli.common import (
    DebugOption,
    ProjectOption,
    console,
    handle_errors,
    print_json,
    print_table,
    settings_for,
)


class QueryFormat(StrEnum):
    """How `dataflow query` prints rows."""

    TABLE = "table"
    """A Rich table of the first --limit rows, for people."""
    CSV = "csv"
    """A header row, then every row (RFC 4180)."""
    JSON = "json"
    """A JSON array of row objects."""


def register(app: typer.Typer) -> None:
    """Add the `query` command to the application."""
    app.command("query")(query_command)


def read_sql(sql: str | None, file: Path | None) -> str:
    """The SQL text from the argument or the file (``-`` for standard input).

    Raises:
        ConfigError: neither or both given, or the file cannot be read.

    Example:
        >>> read_sql("SELECT 1", None)
        'SELECT 1'
    """
    from dataflow.errors import ConfigError

    if (sql is None) == (file is None):
        raise ConfigError(
            "give the SQL either as an argument or with --file, e.g. "
            'dataflow query "SELECT * FROM market.time_series LIMIT 5"'
        )
    if sql is not None:
        return sql
    assert file is not None
    if str(file) == "-":
        return sys.stdin.read()
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--file {file}: cannot read it ({exc.__class__.__name__})") from exc


@handle_errors
def query_command(
    sql: Annotated[
        str | None,
        typer.Argument(metavar="SQL", help="One SELECT/WITH/SHOW/DESCRIBE/EXPLAIN statement."),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="Read the SQL from this file (- for stdin)."),
    ] = None,
    output: Annotated[
        QueryFormat, typer.Option("--format", help="Output format: table, csv or json.")
    ] = QueryFormat.TABLE,
    limit: Annotated[
        int, typer.Option("--limit", min=1, help="Rows shown by --format table.")
    ] = 100,
    project: ProjectOption = None,
    debug: DebugOption = False,  # noqa: ARG001 (read by handle_errors)
) -> None:
    """Run a read-only SQL query over the catalog's tables (market.*, raw.*)."""
    from dataflow.query import QuerySession

    text = read_sql(sql, file)
    settings = settings_for(project)
    with QuerySession(settings) as session:
        max_rows = limit if output is QueryFormat.TABLE else None
        result = session.execute(text, max_rows=max_rows)
    if output is QueryFormat.JSON:
        print_json(result.to_json_rows())
    elif output is QueryFormat.CSV:
        result.to_csv(sys.stdout)
    else:
        print_table(None, result.columns, result.rows)
        shown = f"{result.row_count} row(s)"
        if result.truncated:
            shown = f"first {result.row_count} row(s) shown (--limit N, or --format csv for all)"
        console().print(f"{shown} in {result.elapsed:.2f} s", markup=False)
