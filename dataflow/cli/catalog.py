"""`dataflow catalog`: databases, tables, and a table's columns, versions, partitions, snapshots."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dataflow.cli.common import (
    FormatOption,
    OutputFormat,
    ProjectOption,
    console,
    handle_errors,
    human_size,
    print_json,
    print_table,
    settings_for,
)

if TYPE_CHECKING:
    from dataflow.catalog.tables import DataCatalog

catalog_app = typer.Typer(
    help="The Data Catalog: Iceberg clean tables and crawled external tables.",
    no_args_is_help=True,
)
TableArgument = Annotated[str, typer.Argument(help="DATABASE.TABLE, e.g. market.time_series.")]


def register(app: typer.Typer) -> None:
    """Add the `catalog` group."""
    app.add_typer(catalog_app, name="catalog")


@contextmanager
def _catalog(project: Any) -> Iterator[DataCatalog]:
    from dataflow.catalog.tables import DataCatalog
    from dataflow.metadata import open_metadata

    settings = settings_for(project)
    db = open_metadata(settings.metadata_url)
    try:
        yield DataCatalog(settings, db)
    finally:
        db.dispose()


def _name(text: str) -> tuple[str, str]:
    from dataflow.catalog.tables import split_table_name

    return split_table_name(text)


@catalog_app.command("databases")
@handle_errors
def databases(project: ProjectOption = None, output: FormatOption = OutputFormat.TABLE) -> None:
    """List the databases (Iceberg namespaces and crawled databases)."""
    with _catalog(project) as catalog:
        names = catalog.databases()
        counts = {name: len(catalog.tables(name)) for name in names}
    if output is OutputFormat.JSON:
        print_json([{"name": name, "tables": counts[name]} for name in names])
        return
    print_table("Databases", ["database", "tables"], [[n, counts[n]] for n in names])


@catalog_app.command("tables")
@handle_errors
def tables(
    database: Annotated[str | None, typer.Argument(help="Only this database.")] = None,
    project: ProjectOption = None,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """List the tables: database, name, type, records, size, location."""
    with _catalog(project) as catalog:
        found = catalog.tables(database.lower() if database else None)
    if output is OutputFormat.JSON:
        print_json(
            [
                {
                    "database": t.database,
                    "name": t.name,
                    "type": t.type,
                    "location": t.location,
                    "classification": t.classification,
                    "records": int(t.parameters.get("recordCount", 0) or 0),
                    "updated_at": t.updated_at,
                }
                for t in found
            ]
        )
        return
    if not found:
        console().print("No tables yet — run `dataflow run` first.")
        return
    rows = [
        [t.database, t.name, t.type, t.classification, t.parameters.get("recordCount", ""),
         human_size(t.parameters.get("sizeKey")), t.updated_at and f"{t.updated_at:%Y-%m-%d %H:%M}",
         t.location]
        for t in found
    ]  # fmt: skip
    print_table("Tables", ["database", "table", "type", "format", "records", "size",
                           "updated (UTC)", "location"], rows)  # fmt: skip


@catalog_app.command("show")
@handle_errors
def show(table: TableArgument, project: ProjectOption = None,
         output: FormatOption = OutputFormat.TABLE) -> None:  # fmt: skip
    """Show a table: columns, partition keys, Glue-style parameters, partitions."""
    with _catalog(project) as catalog:
        info = catalog.show(*_name(table))
    if output is OutputFormat.JSON:
        print_json(info.as_dict())
        return
    out = console()
    out.print(f"[bold]{info.full_name}[/] — {info.type} table ({info.classification})")
    if info.description:
        out.print(info.description)
    out.print(f"location: {info.location}")
    print_table("Columns", ["column", "type"], [[c["name"], c["type"]] for c in info.columns])
    if info.partition_keys:
        print_table("Partition keys", ["key", "type"],
                    [[k["name"], k["type"]] for k in info.partition_keys])  # fmt: skip
    print_table("Parameters", ["parameter", "value"], sorted(info.parameters.items()))
    partitions = info.extra.get("partitions")
    if partitions:
        print_table(f"Partitions ({len(partitions)})", ["values", "location"],
                    [[", ".join(p["values"]), p["location"]] for p in partitions[:50]])  # fmt: skip


@catalog_app.command("versions")
@handle_errors
def versions(table: TableArgument, project: ProjectOption = None,
             output: FormatOption = OutputFormat.TABLE) -> None:  # fmt: skip
    """Schema versions of a table, oldest first, each with when it came into use."""
    with _catalog(project) as catalog:
        found = catalog.versions(*_name(table))
    if output is OutputFormat.JSON:
        print_json(found)
        return
    rows = [
        [v["version"], v["archived_at"] and f"{v['archived_at']:%Y-%m-%d %H:%M:%S}",
         ", ".join(f"{c['name']} {c['type']}" for c in v["columns"])]
        for v in found
    ]  # fmt: skip
    print_table(f"Versions of {table}", ["version", "since (UTC)", "columns"], rows)


@catalog_app.command("partitions")
@handle_errors
def partitions(table: TableArgument, project: ProjectOption = None,
               output: FormatOption = OutputFormat.TABLE) -> None:  # fmt: skip
    """Partitions of a table: values and location (external) or records and files (Iceberg)."""
    with _catalog(project) as catalog:
        found = catalog.partitions(*_name(table))
    if output is OutputFormat.JSON:
        print_json(found)
        return
    if not found:
        console().print(f"{table} has no partitions.")
        return
    render: Callable[[dict[str, Any]], list[Any]]
    if "location" in found[0]:
        columns = ["values", "location"]
        render = lambda p: [", ".join(p["values"]), p["location"]]  # noqa: E731
    else:
        columns = ["partition", "records", "files", "size"]
        render = lambda p: [  # noqa: E731
            ", ".join(f"{k}={v}" for k, v in p["values"].items()), p["records"], p["files"],
            human_size(p["bytes"]),
        ]  # fmt: skip
    print_table(f"Partitions of {table}", columns, [render(p) for p in found])


@catalog_app.command("snapshots")
@handle_errors
def snapshots(table: TableArgument, project: ProjectOption = None,
              output: FormatOption = OutputFormat.TABLE) -> None:  # fmt: skip
    """Snapshots of an Iceberg table, oldest first (each transform commit makes one)."""
    with _catalog(project) as catalog:
        found = catalog.snapshots(*_name(table))
    if output is OutputFormat.JSON:
        print_json(found)
        return
    rows = [
        [s["snapshot_id"], f"{s['committed_at']:%Y-%m-%d %H:%M:%S}", s["operation"],
         s["added_records"], s["total_records"], s["run_id"] or ""]
        for s in found
    ]  # fmt: skip
    print_table(f"Snapshots of {table}", ["snapshot", "committed (UTC)", "operation", "added",
                                          "total", "run"], rows)  # fmt: skip


@catalog_app.command("relocate")
@handle_errors
def relocate(project: ProjectOption = None) -> None:
    """After moving or copying a project: rebuild here the tables the catalog has elsewhere.

    The catalog forgets its entries at the old place (no file is touched there); the next
    `dataflow run` rebuilds those tables in this warehouse from the raw zone, without fetching.
    """
    from dataflow.catalog.relocate import relocate as relocate_catalog

    done = relocate_catalog(settings_for(project))
    if not done.tables and not done.external:
        console().print(f"nothing to relocate: every table is in {done.new}")
        return
    console().print(
        f"forgot {len(done.tables)} table(s) made in {done.old} "
        f"({', '.join(done.tables) or 'none'}); {done.external} crawled table(s) now point to "
        f"{done.new} — run `dataflow run` to rebuild them here from the raw zone"
    )
