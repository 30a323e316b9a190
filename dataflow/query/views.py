"""What each view of a query session reads: the SQL behind an Iceberg or an external table.

Iceberg tables read the current snapshot's Parquet files (columns matched by Iceberg field id);
external tables read the files of their registered partitions with ``read_json``, ``read_csv`` or
``read_parquet`` and Hive partition columns as VARCHAR.

Example:
    >>> quote_literal("it's"), quote_identifier('a"b')
    ("'it''s'", '"a""b"')
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from dataflow.catalog.external import ExternalCatalog, ExternalTable
from dataflow.errors import ConfigError

if TYPE_CHECKING:
    import duckdb
    from pyiceberg.table import DataScan, FileScanTask, Table


JSON_MAX_OBJECT_SIZE = 64 * 1024 * 1024
"""``maximum_object_size`` of ``read_json``: a 5000-bar time series envelope is a ~1 MB line."""

_NDJSON_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")
_HIVE_TO_DUCKDB = {
    "string": "VARCHAR",
    "varchar": "VARCHAR",
    "char": "VARCHAR",
    "boolean": "BOOLEAN",
    "tinyint": "TINYINT",
    "smallint": "SMALLINT",
    "int": "INTEGER",
    "integer": "INTEGER",
    "bigint": "BIGINT",
    "float": "FLOAT",
    "double": "DOUBLE",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "binary": "BLOB",
}


def iceberg_select(
    table: Table,
    con: duckdb.DuckDBPyConnection,
    *,
    remote: bool,
    scan: DataScan | None = None,
    tasks: Sequence[FileScanTask] | None = None,
) -> str:
    """The SELECT a view of an Iceberg table runs: the files of ``scan`` (default: all current).

    ``scan`` is a pyiceberg scan pinned to one snapshot and possibly pruned by a row filter;
    its schema is the snapshot's (time travel reads the columns of that time). Local data
    files are read by ``read_parquet`` with the schema given by field id, as the Iceberg spec
    projects columns (a column added later reads as NULL from older files); ``tasks`` are
    the scan's planned files when the caller has them already. A table with
    delete files, or on a remote warehouse (DuckDB has no S3 access without the httpfs
    extension, which is never downloaded), is read through pyiceberg into Arrow.
    """
    scan = scan if scan is not None else table.scan()
    schema = scan.projection()
    arrow_schema = schema.as_arrow()
    kinds = [str(kind) for kind in con.from_arrow(arrow_schema.empty_table()).types]
    if not remote:
        tasks = list(scan.plan_files()) if tasks is None else tasks
        if not any(task.delete_files for task in tasks):
            files = [local_path(task.file.file_path) for task in tasks]
            if not files:
                return _empty_select(zip(arrow_schema.names, kinds, strict=True))
            mapping = ", ".join(
                f"{field.field_id}: {{name: {quote_literal(field.name)}, "
                f"type: {quote_literal(kind)}, default_value: NULL}}"
                for field, kind in zip(schema.fields, kinds, strict=True)
            )
            return (
                f"SELECT * FROM read_parquet({_list(files)}, schema = MAP {{{mapping}}}, "
                "hive_partitioning = false)"
            )
    relation = "__iceberg_" + "_".join(re.sub(r"\W", "_", part) for part in table.name())
    con.register(relation, scan.to_arrow())
    return f"SELECT * FROM {quote_identifier(relation)}"


def external_files(table: ExternalTable, catalog: ExternalCatalog) -> list[str]:
    """The data files of an external table's registered, live partitions (what Athena reads).

    Raises:
        ConfigError: the table is on S3 (not readable by this engine yet).
    """
    from dataflow.catalog.crawler import DEPRECATED_PARAMETER

    if is_remote(table.location):
        raise ConfigError(
            f"table {table.full_name} is at {table.location.split('://')[0]}://, which "
            "`dataflow query` cannot read yet — query a table in a local warehouse"
        )
    if table.partition_keys:
        folders = [
            local_path(p.location)
            for p in catalog.partitions(table.database, table.name)
            if DEPRECATED_PARAMETER not in p.parameters and not is_remote(p.location)
        ]
    else:
        folders = [local_path(table.location)]
    return [path for folder in folders for path in _data_files(folder)]


def external_select(
    table: ExternalTable, catalog: ExternalCatalog, files: Sequence[str] | None = None
) -> str:
    """The SELECT a view of an external table runs: the files of its registered partitions.

    Partition columns come from the ``key=value`` folders as strings (Hive's partition keys
    are strings in Glue). Only partitions in the catalog are read, as Athena does; a
    partition or table deprecated by the crawler is not.

    Raises:
        ConfigError: the table is on S3 (not readable by this engine yet) or of an unknown
            classification.
    """
    files = external_files(table, catalog) if files is None else files
    if not files:
        columns = [*table.columns, *table.partition_keys]
        return _empty_select((c.name, _duckdb_type(c.type)) for c in columns)
    common = "hive_partitioning = true, hive_types_autocast = false, union_by_name = true"
    kind = table.classification.lower()
    if kind == "json":
        ndjson = all(path.endswith(_NDJSON_SUFFIXES) for path in files)
        gzip = table.parameters.get("compressionType") == "gzip" and all(
            path.endswith(".gz") for path in files
        )
        return (
            f"SELECT * FROM read_json({_list(files)}, "
            f"format = '{'newline_delimited' if ndjson else 'auto'}', "
            f"compression = '{'gzip' if gzip else 'auto'}', "
            f"maximum_object_size = {JSON_MAX_OBJECT_SIZE}, {_json_columns(table)}{common})"
        )
    if kind == "csv":
        delimiter = table.parameters.get("delimiter")
        header = table.parameters.get("skip.header.line.count") == "1"
        options = f"header = {str(header).lower()}"
        if delimiter:
            options += f", delim = {quote_literal(delimiter)}"
        return f"SELECT * FROM read_csv({_list(files)}, {options}, {common})"
    if kind == "parquet":
        return f"SELECT * FROM read_parquet({_list(files)}, {common})"
    raise ConfigError(
        f"table {table.full_name} has classification {table.classification!r}; "
        "`dataflow query` reads json, csv and parquet"
    )


def _json_columns(table: ExternalTable) -> str:
    """``columns = {...}, `` when a column's objects hold keys equal but for case, else ``''``.

    DuckDB's names are case-insensitive: a raw ``payload`` that is ``{"META": {...}}`` in a
    multi-symbol answer and ``{"meta": {...}}`` in a single-symbol one cannot be one STRUCT
    ("Duplicate name meta"). Such a column is read as JSON text (``payload ->> '$.meta'``)
    and the others with their crawled types, so the table stays readable.
    """
    from dataflow.catalog import hivetypes

    def clashes(kind: hivetypes.HiveType) -> bool:
        if isinstance(kind, hivetypes.Array):
            return clashes(kind.element)
        if isinstance(kind, hivetypes.MapType):
            return clashes(kind.value)
        if isinstance(kind, hivetypes.Struct):
            names = [name.lower() for name in kind.fields]
            return len(set(names)) < len(names) or any(map(clashes, kind.fields.values()))
        return False

    def parsed(hive: str) -> hivetypes.HiveType:
        try:
            return hivetypes.parse(hive)
        except ValueError:
            return "string"

    if not any(clashes(parsed(column.type)) for column in table.columns):
        return ""
    kinds = {
        column.name: "JSON" if clashes(parsed(column.type)) else _duckdb_type(column.type)
        for column in table.columns
    }
    listing = ", ".join(f"{quote_literal(n)}: {quote_literal(k)}" for n, k in kinds.items())
    return f"columns = {{{listing}}}, "


def _data_files(folder: str) -> list[str]:
    # Hidden names (_SUCCESS, .crc, _manifests) are not data, as for the crawler and Athena.
    found: list[str] = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(("_", ".")))
        found += [os.path.join(root, n) for n in sorted(names) if not n.startswith(("_", "."))]
    return found


def _duckdb_type(hive: str) -> str:
    """The DuckDB type of a Hive type string (``array<struct<a:int>>`` -> ``STRUCT(...)[]``)."""
    from dataflow.catalog import hivetypes

    def render(kind: hivetypes.HiveType) -> str:
        if isinstance(kind, hivetypes.Array):
            return f"{render(kind.element)}[]"
        if isinstance(kind, hivetypes.MapType):
            return f"MAP({render(kind.key)}, {render(kind.value)})"
        if isinstance(kind, hivetypes.Struct):
            fields = ", ".join(f"{quote_identifier(n)} {render(t)}" for n, t in kind.fields.items())
            return f"STRUCT({fields})"
        base = kind.split("(", 1)[0].strip().lower()
        if base == "decimal":
            return kind.upper()
        return _HIVE_TO_DUCKDB.get(base, "VARCHAR")

    try:
        return render(hivetypes.parse(hive))
    except ValueError:
        return "VARCHAR"


def _empty_select(columns: Iterable[tuple[str, str]]) -> str:
    listing = ", ".join(
        f"CAST(NULL AS {kind}) AS {quote_identifier(name)}" for name, kind in columns
    )
    return f"SELECT {listing or 'NULL AS empty'} WHERE false"


def _list(paths: Sequence[str]) -> str:
    return "[" + ", ".join(quote_literal(path) for path in paths) + "]"


# --- helpers -------------------------------------------------------------------------------------


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def is_remote(location: str) -> bool:
    return "://" in location and not location.startswith("file://")


def local_path(location: str) -> str:
    return location.removeprefix("file://")


def folder_of(path: str) -> str:
    return os.path.join(str(Path(path).resolve()), "")


__all__ = [
    "JSON_MAX_OBJECT_SIZE",
    "external_files",
    "external_select",
    "iceberg_select",
]
