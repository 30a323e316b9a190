"""`dataflow transform`: raw zone -> Iceberg clean tables through the SQL models."""

from __future__ import annotations

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

TablesOption = Annotated[
    str | None,
    typer.Option("--tables", help="Comma-separated tables to build (default: all models)."),
]
FullRefreshOption = Annotated[
    bool,
    typer.Option("--full-refresh", help="Rebuild the tables from every raw file."),
]


def register(app: typer.Typer) -> None:
    """Add the ``transform`` command."""
    app.command("transform")(transform)


@handle_errors
def transform(
    project: ProjectOption = None,
    tables: TablesOption = None,
    full_refresh: FullRefreshOption = False,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """Transform new raw files into the Iceberg clean tables (upsert, bookmarked)."""
    from dataflow.monitor.logs import configure_logging
    from dataflow.pipeline import RunOptions, run_pipeline
    from dataflow.transform import TransformStage
    from dataflow.transform.models import discover_models, select_models

    settings = settings_for(project)
    chosen = [t.strip() for t in tables.split(",") if t.strip()] if tables else None
    select_models(discover_models(settings.project_dir), chosen)  # bad names fail before a run
    configure_logging(level=settings.logging.level, rich_console=console(stderr=True))
    stage = TransformStage(tables=chosen, full_refresh=full_refresh)
    result = run_pipeline(settings, RunOptions(full_refresh=full_refresh), stages=[stage])
    outcome = result.results["transform"]
    per_table = outcome.details.get("tables", {})
    if output is OutputFormat.JSON:
        print_json({"run_id": result.run.run_id, "status": result.status, "tables": per_table})
    else:
        columns = ["table", "files", "rows in", "rows out", "quarantined", "seconds"]
        rows = [
            [name, s["files"], s["rows_in"], s["rows_out"], s["quarantined"], s["seconds"]]
            for name, s in per_table.items()
        ]
        print_table(f"transform {result.run.run_id}: {result.status}", columns, rows)
    if result.status == "failed":
        raise typer.Exit(1)
