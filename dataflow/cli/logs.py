"""`dataflow logs`: tail the run logs, or query them with CloudWatch Logs Insights syntax."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from dataflow.cli.common import (
    FormatOption,
    OutputFormat,
    ProjectOption,
    console,
    handle_errors,
    print_json,
    print_table,
    settings_for,
)

if TYPE_CHECKING:
    from rich.text import Text

_LEVEL_STYLES = {"DEBUG": "dim", "INFO": "green", "WARNING": "yellow", "ERROR": "bold red"}
_CORE_FIELDS = ("ts", "level", "logger", "message", "run_id", "stage", "exc")


def register(app: typer.Typer) -> None:
    """Add the `logs` command."""
    app.command("logs")(logs)


@handle_errors
def logs(
    project: ProjectOption = None,
    run: Annotated[
        str | None, typer.Option("--run", help="Only this run (a unique prefix works).")
    ] = None,
    stage: Annotated[str | None, typer.Option("--stage", help="Only this stage.")] = None,
    level: Annotated[
        str | None,
        typer.Option("--level", help="This level and above: DEBUG, INFO, WARNING, ERROR."),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="From this time: 15m, 2h, 3d, 1w or an ISO date/time (UTC)."),
    ] = None,
    query: Annotated[
        str | None,
        typer.Option(
            "--query",
            "-q",
            help="A CloudWatch Logs Insights query, e.g. "
            "'filter level = \"ERROR\" | stats count(*) by stage'.",
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit", "-n", min=1, help="Rows to show (default: 100 records, 1000 query rows)."
        ),
    ] = None,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """Show recent log records (newest last), or run a Logs Insights query over them.

    Query commands: fields, filter, stats … by bin(5m), sort, limit, parse, display, dedup.
    Auto fields: @timestamp, @message, @logStream (the run id), @log (the project).
    """
    from dataflow.monitor.logquery import parse_since, query_logs

    settings = settings_for(project)
    result = query_logs(
        settings.state_dir / "logs",
        query,
        run_id=run,
        stage=stage,
        level=level,
        since=parse_since(since) if since else None,
        log_group=settings.name,
        limit=limit,
    )
    if output is OutputFormat.JSON:
        print_json(result.rows)
        return
    if query is None:
        if not result.rows:
            console().print("No log records match — runs write them (`dataflow run`).")
        for record in result.rows:
            # One record per line, like `tail`: the terminal wraps long lines, Rich should not.
            console().print(_record_line(record), soft_wrap=True)
        return
    print_table(
        None, result.columns, [[_cell(r.get(c)) for c in result.columns] for r in result.rows]
    )
    console().print(
        f"[dim]{len(result.rows)} row(s); {result.records_scanned} record(s) scanned "
        f"in {result.files} file(s)[/dim]"
    )


def _record_line(record: dict[str, Any]) -> Text:
    """One record as a readable line: time, level, stage, logger, message, extra fields."""
    from rich.text import Text

    level = str(record.get("level", ""))
    line = Text()
    line.append(str(record.get("ts", "")).replace("T", " ").rstrip("Z"), style="dim")
    line.append(f" {level:<8}", style=_LEVEL_STYLES.get(level, "bold red"))
    line.append(f" {record.get('stage') or '-':<10}", style="cyan")
    line.append(f" {record.get('logger', '')}", style="dim")
    line.append(f"  {record.get('message', '')}")
    extras = [f"{k}={_cell(v)}" for k, v in record.items() if k not in _CORE_FIELDS]
    if extras:
        line.append("  " + " ".join(extras), style="dim")
    if record.get("exc"):
        line.append("\n" + str(record["exc"]), style="red")
    return line


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        import json

        return json.dumps(value, default=str)
    return str(value)
