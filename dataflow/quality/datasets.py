"""The datasets a ruleset is evaluated on, as views of one DuckDB connection.

The dataset under test is the view ``"primary"`` (the name Glue gives it in CustomSql); each
reference dataset is a view named by its alias. A dataset is either a data file (CSV, Parquet,
JSON / NDJSON — no project needed) or a table of the project's catalog (``market.time_series``,
an Iceberg table read at its current snapshot, or an external table such as ``raw.quote``),
read with the same SQL as ``dataflow query`` (``dataflow.query.views``).

Example:
    >>> con = connect()
    >>> register_file(con, "prices.csv", "primary")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from dataflow.errors import ConfigError, NoSuchTableError, StorageError
from dataflow.query.views import external_select, iceberg_select, quote_identifier, quote_literal

if TYPE_CHECKING:
    from dataflow.config import Settings
    from dataflow.metadata.db import MetadataDB

__all__ = ["connect", "register_file", "register_table", "split_table_name"]

_READERS = {
    ".csv": "read_csv",
    ".tsv": "read_csv",
    ".parquet": "read_parquet",
    ".json": "read_json",
    ".jsonl": "read_json",
    ".ndjson": "read_json",
}


def connect() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection in UTC (timestamps compare as Glue's Spark does)."""
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    return con


def register_file(con: duckdb.DuckDBPyConnection, path: str | Path, alias: str) -> None:
    """Make the view ``alias`` over a CSV, Parquet or JSON file (or a folder of Parquet files).

    Raises:
        ConfigError: the file does not exist or its type is not one of those.
        StorageError: DuckDB cannot read it.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"no file {path} — give a CSV, Parquet or JSON file")
    if path.is_dir():
        source, reader = str(path / "**" / "*.parquet"), "read_parquet"
    else:
        suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
        reader = _READERS.get(suffixes[-1] if suffixes else "", "")
        source = str(path)
        if not reader:
            raise ConfigError(
                f"{path.name}: unknown file type — use .csv, .tsv, .parquet, .json, .jsonl "
                "or .ndjson"
            )
    try:
        con.execute(
            f"CREATE OR REPLACE VIEW {quote_identifier(alias)} AS "
            f"SELECT * FROM {reader}({quote_literal(source)})"
        )
        con.execute(f"SELECT * FROM {quote_identifier(alias)} LIMIT 0").fetchall()
    except duckdb.Error as exc:
        raise StorageError(f"cannot read {path}: {str(exc).splitlines()[0]}") from exc


def split_table_name(name: str, default_database: str) -> tuple[str, str]:
    """``"market.time_series"`` -> ``("market", "time_series")``; bare names use the default.

    Example:
        >>> split_table_name("time_series", "market")
        ('market', 'time_series')
    """
    database, _, table = name.lower().rpartition(".")
    return database or default_database, table


def register_table(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    db: MetadataDB,
    name: str,
    alias: str,
) -> str | None:
    """Make the view ``alias`` over a catalog table; returns its Iceberg snapshot id, if any.

    Raises:
        NoSuchTableError: neither an Iceberg nor an external table has that name.
    """
    from dataflow.catalog.external import ExternalCatalog
    from dataflow.catalog.iceberg import load_table, open_catalog

    database, table_name = split_table_name(name, settings.catalog.namespace)
    external = ExternalCatalog(db).find(database, table_name)
    snapshot: str | None = None
    if external is not None and not external.deprecated:
        body = external_select(external, ExternalCatalog(db))
    else:
        table = load_table(open_catalog(settings), database, table_name)
        if table is None:
            raise NoSuchTableError(
                f"no table {database}.{table_name} — see `dataflow catalog tables`"
            )
        current = table.current_snapshot()
        snapshot = None if current is None else str(current.snapshot_id)
        body = iceberg_select(table, con, remote=settings.warehouse_is_remote)
    try:
        con.execute(f"CREATE OR REPLACE VIEW {quote_identifier(alias)} AS {body}")
    except duckdb.Error as exc:
        raise StorageError(
            f"cannot read table {database}.{table_name}: {str(exc).splitlines()[0]}"
        ) from exc
    return snapshot
