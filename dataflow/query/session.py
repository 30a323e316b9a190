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

import re
import time
from typing import TYPE_CHECKING

import duckdb

from dataflow.catalog.external import ExternalCatalog, ExternalTable
from dataflow.catalog.iceberg import load_table, open_catalog
from dataflow.errors import ConfigError, NoSuchTableError, StorageError
from dataflow.query.result import QueryResult
from dataflow.query.views import (
    external_select,
    folder_of,
    iceberg_select,
    is_remote,
    local_path,
    quote_identifier,
    quote_literal,
)

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
        con.execute(f"SET schema = {quote_literal(self.default_database)}")
        if not self.settings.warehouse_is_remote:
            # Views are bound again at every query, so the folders they read stay allowed.
            allowed = {folder_of(self.settings.warehouse_uri)}
            allowed |= {
                folder_of(local_path(t.location))
                for t in self._external.values()
                if not is_remote(t.location)
            }
            listing = ", ".join(quote_literal(path) for path in sorted(allowed))
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
        target = f"{quote_identifier(database)}.{quote_identifier(name)}"
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
            self._con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(database)}")
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


__all__ = [
    "ALLOWED_STATEMENTS",
    "QuerySession",
    "check_statement",
]
