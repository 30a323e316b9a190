"""`dataflow dashboard`: dashboards as code (``dashboards/*.yaml``): list, validate, export.

dataflow dashboard list                          every dashboard (built-in and the project's)
dataflow dashboard validate [NAME_OR_FILE ...]   YAML, SQL and field mappings (all when none)
dataflow dashboard export NAME --html OUT.html [--param k=v ...]
                                                 a self-contained HTML snapshot
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from dataflow.cli.common import (
    DebugOption,
    FormatOption,
    OutputFormat,
    ProjectOption,
    console,
    handle_errors,
    print_json,
    print_table,
    settings_for,
)

ParamOption = Annotated[
    list[str] | None,
    typer.Option(
        "--param",
        help="A control value, name=value; a date range as FROM..TO; a multi-select as "
        "a,b,c or the option repeated.",
    ),
]


@handle_errors
def list_command(
    project: ProjectOption = None,
    output: FormatOption = OutputFormat.TABLE,
    debug: DebugOption = False,  # noqa: ARG001 (read by handle_errors)
) -> None:
    """List the dashboards: name, title, origin, visuals (or the error of a broken file)."""
    from dataflow.dashboard.spec import dashboard_listing

    listing = dashboard_listing(settings_for(project))
    if output is OutputFormat.JSON:
        print_json(listing)
        return
    rows = [(d["name"], d["title"], d["origin"], d["visuals"], d["error"] or "ok") for d in listing]
    print_table("Dashboards", ["name", "title", "origin", "visuals", "status"], rows)


@handle_errors
def validate_command(
    names: Annotated[
        list[str] | None,
        typer.Argument(
            help="Dashboard names or YAML files (default: every dashboard).", show_default=False
        ),
    ] = None,
    project: ProjectOption = None,
    output: FormatOption = OutputFormat.TABLE,
    debug: DebugOption = False,  # noqa: ARG001 (read by handle_errors)
) -> None:
    """Check dashboards: schema, parameters, each visual's SQL and field mappings.

    The SQL runs against the catalog with the parameters' default values. Exit 0 when valid,
    2 with one line per problem.
    """
    from dataflow.dashboard.checks import targets, validate_file
    from dataflow.dashboard.visuals import DashboardRunner

    settings = settings_for(project)
    files = targets(settings, list(names or []))
    results: dict[str, list[str]] = {}
    with DashboardRunner(settings) as runner:
        for path in files:
            results[str(path)] = validate_file(runner, path)
    problems = [line for lines in results.values() for line in lines]
    if output is OutputFormat.JSON:
        print_json({"valid": not problems, "files": results})
    else:
        for line in problems:
            typer.echo(f"error: {line}", err=True)
        if not problems:
            console().print(f"{len(files)} dashboard file(s) valid")
    if problems:
        raise typer.Exit(2)


@handle_errors
def export_command(
    name: Annotated[str, typer.Argument(help="The dashboard to export.")],
    html: Annotated[Path, typer.Option("--html", help="The HTML file to write.")],
    param: ParamOption = None,
    project: ProjectOption = None,
    debug: DebugOption = False,  # noqa: ARG001 (read by handle_errors)
) -> None:
    """Write a self-contained HTML snapshot of a dashboard, with its data.

    No server needed: open the file from disk, or share it.
    """
    from dataflow.dashboard.export import write_export

    result = write_export(settings_for(project), name, html, parse_control_values(param or []))
    failed = [v.name for v in result.visuals if v.error]
    rows = sum(len(v.rows) for v in result.visuals)
    console().print(
        f"wrote {html} — {len(result.visuals)} visual(s), {rows} row(s)"
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )


def parse_control_values(items: list[str]) -> dict[str, Any]:
    """``name=value`` items as control values: strings (typed later by the parameter), a
    name given several times as a list, ``FROM..TO`` kept for a date range to split.

    Example:
        >>> parse_control_values(["symbol=MSFT", "compare=AAPL", "compare=NVDA"])
        {'symbol': 'MSFT', 'compare': ['AAPL', 'NVDA']}
    """
    from dataflow.errors import ConfigError

    values: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise ConfigError(f"--param {item!r}: write name=value, e.g. --param symbol=MSFT")
        if name in values:
            previous = values[name]
            values[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            values[name] = value
    return values


def register(app: typer.Typer) -> None:
    """Add the `dashboard` command group."""
    group = typer.Typer(help="Dashboards as code: list, validate and export dashboards/*.yaml.")
    group.command("list")(list_command)
    group.command("validate")(validate_command)
    group.command("export")(export_command)
    app.add_typer(group, name="dashboard")


__all__ = ["parse_control_values", "register"]
