"""The `dataflow` command line. Thin: parse arguments, call the library, render with Rich.

Command modules are imported here, but each keeps its heavy imports (httpx, SQLAlchemy, uvicorn,
...) inside the command bodies so that `dataflow --help` stays fast.
"""

from __future__ import annotations

import os
import sys

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
    """Entry point of the `dataflow` script and `python -m dataflow`.

    Commands turn Dataflow's own errors into one line and their exit code (``handle_errors``).
    Whatever else escapes is still one line, never a traceback (``DATAFLOW_DEBUG=1`` shows it):
    an operating-system error (a path that cannot be read or written, a port in use) exits 2
    like any other problem of the environment it names, anything else exits 1.
    """
    _register()
    try:
        app()
    except Exception as exc:
        if os.environ.get("DATAFLOW_DEBUG") or "--debug" in sys.argv:
            raise
        text = " ".join(str(exc).split()) or type(exc).__name__
        if isinstance(exc, OSError):
            print(f"error: {text} — check the path or address it names", file=sys.stderr)
            sys.exit(2)
        print(
            f"error: unexpected {type(exc).__name__}: {text} — rerun with DATAFLOW_DEBUG=1 for "
            "the details, and report it",
            file=sys.stderr,
        )
        sys.exit(1)
