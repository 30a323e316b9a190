"""The `dataflow` command line. Thin: parse arguments, call the library, render with Rich.

Command modules are imported here, but each keeps its heavy imports (httpx, SQLAlchemy, uvicorn,
...) inside the command bodies so that `dataflow --help` stays fast.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="dataflow",
    help="Dataflow: API ingestion, raw zone, ETL, quality, SQL and monitoring in one tool.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    from dataflow.cli import (
        catalog,
        crawl,
        dashboard,
        dq,
        logs,
        monitor,
        pipeline,
        project,
        query,
        raw,
        runs,
        schedule,
        serve,
        simulator,
        sql,
        transform,
        validate,
    )

    for module in (
        project,
        pipeline,
        transform,
        crawl,
        catalog,
        query,
        sql,
        dq,
        runs,
        logs,
        monitor,
        schedule,
        serve,
        dashboard,
        raw,
        simulator,
        validate,
    ):
        module.register(app)


def main() -> None:
    """Entry point of the `dataflow` script and `python -m dataflow`."""
    _register()
    app()
