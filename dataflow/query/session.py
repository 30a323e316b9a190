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

A query runs in two steps: :meth:`QuerySession.plan` translates it to DuckDB SQL (Athena/Trino
and Spark SQL through sqlglot), resolves every table it names to *one* snapshot, and prunes the
data files with the ``WHERE`` clause (see :mod:`dataflow.query.planning`); :meth:`run` then
points each table's view at exactly those files and runs the statement. ``--as-of`` (time
travel) picks each Iceberg table's snapshot at a time, or by id. One session runs one query at
a time.

Repeated queries (dashboards) are cheap to plan: :func:`prepare` caches each text's
translation and parse, :func:`~dataflow.query.scans.iceberg_scan` caches each snapshot's
planned files per filter (a snapshot never changes), and a view already reading the planned
files is not made again.

DuckDB errors are translated once, Athena-style (:mod:`dataflow.query.errors`): a missing table
is ``TABLE_NOT_FOUND`` (a :class:`NoSuchTableError`), a wrong column ``COLUMN_NOT_FOUND``, bad or
refused SQL another :class:`QueryError` (a :class:`ConfigError`), an unreadable data file
:class:`StorageError`.

Example:
    >>> with QuerySession(settings) as session:  # doctest: +SKIP
    ...     session.execute("SELECT count(*) AS n FROM market.time_series").rows
    [(842,)]
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import re
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import duckdb

from dataflow.catalog.external import ExternalCatalog, ExternalTable
from dataflow.catalog.iceberg import load_table, open_catalog
from dataflow.errors import ConfigError, StorageError
from dataflow.query.dialects import Translation, translate
from dataflow.query.errors import QueryError, TableNotFoundError, from_duckdb, locate, position
from dataflow.query.planning import QueryPlan, TableScan, table_filters, table_references
from dataflow.query.result import QueryResult
from dataflow.query.sandbox import lock_down
from dataflow.query.scans import bind_params, external_scan, iceberg_scan, resolve_snapshot
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
    import pyarrow as pa
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

    from dataflow.config import Settings
    from dataflow.metadata.db import MetadataDB

Params = Sequence[Any] | Mapping[str, Any] | None
"""Bound parameters: a list for ``?``, a mapping for ``$name``."""

ALLOWED_STATEMENTS = "SELECT, WITH, VALUES, SHOW, DESCRIBE, SUMMARIZE or EXPLAIN"
"""What a query may be (DuckDB parses all but EXPLAIN as SELECT statements)."""

_EXPLAIN = re.compile(r"^\s*EXPLAIN\s+(?:ANALY[SZ]E\s+)?", re.IGNORECASE)
_METADATA = re.compile(
    r"\b(?:show|describe|information_schema|duckdb_\w+|pg_catalog|sqlite_master)\b", re.IGNORECASE
)
_FILE_LIKE = re.compile(r"[/\\:*?.]")


def check_statement(sql: str) -> str:
    """The one read-only statement in ``sql``, or an error that says what is allowed.

    Raises:
        QueryError: ``NOT_SUPPORTED`` for a statement that is not a query, ``SYNTAX_ERROR``
            for SQL DuckDB cannot parse.
        ConfigError: empty text or several statements.

    Example:
        >>> check_statement("SELECT 1;")
        'SELECT 1'
        >>> check_statement("COPY t TO 'x.csv'")
        Traceback (most recent call last):
        ...
        dataflow.errors.QueryError: NOT_SUPPORTED: line 1:1: COPY statements are not \
allowed: queries are read-only — use SELECT, WITH, VALUES, SHOW, DESCRIBE, SUMMARIZE or \
EXPLAIN (or CREATE TABLE ... AS SELECT / UNLOAD)
    """
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise from_duckdb(exc, sql) from exc
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
        raise QueryError(
            "NOT_SUPPORTED",
            f"{keyword} statements are not allowed: queries are read-only — use "
            f"{ALLOWED_STATEMENTS} (or CREATE TABLE ... AS SELECT / UNLOAD)",
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
        self._schemas: set[str] = set()
        # What the last plan reads, per table: the views of the next run() point there.
        self._pending: dict[tuple[str, str], Any] = {}
        # The plan key each view was last made for: the same files need no new view.
        self._views: dict[tuple[str, str], Any] = {}
        self._con = duckdb.connect(":memory:")
        # Trino's int / int is an integer: the same database, another client with that setting.
        self._trino = self._con.cursor()
        self._configure()
        with _OPEN_LOCK:
            _OPEN.add(self)

    # --- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> QuerySession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the DuckDB connection (and the metadata database when the session opened it)."""
        with _OPEN_LOCK:
            _OPEN.discard(self)
        self._trino.close()
        self._con.close()
        if self._owns_db:
            self.db.dispose()

    def interrupt(self) -> None:
        """Interrupt what the session runs now (from another thread); the query raises.

        Safe at any time: an idle or closed session is left as it is.
        """
        for con in (self._con, self._trino):
            with contextlib.suppress(duckdb.Error):  # closed meanwhile: nothing runs
                con.interrupt()

    # --- queries ---------------------------------------------------------------------------------

    def execute(
        self,
        sql: str,
        *,
        max_rows: int | None = None,
        dialect: str = "duckdb",
        as_of: str | int | dt.datetime | None = None,
        params: Params = None,
    ) -> QueryResult:
        """Plan and run one read-only statement and return its rows.

        Args:
            sql: the statement (a trailing ``;`` is fine).
            max_rows: fetch at most this many rows (``truncated`` tells if there were more).
            dialect: ``duckdb``, ``athena``/``trino`` or ``spark``.
            as_of: time travel for every Iceberg table: a snapshot id or a time.
            params: values bound to ``?`` (a list) or ``$name`` (a mapping) parameters.

        Raises:
            QueryError: the statement is not a query, or it is wrong (syntax, columns, types);
                ``TABLE_NOT_FOUND`` is also a NoSuchTableError.
            StorageError: a data file cannot be read.

        Example:
            >>> session.execute("SELECT 1 AS one").rows  # doctest: +SKIP
            [(1,)]
        """
        plan = self.plan(sql, dialect=dialect, as_of=as_of, params=params)
        return self.run(plan, max_rows=max_rows)

    def plan(
        self,
        sql: str,
        *,
        dialect: str = "duckdb",
        as_of: str | int | dt.datetime | None = None,
        params: Params = None,
        count_totals: bool = False,
    ) -> QueryPlan:
        """Translate, check and resolve a statement, and choose the files each table reads.

        Each table is resolved to one snapshot here, once: the views :meth:`run` makes read
        that snapshot's files even if a transform commits in between.

        Args:
            count_totals: also count each table's files before pruning (for ``--dry-run``).

        Raises:
            QueryError: as :meth:`execute`.
        """
        translation, tree = prepare(sql, dialect)
        params = bind_params(params, tree)
        references = self._references(translation, tree)
        sources: dict[tuple[str, str], Any] = {}
        for parts, offset in references:
            key = self._resolve(parts)
            if key is None:
                continue
            if key not in sources:
                source = self._lookup(*key)
                if source is None:
                    line, column = self._where(translation, parts, offset)
                    raise TableNotFoundError(*key, line=line, column=column)
                sources[key] = source
        scans = self._scans(tree, sources, as_of, params, count_totals)
        return QueryPlan(translation=translation, scans=tuple(scans), params=params)

    def run(self, plan: QueryPlan, *, max_rows: int | None = None) -> QueryResult:
        """Point each table's view at the plan's files and run the statement.

        Raises:
            QueryError: as :meth:`execute`.
        """
        started = time.perf_counter()
        relation = self._relation(plan)
        if relation is None:
            return QueryResult([], [], [], elapsed=time.perf_counter() - started)
        try:
            columns = list(relation.columns)
            types = [str(kind) for kind in relation.types]
            if max_rows is None:
                rows = relation.fetchall()
            else:
                # One row more than asked tells whether there were more (DuckDB 2 relations
                # have no fetchmany: each fetch would run the query again).
                rows = relation.limit(max_rows + 1).fetchall()
        except duckdb.Error as exc:
            raise self._error(exc, plan.translation) from exc
        truncated = max_rows is not None and len(rows) > max_rows
        rows = rows[:max_rows] if max_rows is not None else rows
        return QueryResult(
            columns=columns,
            types=types,
            rows=[tuple(row) for row in rows],
            elapsed=time.perf_counter() - started,
            truncated=truncated,
        )

    def arrow(self, plan: QueryPlan) -> pa.Table:
        """Run the plan's statement and return every row as an Arrow table (CTAS, UNLOAD)."""
        import pyarrow as pa

        relation = self._relation(plan)
        if relation is None:
            return pa.table({})
        try:
            return relation.arrow().read_all()
        except duckdb.Error as exc:
            raise self._error(exc, plan.translation) from exc

    def tables(self) -> list[str]:
        """Every table a query can name, as ``database.table``, sorted.

        Example:
            >>> session.tables()  # doctest: +SKIP
            ['market.quotes', 'market.time_series', 'raw.quote', 'raw.time_series']
        """
        return sorted(f"{db}.{name}" for db, name in self._all_tables())

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The session's DuckDB connection, locked down read-only (for notebooks and tools)."""
        return self._con

    # --- planning --------------------------------------------------------------------------------

    def _references(
        self, translation: Translation, tree: Any
    ) -> list[tuple[list[str], int | None]]:
        """The table names a statement reads, with their offsets in the DuckDB SQL if known."""
        statement = translation.sql
        if tree is not None:
            found = [
                ([part.name for part in table.parts], table.parts[0].meta.get("start"))
                for table in table_references(tree)
            ]
        else:
            try:
                names = self._con.get_table_names(_EXPLAIN.sub("", statement), qualified=True)
            except duckdb.Error:
                names = set()
            found = [(_split_name(name), None) for name in sorted(names)]
        if not found and _METADATA.search(statement):
            found = [([db, name], None) for db, name in self._all_tables()]
        return found

    def _where(
        self, translation: Translation, parts: list[str], offset: int | None
    ) -> tuple[int, int]:
        if translation.dialect == "duckdb" and offset is not None:
            return position(translation.source, offset)
        return locate(translation.source, parts[0], translation.dialect)

    def _scans(
        self,
        tree: Any,
        sources: dict[tuple[str, str], Any],
        as_of: str | int | dt.datetime | None,
        params: Params,
        count_totals: bool,
    ) -> list[TableScan]:
        from pyiceberg.expressions import AlwaysTrue

        snapshots = {
            key: resolve_snapshot(source, as_of)
            for key, source in sources.items()
            if not isinstance(source, ExternalTable)
        }
        schemas = {
            key: source.schemas().get(snap.schema_id, source.schema())
            if (snap := snapshots[key]) is not None and snap.schema_id is not None
            else source.schema()
            for key, source in sources.items()
            if key in snapshots
        }
        filters = table_filters(tree, self._resolve, schemas, params) if tree is not None else {}
        scans: list[TableScan] = []
        self._pending = {}
        for key, source in sources.items():
            if isinstance(source, ExternalTable):
                scan, paths = external_scan(key, source, ExternalCatalog(self.db))
                scans.append(scan)
                self._pending[key] = paths
                continue
            row_filter = filters.get(key, AlwaysTrue())
            scan, pending = iceberg_scan(key, source, snapshots[key], row_filter, count_totals)
            scans.append(scan)
            self._pending[key] = pending
        return scans

    # --- views -----------------------------------------------------------------------------------

    def _relation(self, plan: QueryPlan) -> duckdb.DuckDBPyRelation | None:
        pending = self._pending
        for scan in plan.scans:
            key = (scan.database, scan.name)
            if key not in pending:
                raise ConfigError("run() takes the plan this session made last — plan again")
            self._make_view(key, pending[key])
        con = self._trino if plan.translation.integer_division else self._con
        params = plan.params if plan.params else None
        try:
            return con.sql(plan.translation.sql, params=params)
        except duckdb.Error as exc:
            raise self._error(exc, plan.translation) from exc

    def _make_view(self, key: tuple[str, str], pending: Any) -> None:
        database, name = key
        self._ensure_schema(database)
        if isinstance(pending, list):
            source = self._external[key]
            body = external_select(source, ExternalCatalog(self.db), pending)
            made = None
        else:
            table, scan, tasks, made = pending
            if made is not None and self._views.get(key) == made:
                return  # the view reads these very files already: binding it again costs ms
            remote = self.settings.warehouse_is_remote
            body = iceberg_select(table, self._con, remote=remote, scan=scan, tasks=tasks)
        target = f"{quote_identifier(database)}.{quote_identifier(name)}"
        self._views.pop(key, None)
        try:
            self._con.execute(f"CREATE OR REPLACE VIEW {target} AS {body}")
        except duckdb.Error as exc:
            raise StorageError(
                f"cannot read table {database}.{name}: {_first_line(exc)} — check its files "
                "(`dataflow crawl` refreshes an external table)"
            ) from exc
        if made is not None:
            self._views[key] = made

    def _error(self, exc: duckdb.Error, translation: Translation) -> Exception:
        return from_duckdb(
            exc,
            translation.source,
            dialect=translation.dialect,
            default_database=self.default_database,
        )

    def _configure(self) -> None:
        for con in (self._con, self._trino):
            con.execute("SET TimeZone = 'UTC'")
            self._ensure_schema(self.default_database)
            con.execute(f"SET schema = {quote_literal(self.default_database)}")
        self._trino.execute("SET integer_division = true")
        allowed: set[str] = set()
        if not self.settings.warehouse_is_remote:
            # Views are bound again at every query, so the folders they read stay allowed.
            allowed = {folder_of(self.settings.warehouse_uri)}
            allowed |= {
                folder_of(local_path(t.location))
                for t in self._external.values()
                if not is_remote(t.location)
            }
        lock_down(self._con, directories=allowed)

    def _resolve(self, parts: list[str]) -> tuple[str, str] | None:
        """``(database, table)`` for a name the catalog should hold; None to leave it to DuckDB
        (system schemas, file paths read by replacement scans)."""
        parts = [part.lower() for part in parts]
        if len(parts) == 3 and parts[0] in {"memory", "awsdatacatalog"}:
            parts = parts[1:]
        if len(parts) == 1:
            parts = [self.default_database, parts[0]]
        if len(parts) != 2 or parts[0] in {"main", "information_schema", "pg_catalog"}:
            return None
        if any(_FILE_LIKE.search(part) for part in parts):
            return None  # a file path read by a replacement scan: DuckDB checks the access
        return parts[0], parts[1]

    def _lookup(self, database: str, name: str) -> ExternalTable | Table | None:
        if (database, name) in self._external:
            return self._external[(database, name)]
        return load_table(self._catalog(), database, name)

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


_OPEN: weakref.WeakSet[QuerySession] = weakref.WeakSet()
"""The sessions open in this process (a server stopping interrupts them all)."""
_OPEN_LOCK = threading.Lock()


def interrupt_all() -> int:
    """Interrupt every open session of this process; returns how many there are."""
    with _OPEN_LOCK:
        sessions = list(_OPEN)
    for session in sessions:
        session.interrupt()
    return len(sessions)


@functools.lru_cache(maxsize=256)
def prepare(sql: str, dialect: str = "duckdb") -> tuple[Translation, Any]:
    """The checked DuckDB translation of a statement and its sqlglot tree (None if sqlglot
    cannot parse it), parsed once and cached: dashboards send the same texts again and again.

    Raises:
        QueryError: as :func:`check_statement` and :func:`~dataflow.query.dialects.translate`
            (errors are not cached).

    Example:
        >>> prepare("SELECT 1;")[0].sql
        'SELECT 1'
    """
    translation = translate(sql, dialect)
    statement = check_statement(translation.sql)
    translation = Translation(
        translation.source, translation.dialect, statement, translation.integer_division
    )
    return translation, _parse(statement)


def _parse(statement: str) -> Any:
    import sqlglot

    try:
        return sqlglot.parse_one(_EXPLAIN.sub("", statement), read="duckdb")
    except sqlglot.errors.SqlglotError:
        return None


def _split_name(name: str) -> list[str]:
    # get_table_names quotes the parts that need it: Market."Time Series".
    parts = re.findall(r'"((?:[^"]|"")*)"|([^.]+)', name)
    return [quoted.replace('""', '"') if quoted else bare for quoted, bare in parts]


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


__all__ = [
    "ALLOWED_STATEMENTS",
    "Params",
    "QuerySession",
    "check_statement",
    "interrupt_all",
    "prepare",
]
