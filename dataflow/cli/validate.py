"""`dataflow validate`: check a project before anything is spent (see dataflow/validate.py)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from dataflow.cli.common import (
    DebugOption,
    FormatOption,
    OutputFormat,
    ProjectOption,
    console,
    handle_errors,
    print_json,
)


def register(app: typer.Typer) -> None:
    """Add the `validate` command."""
    app.command("validate")(validate)


@handle_errors
def validate(
    project: ProjectOption = None,
    output: FormatOption = OutputFormat.TABLE,
    quick: Annotated[
        bool,
        typer.Option("--quick", help="Skip running the dashboards' SQL (what `run` checks)."),
    ] = False,
    debug: DebugOption = False,  # noqa: ARG001 (read by handle_errors)
) -> None:
    """Check config, endpoints, symbols, engine, models, rulesets, dashboards, alarms, schedules,
    storage and catalog without calling the API. Exit 0 all pass, 1 a check failed, 2 the
    configuration does not load."""
    from rich.markup import escape
    from rich.table import Table

    from dataflow.validate import Status, validate_project

    report = validate_project(project, full=not quick)
    if output is OutputFormat.JSON:
        print_json(report.as_dict())
        raise typer.Exit(report.exit_code)
    if report.exit_code == 2:
        print(f"error: {report.problems[0]}", file=sys.stderr)
        raise typer.Exit(2)
    table = Table(title="Project checks")
    for column in ("check", "status", "detail", "seconds"):
        table.add_column(column)
    styles = {Status.OK: "green", Status.FAILED: "red", Status.SKIPPED: "yellow"}
    for check in report.checks:
        status = f"[{styles[check.status]}]{check.status.value}[/]"
        table.add_row(check.name, status, escape(check.detail), f"{check.seconds:.2f}")
    out = console()
    out.print(table)
    for problem in report.problems:
        out.print(f"[red]✗[/] {escape(problem)}")
    if not report.ok:
        out.print(
            f"{len(report.problems)} problem(s): fix them, then run `dataflow validate` again"
        )
    raise typer.Exit(report.exit_code)
