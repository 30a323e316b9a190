"""`dataflow runs`: the run history."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

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

runs_app = typer.Typer(
    help="Run history: `dataflow runs` lists runs, `runs show ID` a run's stages.",
    invoke_without_command=True,
    no_args_is_help=False,
)


def register(app: typer.Typer) -> None:
    """Add the `runs` group."""
    app.add_typer(runs_app, name="runs")


@runs_app.callback()
@handle_errors
def list_runs(
    ctx: typer.Context,
    project: ProjectOption = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many runs.")] = 20,
    status: Annotated[
        str | None, typer.Option("--status", help="Only runs in this status.")
    ] = None,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """List recent runs, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    from dataflow.metadata import RunStore, open_metadata

    db = open_metadata(settings_for(project).metadata_url)
    try:
        runs = RunStore(db).list(limit=limit, status=status)
    finally:
        db.dispose()
    if output is OutputFormat.JSON:
        print_json([asdict(r) for r in runs])
        return
    if not runs:
        console().print("No runs yet — start one with `dataflow run`.")
        return
    rows = [
        [
            r.run_id,
            r.status,
            r.trigger,
            r.started_at.strftime("%Y-%m-%d %H:%M:%S"),
            f"{r.duration_s:.2f}s" if r.duration_s is not None else "",
            ", ".join(f"{s.stage}:{s.status}" for s in r.stages),
            r.message or "",
        ]
        for r in runs
    ]
    print_table(
        "Runs", ["run", "status", "trigger", "started (UTC)", "duration", "stages", "message"], rows
    )


@runs_app.command("show")
@handle_errors
def show(
    run_id: Annotated[str, typer.Argument(help="A run id (or a unique prefix of one).")],
    project: ProjectOption = None,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """Show one run and its stages."""
    from dataflow.metadata import RunStore, open_metadata

    db = open_metadata(settings_for(project).metadata_url)
    try:
        run = RunStore(db).get(run_id)
    finally:
        db.dispose()
    if output is OutputFormat.JSON:
        print_json(asdict(run))
        return
    out = console()
    out.print(
        f"Run {run.run_id} — {run.status} ({run.trigger}), started "
        f"{run.started_at:%Y-%m-%d %H:%M:%S} UTC"
        + (f", {run.duration_s:.2f}s" if run.duration_s is not None else "")
    )
    if run.message:
        out.print(run.message)
    rows = [
        [
            s.stage,
            s.status,
            f"{s.duration_s:.2f}s" if s.duration_s is not None else "",
            s.rows,
            s.bytes,
            s.requests,
            s.errors,
            s.message or "",
        ]
        for s in run.stages
    ]
    print_table(
        None,
        ["stage", "status", "duration", "rows", "bytes", "requests", "errors", "message"],
        rows,
    )
    for stage in run.stages:
        endpoints = stage.details.get("endpoints") if stage.details else None
        if endpoints:
            print_table(
                f"{stage.stage} by endpoint",
                ["endpoint", "requests", "ok", "errors", "rows", "credits", "files", "skipped"],
                [
                    [
                        name,
                        e.get("requests"),
                        e.get("ok"),
                        e.get("errors"),
                        e.get("rows"),
                        e.get("credits"),
                        e.get("files"),
                        e.get("skipped"),
                    ]
                    for name, e in endpoints.items()
                ],
            )
        failures = stage.details.get("failures") if stage.details else None
        if failures:
            total = stage.details.get("failures_total", len(failures))
            title = f"{stage.stage}: {total} request(s) without a usable answer"
            if total > len(failures):
                title += f" (the first {len(failures)} shown)"
            print_table(
                title,
                ["endpoint", "symbol", "interval", "status", "error"],
                [
                    [f.get("endpoint"), f.get("symbol"), f.get("interval"), f.get("status"),
                     f.get("error")]
                    for f in failures
                ],
            )  # fmt: skip
