"""`dataflow run` and `dataflow ingest`: run the pipeline, or only its ingest stage."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dataflow.cli.common import (
    EngineOption,
    FormatOption,
    OutputFormat,
    ProjectOption,
    console,
    engine_overrides,
    handle_errors,
    human_size,
    print_json,
    print_table,
    settings_for,
)

if TYPE_CHECKING:
    from dataflow.contract import Stage
    from dataflow.pipeline import RunResult

StartOption = Annotated[
    str | None,
    typer.Option("--start", help="Backfill from this date/time (UTC), e.g. 2024-01-01."),
]
EndOption = Annotated[
    str | None,
    typer.Option("--end", help="Stop before this date/time (UTC, exclusive)."),
]
FullRefreshOption = Annotated[
    bool,
    typer.Option("--full-refresh", help="Forget watermarks and fetch the whole history again."),
]
EndpointsOption = Annotated[
    str | None,
    typer.Option("--endpoints", help="Comma-separated endpoints (default: all enabled)."),
]
SymbolsOption = Annotated[
    str | None,
    typer.Option("--symbols", help="Comma-separated symbols replacing the configured universe."),
]
ProgressOption = Annotated[
    bool, typer.Option("--progress/--no-progress", help="Show a live progress bar.")
]


def register(app: typer.Typer) -> None:
    """Add the pipeline commands: `run` (every stage) and `ingest` (its first stage alone)."""
    app.command("run")(
        _command(None, "Run every stage in data order: ingest, transform, quality, publish, crawl.")
    )
    app.command("ingest")(
        _command("ingest", "Ingest from Twelve Data (or the built-in simulator) into the raw zone.")
    )


def _command(only: str | None, doc: str) -> Callable[..., None]:
    """One command function per stage selection; both take the same options."""

    @handle_errors
    def command(
        project: ProjectOption = None,
        start: StartOption = None,
        end: EndOption = None,
        full_refresh: FullRefreshOption = False,
        endpoints: EndpointsOption = None,
        symbols: SymbolsOption = None,
        progress: ProgressOption = True,
        output: FormatOption = OutputFormat.TABLE,
        engine: EngineOption = None,
    ) -> None:
        _execute(
            project, start, end, full_refresh, endpoints, symbols, progress, output, only,
            engine=engine,
        )  # fmt: skip

    command.__doc__ = doc
    return command


def _execute(
    project: Any,
    start: str | None,
    end: str | None,
    full_refresh: bool,
    endpoints: str | None,
    symbols: str | None,
    progress: bool,
    output: OutputFormat,
    only: str | None,
    *,
    engine: str | None = None,
) -> None:
    from dataflow.monitor.logs import configure_logging
    from dataflow.pipeline import RunOptions, default_stages, run_pipeline
    from dataflow.sources.twelvedata.ingest import IngestStage

    settings = settings_for(project, **engine_overrides(engine))
    configure_logging(level=settings.logging.level, rich_console=console(stderr=True))
    options = RunOptions(
        start=_parse_when(start, "--start"),
        end=_parse_when(end, "--end"),
        full_refresh=full_refresh,
        endpoints=_split(endpoints),
        symbols=_split(symbols),
        progress=progress and output is OutputFormat.TABLE,
    )
    stages: list[Stage] = default_stages() if only is None else [IngestStage()]
    if options.progress:
        with _progress_bar(stages):
            result = run_pipeline(settings, options, stages=stages)
    else:
        result = run_pipeline(settings, options, stages=stages)
    if output is OutputFormat.JSON:
        print_json(_result_json(result))
    else:
        _print_summary(result, settings.warehouse_uri)
    if result.status != "succeeded":  # partial or failed: the run did not get what it asked for
        raise typer.Exit(1)


def _split(value: str | None) -> list[str] | None:
    if not value:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


def _parse_when(value: str | None, flag: str) -> dt.datetime | None:
    from dataflow.errors import ConfigError

    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(
            f"{flag}: {value!r} is not a date — use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS"
        ) from None
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)


class _progress_bar:
    """A Rich progress bar fed by the ingest stage's progress callback."""

    def __init__(self, stages: list[Stage]) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        from dataflow.sources.twelvedata.ingest import IngestStage

        self.progress = Progress(
            TextColumn("[bold]ingest"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("requests · {task.fields[credits]} credits · {task.fields[rows]} rows"),
            TextColumn("· {task.fields[errors]} errors"),
            TimeElapsedColumn(),
            console=console(stderr=True),
            transient=False,
        )
        self.task = self.progress.add_task("ingest", total=None, credits="0", rows=0, errors=0)
        for stage in stages:
            if isinstance(stage, IngestStage):
                stage.on_progress = self._update

    def _update(self, p: Any) -> None:
        credits = f"{p.credits}" + (f"/{p.budget}" if p.budget else "")
        self.progress.update(
            self.task,
            total=p.planned,
            completed=p.done,
            credits=credits,
            rows=p.rows,
            errors=p.errors,
        )

    def __enter__(self) -> _progress_bar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


def _result_json(result: RunResult) -> dict[str, Any]:
    from dataclasses import asdict

    data = asdict(result.run)
    data["results"] = {name: asdict(r) for name, r in result.results.items()}
    return data


def _print_summary(result: RunResult, warehouse: str) -> None:
    run = result.run
    out = console()
    ingest = result.results.get("ingest")
    if ingest is not None and ingest.details.get("endpoints"):
        rows = []
        for name, s in ingest.details["endpoints"].items():
            rows.append(
                [
                    name,
                    s["requests"],
                    s["errors"],
                    s["rows"],
                    s["credits"],
                    s["files"],
                    human_size(s["bytes"]),
                ]
            )
        print_table(
            "Ingest by endpoint",
            ["endpoint", "requests", "errors", "rows", "credits", "files", "landed"],
            rows,
        )
    transform = result.results.get("transform")
    if transform is not None and transform.details.get("tables"):
        tables = [t for t in transform.details["tables"].values() if t["files"] or t["rows_out"]]
        print_table(
            "Transform by table",
            ["table", "raw files", "rows in", "rows out", "quarantined", "commits", "seconds"],
            [
                [
                    t["table"],
                    t["files"],
                    t["rows_in"],
                    t["rows_out"],
                    t["quarantined"],
                    t["commits"],
                    t["seconds"],
                ]
                for t in tables
            ],
        )
    stage_rows = [
        [
            s.stage,
            s.status,
            f"{s.duration_s:.2f}s" if s.duration_s is not None else "",
            s.rows,
            human_size(s.bytes),
            s.requests,
            s.errors,
        ]
        for s in run.stages
    ]
    print_table(
        f"Run {run.run_id}",
        ["stage", "status", "duration", "rows", "bytes", "requests", "errors"],
        stage_rows,
    )
    colour = {"succeeded": "green", "partial": "yellow"}.get(run.status, "red")
    out.print(
        f"[{colour}]{run.status}[/] in {run.duration_s or 0:.2f}s"
        + (f" — {run.message}" if run.message else "")
    )
    out.print(f"Raw zone:     {warehouse}/raw/twelvedata/")
    if "transform" in result.results:
        out.print(f"Clean tables: {warehouse}/iceberg/  (dataflow catalog tables)")
    out.print(f"Run history:  dataflow runs show {run.run_id}")
    if "transform" in result.results:
        out.print("Dashboards:   dataflow serve, then open http://127.0.0.1:8080")
