"""`dataflow sql`: an interactive SQL shell over the catalog (see :mod:`dataflow.query.shell`).

On a terminal: a prompt with history and Tab completion of table and column names; statements
end with ``;``; ``\\d``, ``\\d db.table``, ``\\dialect NAME``, ``\\q``. Otherwise it reads the
statements from standard input::

    echo "SELECT count(*) FROM market.time_series;" | dataflow sql

Every statement runs as a query execution (history, result file), as with `dataflow query`.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from dataflow.cli.common import DebugOption, ProjectOption, console, handle_errors, settings_for

DialectOption = Annotated[
    str,
    typer.Option("--dialect", help="SQL dialect: duckdb, athena (= trino), trino or spark."),
]
WorkgroupOption = Annotated[
    str | None, typer.Option("--workgroup", help="Workgroup (default: primary).")
]
LimitOption = Annotated[int, typer.Option("--limit", min=1, help="Rows shown per result.")]


def register(app: typer.Typer) -> None:
    """Add the `sql` command to the application."""
    app.command("sql")(sql_command)


@handle_errors
def sql_command(
    dialect: DialectOption = "duckdb",
    workgroup: WorkgroupOption = None,
    limit: LimitOption = 100,
    project: ProjectOption = None,
    debug: DebugOption = False,  # noqa: ARG001 (read by handle_errors)
) -> None:
    """Interactive SQL over the catalog (reads statements from stdin when it is not a terminal)."""
    from dataflow.errors import ConfigError
    from dataflow.query.execution import QueryRunner
    from dataflow.query.shell import DIALECTS, SqlShell, history_path, interactive, read_stdin

    if dialect.lower() not in DIALECTS:
        raise ConfigError(f"--dialect {dialect}: use one of {', '.join(DIALECTS)}")
    settings = settings_for(project)
    with QueryRunner(settings) as runner:
        runner.config.workgroup(workgroup)  # an unknown workgroup fails now, not per statement
        shell = SqlShell(runner, console(), dialect=dialect, workgroup=workgroup, max_rows=limit)
        if sys.stdin.isatty():
            console().print(
                "dataflow sql — statements end with ;  \\? for help, \\q to quit", markup=False
            )
            interactive(shell, history_path(settings))
            return
        failures = shell.run_lines(read_stdin())
    if failures:
        raise typer.Exit(1)
