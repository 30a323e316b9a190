"""`dataflow crawl PATH_OR_URL --table DB.T`: the Glue-crawler equivalent.

PATH_OR_URL is a path inside the warehouse (``raw/twelvedata/quote``), a local folder, or an
``s3://`` URL (read with the project's S3 settings). The data format is ``--data-format``
because ``--format`` is, as in every command, the output format (table or json).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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

if TYPE_CHECKING:
    from dataflow.catalog.crawler import CrawlResult
    from dataflow.config import Settings
    from dataflow.storage.objectstore import ObjectStore


def register(app: typer.Typer) -> None:
    """Add the `crawl` command to the application."""
    app.command("crawl")(crawl_command)


def parse_table(value: str) -> tuple[str, str]:
    """``"raw.quote"`` -> ``("raw", "quote")``.

    Raises:
        ConfigError: not exactly ``DATABASE.TABLE``.

    Example:
        >>> parse_table("raw.quote")
        ('raw', 'quote')
    """
    from dataflow.catalog.crawler import check_table_name
    from dataflow.errors import ConfigError

    database, sep, table = value.partition(".")
    if not sep or not database or not table or "." in table:
        raise ConfigError(f"--table must be DATABASE.TABLE, e.g. raw.quote (got {value!r})")
    return check_table_name("database", database), check_table_name("table", table)


def resolve_target(target: str, settings: Settings) -> tuple[ObjectStore, str]:
    """The store and the prefix in it that PATH_OR_URL names.

    * ``s3://bucket/prefix``: inside an S3 warehouse, the warehouse; else a store on that URL.
    * an existing local folder: inside a local warehouse, the warehouse; else a store on it.
    * anything else: a path inside the warehouse, e.g. ``raw/twelvedata/quote``.
    """
    from dataflow.storage.objectstore import LocalStore, S3Store, open_store

    if "://" in target:
        url = target.rstrip("/")
        remote = settings.warehouse_uri
        if settings.warehouse_is_remote and (url + "/").startswith(remote + "/"):
            return open_store(settings), url[len(remote) :].strip("/")
        return S3Store(url, settings.storage.s3), ""
    folder = Path(target).expanduser()
    if folder.is_dir():
        folder = folder.resolve()
        if not settings.warehouse_is_remote:
            warehouse = Path(settings.warehouse_uri).resolve()
            if folder == warehouse:
                return open_store(settings), ""
            if warehouse in folder.parents:
                return open_store(settings), folder.relative_to(warehouse).as_posix()
        return LocalStore(folder), ""
    return open_store(settings), target.strip("/")


@handle_errors
def crawl_command(
    target: Annotated[
        str,
        typer.Argument(
            metavar="PATH_OR_URL",
            help="A path in the warehouse (raw/twelvedata/quote), a local folder, or s3://.",
        ),
    ],
    table: Annotated[
        str, typer.Option("--table", "-t", help="The table to register, DATABASE.TABLE.")
    ],
    data_format: Annotated[
        str,
        typer.Option("--data-format", help="Format of the files: auto, json, csv or parquet."),
    ] = "auto",
    update_behavior: Annotated[
        str,
        typer.Option(
            "--update-behavior",
            help="Schema changes: UPDATE_IN_DATABASE (apply) or LOG (report only).",
        ),
    ] = "UPDATE_IN_DATABASE",
    delete_behavior: Annotated[
        str,
        typer.Option(
            "--delete-behavior",
            help="Vanished partitions/table: DEPRECATE_IN_DATABASE, DELETE_FROM_DATABASE or LOG.",
        ),
    ] = "DEPRECATE_IN_DATABASE",
    recrawl: Annotated[
        str,
        typer.Option(
            "--recrawl", help="everything, or new-folders (only unregistered partitions)."
        ),
    ] = "everything",
    sample_files: Annotated[
        int | None,
        typer.Option("--sample-files", help="Read at most N files per partition folder."),
    ] = None,
    project: ProjectOption = None,
    output: FormatOption = OutputFormat.TABLE,
    debug: DebugOption = False,  # noqa: ARG001 (read by handle_errors)
) -> None:
    """Infer the schema of files and register them as an external table (Glue crawler)."""
    from dataflow.catalog.crawler import crawl
    from dataflow.catalog.external import ExternalCatalog
    from dataflow.metadata import open_metadata

    database, name = parse_table(table)
    settings = settings_for(project)
    store, prefix = resolve_target(target, settings)
    db = open_metadata(settings.metadata_url)
    try:
        result = crawl(
            store,
            prefix,
            catalog=ExternalCatalog(db),
            database=database,
            table=name,
            fmt=data_format.lower(),
            update_behavior=update_behavior.upper(),
            delete_behavior=delete_behavior.upper(),
            recrawl=recrawl.lower(),
            sample_files=sample_files,
        )
    finally:
        db.dispose()
    if output is OutputFormat.JSON:
        print_json(result.to_dict())
        return
    _print_result(result)


def _print_result(result: CrawlResult) -> None:
    from dataflow.cli.common import console

    out = console()
    if result.deleted:
        headline = "deleted (no data files any more)"
    elif result.created:
        headline = f"created, version {result.version}"
    elif result.changed:
        headline = f"updated, version {result.version}"
    else:
        headline = f"no changes, version {result.version}"
    out.print(f"{result.table}: {headline}", markup=False)
    rows: list[tuple[str, str, str]] = []
    rows += [("column added", c.name, c.type) for c in result.columns_added]
    rows += [
        ("column changed", c.name, f"{c.old_type} -> {c.new_type}") for c in result.columns_changed
    ]
    rows += [("column removed", c.name, c.type) for c in result.columns_removed]
    rows += [("partition added", "/".join(v), "") for v in result.partitions_added]
    rows += [("partition removed", "/".join(v), "") for v in result.partitions_removed]
    rows += [("partition deprecated", "/".join(v), "") for v in result.partitions_deprecated]
    if result.deprecated:
        rows.append(("table deprecated", result.table, "no data files any more"))
    if rows:
        print_table("changes", ["change", "name", "detail"], rows)
    for line in result.logged_only:
        out.print(f"logged only: {line}", markup=False)
    for line in result.skipped:
        out.print(f"skipped: {line}", markup=False)
    out.print(
        f"{result.files} file(s), {result.records} record(s), {result.bytes} byte(s); "
        f"{result.files_read} file(s) read",
        markup=False,
    )
