"""A read-only SQL session over the whole catalog, on an in-memory DuckDB connection.

Every cataloged table is addressable as ``database.table``; unqualified names resolve in the
default database (the Iceberg namespace, ``market``):

* **Iceberg tables** (``market.time_series``) are read at their current snapshot: the data files
  of pyiceberg's scan plan through ``read_parquet`` with the table's schema mapped by Iceberg
  field id (so renamed and added columns read right; https://iceberg.apache.org/spec/#column-projection).
  A table without files is an empty view with its columns; a table with delete files, or any
  table of a remote (``s3://``) warehouse, is read through pyiceberg into Arrow.
* **External tables** (``raw.quote``) are read in place, like Athena over a Glue table: the
  files of the table's registered partitions through ``read_json`` / ``read_csv`` /
  ``read_parquet``, with the partition columns (``ingest_date``) as strings.

Views are made lazily, for the tables a statement names, so opening a session costs one
catalog query however many tables there are. Statements other than queries (SELECT, WITH,
VALUES, SHOW, DESCRIBE, SUMMARIZE, EXPLAIN) are refused, and once the views can be made the
connection loses access to files outside the warehouse and table locations
(``enable_external_access=false`` with ``allowed_directories``), with its configuration locked.
The session time zone is UTC, so ``timestamptz`` columns come out as UTC datetimes.

DuckDB errors are translated here, once: a missing table is :class:`NoSuchTableError`, bad or
refused SQL :class:`ConfigError`, an unreadable data file :class:`StorageError`.

Example:
    >>> with QuerySession(settings) as session:  # doctest: +SKIP
    ...     session.execute("SELECT count(*) AS n FROM market.time_series").rows
    [(842,)]
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from dataflow.catalog.external import ExternalCatalog, ExternalTable
from dataflow.catalog.iceberg import load_table, open_catalog
from dataflow.errors import ConfigError, NoSuchTableError, StorageError
from dataflow.query.result import QueryResult

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

    from dataflow.config import Settings
    from dataflow.metadata.db import MetadataDB

ALLOWED_STATEMENTS = "SELECT, WITH, VALUES, SHOW, DESCRIBE, SUMMARIZE or EXPLAIN"
"""What a query may be (DuckDB parses all but EXPLAIN as SELECT statements)."""

_EXPLAIN = re.compile(r"^\s*EXPLAIN\s+(?:ANALY[SZ]E\s+)?", re.IGNORECASE)
_METADATA = re.compile(
    r"\b(?:show|describe|information_schema|duckdb_\w+|pg_catalog|sqlite_master)\b", re.IGNORECASE
)
_MISSING_TABLE = re.compile(r"Table with name (.+?) does not exist")
_FILE_LIKE = re.compile(r"[/\\:*?.]")


def check_statement(sql: str) -> str:
    """The one read-only statement in ``sql``, or a ConfigError that says what is allowed.

    Raises:
        ConfigError: empty text, several statements, a statement that is not a query, or SQL
            DuckDB cannot parse.

    Example:
        >>> check_statement("SELECT 1;")
        'SELECT 1'
        >>> check_statement("COPY t TO 'x.csv'")
        Traceback (most recent call last):
        ...
        dataflow.errors.ConfigError: COPY statements are not allowed: queries are read-only — \
use SELECT, WITH, VALUES, SHOW, DESCRIBE, SUMMARIZE or EXPLAIN
    """
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise _translate(exc) from exc
    if not statements:
        raise ConfigError(f"the query is empty — give one {ALLOWED_STATEMENTS} statement")
    if len(statements) > 1:
        raise ConfigError(f"{len(statements)} statements given — run one statement per query")
    statement = statements[0]
    text = statement.query.strip().rstrip(";").strip()
    if statement.type == duckdb.StatementType.EXPLAIN:
        check_statement(_EXPLAIN.sub("", text))  # EXPLAIN ANALYZE runs what it explains
    elif statement.type != duckdb.StatementType.SELECT:
        keyword = text.split(None, 1)[0].upper() if text else statement.type.name
        raise ConfigError(
            f"{keyword} statements are not allowed: queries are read-only — use "
            f"{ALLOWED_STATEMENTS}"
        )
    return text


class QuerySession:
    """An in-memory DuckDB connection that sees every catalog table as a view.

    Args:
        settings: the project's settings (warehouse, metadata database, Iceberg catalog).
        db: the metadata database (external tables); opened from the settings when omitted,
            and then closed with the session.
        default_database: where unqualified names resolve (default: the Iceberg namespace).

    Example:
        >>> with QuerySession(settings) as session:  # doctest: +SKIP
        ...     result = session.execute("SELECT ingest_date, count(*) FROM raw.quote GROUP BY 1")
    """

    def __init__(
        self,
        settings: Settings,
        db: MetadataDB | None = None,
        *,
        default_database: str | None = None,
    ) -> None:
        self.settings = settings
        self._owns_db = db is None
        if db is None:
            from dataflow.metadata import open_metadata

            db = open_metadata(settings.metadata_url)
        self.db = db
        self.default_database = (default_database or settings.catalog.namespace).lower()
        self._iceberg: Catalog | None = None
        # One cheap query: the external tables' locations bound what the connection may read.
        self._external = {
            (t.database, t.name): t for t in ExternalCatalog(db).tables() if not t.deprecated
        }
        self._views: set[tuple[str, str]] = set()
        self._schemas: set[str] = set()
        self._con = duckdb.connect(":memory:")
        self._configure()

    # --- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> QuerySession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the DuckDB connection (and the metadata database when the session opened it)."""
        self._con.close()
        if self._owns_db:
            self.db.dispose()

    # --- queries ---------------------------------------------------------------------------------

    def execute(self, sql: str, *, max_rows: int | None = None) -> QueryResult:
        """Run one read-only statement and return its rows.

        Args:
            sql: the statement (a trailing ``;`` is fine).
            max_rows: fetch at most this many rows (``truncated`` tells if there were more).

        Raises:
            ConfigError: the statement is not a query, or it is wrong (syntax, columns, types).
            NoSuchTableError: it names a table the catalog does not have.
            StorageError: a data file cannot be read.

        Example:
            >>> session.execute("SELECT 1 AS one").rows  # doctest: +SKIP
            [(1,)]
        """
        statement = check_statement(sql)
        started = time.perf_counter()
        self._prepare(statement)
        try:
            relation = self._con.sql(statement)
            if relation is None:
                return QueryResult([], [], [], elapsed=time.perf_counter() - started)
            columns = list(relation.columns)
            types = [str(kind) for kind in relation.types]
            if max_rows is None:
                rows = relation.fetchall()
            else:
                # One row more than asked tells whether there were more (DuckDB 2 relations
                # have no fetchmany: each fetch would run the query again).
                rows = relation.limit(max_rows + 1).fetchall()
            truncated = max_rows is not None and len(rows) > max_rows
            rows = rows[:max_rows] if max_rows is not None else rows
        except duckdb.Error as exc:
            raise _translate(exc, self.default_database) from exc
        return QueryResult(
            columns=columns,
            types=types,
            rows=[tuple(row) for row in rows],
            elapsed=time.perf_counter() - started,
            truncated=truncated,
        )

    def tables(self) -> list[str]:
        """Every table a query can name, as ``database.table``, sorted.

        Example:
            >>> session.tables()  # doctest: +SKIP
            ['market.quotes', 'market.time_series', 'raw.quote', 'raw.time_series']
        """
        return sorted(f"{db}.{name}" for db, name in self._all_tables())

    # --- views -----------------------------------------------------------------------------------

    def _configure(self) -> None:
        con = self._con
        con.execute("SET TimeZone = 'UTC'")
        # Nothing is ever downloaded: extensions not bundled in the wheel stay unavailable.
        con.execute("SET autoinstall_known_extensions = false")
        con.execute("SET autoload_known_extensions = false")
        self._ensure_schema(self.default_database)
        con.execute(f"SET schema = {_literal(self.default_database)}")
        if not self.settings.warehouse_is_remote:
            # Views are bound again at every query, so the folders they read stay allowed.
            allowed = {_folder(self.settings.warehouse_uri)}
            allowed |= {
                _folder(_local_path(t.location))
                for t in self._external.values()
                if not _is_remote(t.location)
            }
            listing = ", ".join(_literal(path) for path in sorted(allowed))
            con.execute(f"SET allowed_directories = [{listing}]")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")

    def _prepare(self, statement: str) -> None:
        """Make the views the statement needs; all of them for SHOW TABLES and the like."""
        names = _referenced_tables(self._con, statement)
        if names is None or (not names and _METADATA.search(statement)):
            for database, name in self._all_tables():
                self._ensure_view(database, name)
            return
        for parts in names:
            resolved = self._resolve(parts)
            if resolved is not None:
                self._ensure_view(*resolved)

    def _resolve(self, parts: list[str]) -> tuple[str, str] | None:
        """``(database, table)`` for a name the catalog should hold; None to leave it to DuckDB.

        Raises:
            NoSuchTableError: a name in a catalog database (or unqualified) that is not a table.
        """
        parts = [part.lower() for part in parts]
        if len(parts) == 3 and parts[0] == "memory":
            parts = parts[1:]
        if len(parts) == 1:
            parts = [self.default_database, parts[0]]
        if len(parts) != 2 or parts[0] in {"main", "information_schema", "pg_catalog"}:
            return None
        if any(_FILE_LIKE.search(part) for part in parts):
            return None  # a file path read by a replacement scan: DuckDB checks the access
        database, name = parts
        if (database, name) in self._views or self._lookup(database, name) is not None:
            return database, name
        if database == self.default_database or database in {db for db, _ in self._external}:
            raise NoSuchTableError(_missing(database, name))
        return None

    def _lookup(self, database: str, name: str) -> ExternalTable | Table | None:
        if (database, name) in self._external:
            return self._external[(database, name)]
        return load_table(self._catalog(), database, name)

    def _ensure_view(self, database: str, name: str) -> None:
        if (database, name) in self._views:
            return
        source = self._lookup(database, name)
        if source is None:
            raise NoSuchTableError(_missing(database, name))
        self._ensure_schema(database)
        if isinstance(source, ExternalTable):
            body = external_select(source, ExternalCatalog(self.db))
        else:
            body = iceberg_select(source, self._con, remote=self.settings.warehouse_is_remote)
        target = f"{_identifier(database)}.{_identifier(name)}"
        try:
            self._con.execute(f"CREATE OR REPLACE VIEW {target} AS {body}")
        except duckdb.Error as exc:
            raise StorageError(
                f"cannot read table {database}.{name}: {_first_line(exc)} — check its files "
                "(`dataflow crawl` refreshes an external table)"
            ) from exc
        self._views.add((database, name))

    def _ensure_schema(self, database: str) -> None:
        if database not in self._schemas:
            self._con.execute(f"CREATE SCHEMA IF NOT EXISTS {_identifier(database)}")
            self._schemas.add(database)

    def _catalog(self) -> Catalog:
        if self._iceberg is None:
            self._iceberg = open_catalog(self.settings)
        return self._iceberg

    def _all_tables(self) -> list[tuple[str, str]]:
        catalog = self._catalog()
        found = set(self._external)
        for namespace in catalog.list_namespaces():
            for identifier in catalog.list_tables(namespace):
                found.add((".".join(identifier[:-1]).lower(), identifier[-1].lower()))
        return sorted(found)


# --- what each view reads ------------------------------------------------------------------------

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


def iceberg_select(table: Table, con: duckdb.DuckDBPyConnection, *, remote: bool) -> str:
    """The SELECT a view of an Iceberg table runs: its current snapshot, current schema.

    Local data files are read by ``read_parquet`` with the schema given by field id, as the
    Iceberg spec projects columns (a column added later reads as NULL from older files). A
    table with delete files, or on a remote warehouse (DuckDB has no S3 access without the
    httpfs extension, which is never downloaded), is read through pyiceberg into Arrow.
    """
    schema = table.schema()
    arrow_schema = schema.as_arrow()
    kinds = [str(kind) for kind in con.from_arrow(arrow_schema.empty_table()).types]
    if not remote:
        tasks = list(table.scan().plan_files())
        if not any(task.delete_files for task in tasks):
            files = [_local_path(task.file.file_path) for task in tasks]
            if not files:
                return _empty_select(zip(arrow_schema.names, kinds, strict=True))
            mapping = ", ".join(
                f"{field.field_id}: {{name: {_literal(field.name)}, type: {_literal(kind)}, "
                "default_value: NULL}"
                for field, kind in zip(schema.fields, kinds, strict=True)
            )
            return (
                f"SELECT * FROM read_parquet({_list(files)}, schema = MAP {{{mapping}}}, "
                "hive_partitioning = false)"
            )
    relation = "__iceberg_" + "_".join(re.sub(r"\W", "_", part) for part in table.name())
    con.register(relation, table.scan().to_arrow())
    return f"SELECT * FROM {_identifier(relation)}"


def external_select(table: ExternalTable, catalog: ExternalCatalog) -> str:
    """The SELECT a view of an external table runs: the files of its registered partitions.

    Partition columns come from the ``key=value`` folders as strings (Hive's partition keys
    are strings in Glue). Only partitions in the catalog are read, as Athena does; a
    partition or table deprecated by the crawler is not.

    Raises:
        ConfigError: the table is on S3 (not readable by this engine yet) or of an unknown
            classification.
    """
    from dataflow.catalog.crawler import DEPRECATED_PARAMETER

    if _is_remote(table.location):
        raise ConfigError(
            f"table {table.full_name} is at {table.location.split('://')[0]}://, which "
            "`dataflow query` cannot read yet — query a table in a local warehouse"
        )
    if table.partition_keys:
        folders = [
            _local_path(p.location)
            for p in catalog.partitions(table.database, table.name)
            if DEPRECATED_PARAMETER not in p.parameters and not _is_remote(p.location)
        ]
    else:
        folders = [_local_path(table.location)]
    files = [path for folder in folders for path in _data_files(folder)]
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
            f"maximum_object_size = {JSON_MAX_OBJECT_SIZE}, {common})"
        )
    if kind == "csv":
        delimiter = table.parameters.get("delimiter")
        header = table.parameters.get("skip.header.line.count") == "1"
        options = f"header = {str(header).lower()}"
        if delimiter:
            options += f", delim = {_literal(delimiter)}"
        return f"SELECT * FROM read_csv({_list(files)}, {options}, {common})"
    if kind == "parquet":
        return f"SELECT * FROM read_parquet({_list(files)}, {common})"
    raise ConfigError(
        f"table {table.full_name} has classification {table.classification!r}; "
        "`dataflow query` reads json, csv and parquet"
    )


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
            fields = ", ".join(f"{_identifier(n)} {render(t)}" for n, t in kind.fields.items())
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
    listing = ", ".join(f"CAST(NULL AS {kind}) AS {_identifier(name)}" for name, kind in columns)
    return f"SELECT {listing or 'NULL AS empty'} WHERE false"


def _list(paths: Sequence[str]) -> str:
    return "[" + ", ".join(_literal(path) for path in paths) + "]"


# --- helpers -------------------------------------------------------------------------------------


def _referenced_tables(con: duckdb.DuckDBPyConnection, statement: str) -> list[list[str]] | None:
    """The table names a statement reads, as name parts; None when they cannot be told."""
    try:
        names = con.get_table_names(_EXPLAIN.sub("", statement), qualified=True)
    except duckdb.Error:
        # DuckDB binds USING/NATURAL joins to find the names; sqlglot only parses.
        return _sqlglot_tables(statement)
    return [_split_name(name) for name in names]


def _sqlglot_tables(statement: str) -> list[list[str]] | None:
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(_EXPLAIN.sub("", statement), read="duckdb")
    except sqlglot.errors.SqlglotError:
        return None
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    found: list[list[str]] = []
    for table in tree.find_all(exp.Table):
        parts = [part.name for part in table.parts]
        if len(parts) == 1 and parts[0].lower() in ctes:
            continue
        if parts and parts[-1]:
            found.append(parts)
    return found


def _split_name(name: str) -> list[str]:
    # get_table_names quotes the parts that need it: Market."Time Series".
    parts = re.findall(r'"((?:[^"]|"")*)"|([^.]+)', name)
    return [quoted.replace('""', '"') if quoted else bare for quoted, bare in parts]


def _translate(exc: duckdb.Error, default_database: str = "market") -> Exception:
    message = _first_line(exc)
    if isinstance(exc, duckdb.CatalogException):
        table = _MISSING_TABLE.search(message)
        if table:
            name = table.group(1).strip('"')
            if "." not in name:
                name = f"{default_database}.{name}"
            return NoSuchTableError(f"no table {name} — see `dataflow catalog tables`")
        return ConfigError(f"{message} — check the names in the query")
    if isinstance(exc, duckdb.ParserException):
        return ConfigError(f"{message} — fix the SQL syntax")
    if isinstance(exc, duckdb.BinderException):
        return ConfigError(f"{message} — DESCRIBE <table> lists its columns")
    if isinstance(exc, duckdb.PermissionException):
        return ConfigError(f"{message} — queries read only the tables of the catalog")
    if isinstance(exc, duckdb.IOException):
        return StorageError(f"{message} — check the table's files")
    return ConfigError(f"query failed: {message}")


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _missing(database: str, name: str) -> str:
    return f"no table {database}.{name} — see `dataflow catalog tables`"


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _is_remote(location: str) -> bool:
    return "://" in location and not location.startswith("file://")


def _local_path(location: str) -> str:
    return location.removeprefix("file://")


def _folder(path: str) -> str:
    return os.path.join(str(Path(path).resolve()), "")


__all__ = [
    "ALLOWED_STATEMENTS",
    "JSON_MAX_OBJECT_SIZE",
    "QuerySession",
    "check_statement",
    "external_select",
    "iceberg_select",
]
