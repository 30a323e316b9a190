"""`dataflow raw`: replay saved API responses into the raw zone, and list what it holds."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from dataflow.cli.common import (
    DebugOption,
    FormatOption,
    OutputFormat,
    ProjectOption,
    handle_errors,
    print_json,
    print_table,
    settings_for,
)

raw_app = typer.Typer(
    name="raw",
    help="The immutable raw zone: import saved API responses, list stored files.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the `raw` command group to the application."""
    app.add_typer(raw_app, name="raw")


def parse_params(values: list[str] | None) -> dict[str, str]:
    """``["interval=1day", "outputsize=30"]`` -> ``{"interval": "1day", "outputsize": "30"}``.

    Raises:
        ConfigError: an item is not ``key=value``.

    Example:
        >>> parse_params(["interval=1day", "start_date=2024-01-01 09:30:00"])
        {'interval': '1day', 'start_date': '2024-01-01 09:30:00'}
    """
    from dataflow.errors import ConfigError

    params: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param {item!r}: expected key=value, e.g. --param interval=1day")
        params[key.strip()] = value
    return params


@raw_app.command("import")
@handle_errors
def import_command(
    files: Annotated[
        list[Path], typer.Argument(help="Saved API responses: JSON files, one body each.")
    ],
    endpoint: Annotated[
        str, typer.Option("--endpoint", "-e", help="The endpoint they answered, e.g. time_series.")
    ],
    symbol: Annotated[
        str | None,
        typer.Option("--symbol", "-s", help="Symbol(s) asked for (default: read from each body)."),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", help="A request parameter as key=value (repeatable)."),
    ] = None,
    run_id: Annotated[
        str | None, typer.Option("--run-id", help="Run id (default: import-<time>-<hex>).")
    ] = None,
    project: ProjectOption = None,
    output: FormatOption = OutputFormat.TABLE,
    debug: DebugOption = False,  # noqa: ARG001 (read by handle_errors)
) -> None:
    """Store saved API responses as raw-zone envelopes (replay of real data)."""
    from dataflow.cli.common import console
    from dataflow.storage import import_responses, open_store

    params = parse_params(param)
    store = open_store(settings_for(project))
    result = import_responses(
        store, files, endpoint=endpoint, symbol=symbol, params=params, run_id=run_id
    )
    if output is OutputFormat.JSON:
        print_json(
            {
                "run_id": result.run_id,
                "manifest": result.manifest_key,
                "files": [asdict(raw_file) for raw_file in result.files],
                "requests": [asdict(record) for record in result.requests],
                "warnings": result.warnings,
            }
        )
        return
    err = console(stderr=True)
    for warning in result.warnings:
        err.print(f"warning: {warning}", markup=False)
    print_table(
        f"raw import {result.run_id}",
        ["file", "symbols", "status", "outcome", "rows", "stored in"],
        [
            (
                source.name,
                ",".join(record.symbols),
                record.status_code,
                record.outcome,
                record.rows,
                record.file,
            )
            for source, record in zip(files, result.requests, strict=True)
        ],
    )
    console().print(
        f"{len(result.requests)} response(s) in {len(result.files)} raw file(s); "
        f"manifest {store.url_for(result.manifest_key)}",
        markup=False,
    )


@raw_app.command("ls")
@handle_errors
def ls_command(
    endpoint: Annotated[
        str | None, typer.Option("--endpoint", "-e", help="Only this endpoint.")
    ] = None,
    source: Annotated[str, typer.Option("--source", help="The data source.")] = "twelvedata",
    project: ProjectOption = None,
    output: FormatOption = OutputFormat.TABLE,
    debug: DebugOption = False,  # noqa: ARG001 (read by handle_errors)
) -> None:
    """List the raw files stored, by endpoint, ingest date and run."""
    from dataflow.storage import list_raw, open_store

    store = open_store(settings_for(project))
    found = list_raw(store, source=source, endpoint=endpoint)
    if output is OutputFormat.JSON:
        print_json([asdict(info) for info in found])
        return
    print_table(
        f"raw files in {store.uri}",
        ["endpoint", "ingest_date", "run_id", "seq", "bytes", "key"],
        [
            (info.endpoint, info.ingest_date, info.run_id, info.seq, info.size, info.key)
            for info in found
        ],
    )
