"""``dataflow.connect()``: SQL over a project's catalog from Python, for notebooks and scripts.

:meth:`Connection.sql` plans and runs one read-only statement exactly as ``dataflow query``
does (Athena/Trino and Spark SQL translated, one snapshot per table, pruned files) and returns
the rows as Arrow, with pandas and polars one call away. Unlike ``dataflow query`` it writes
no history and no result file: notebooks run many small queries. (CTAS and UNLOAD go through
``dataflow query`` or :class:`~dataflow.query.QueryRunner`.)

:attr:`Connection.duckdb` is a DuckDB connection in which every catalog table is a view
(``market.time_series``, ``raw.quote``, ...), for DuckDB's own Python API. Its views read
each table at the snapshot that was current when the property was first used; call
:meth:`Connection.refresh` to see later commits. It cannot read or write files outside the
warehouse, and the views cannot be written to.

Example:
    >>> import dataflow                                        # doctest: +SKIP
    >>> with dataflow.connect("demo") as con:                  # doctest: +SKIP
    ...     bars = con.sql("SELECT symbol, max(close) AS high FROM market.time_series "
    ...                    "GROUP BY 1", dialect="athena").df()
    ...     con.duckdb.sql("SELECT count(*) FROM raw.quote").fetchall()
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import datetime as dt

    import duckdb
    import pyarrow as pa

    from dataflow.config import Settings
    from dataflow.metadata.db import MetadataDB
    from dataflow.query.session import Params, QuerySession

log = logging.getLogger("dataflow.client")


class Result:
    """The rows of one query, as an Arrow table with conversions.

    Example:
        >>> import pyarrow as pa
        >>> result = Result(pa.table({"n": [1, 2]}))
        >>> result.columns, len(result), result.rows()
        (['n'], 2, [(1,), (2,)])
    """

    def __init__(self, table: pa.Table) -> None:
        self._table = table

    @property
    def columns(self) -> list[str]:
        """The column names, in order."""
        return list(self._table.column_names)

    def __len__(self) -> int:
        return int(self._table.num_rows)

    def __repr__(self) -> str:
        return f"<Result {len(self)} rows × {len(self.columns)} columns: {', '.join(self.columns)}>"

    def arrow(self) -> pa.Table:
        """The rows as a ``pyarrow.Table`` (no copy)."""
        return self._table

    def df(self) -> Any:
        """The rows as a pandas ``DataFrame``.

        Raises:
            ImportError: pandas is not installed (``pip install pandas``).
        """
        _require("pandas", "df")
        return self._table.to_pandas()

    def pl(self) -> Any:
        """The rows as a polars ``DataFrame``.

        Raises:
            ImportError: polars is not installed (``pip install polars``).
        """
        polars = _require("polars", "pl")
        return polars.from_arrow(self._table)

    def rows(self) -> list[tuple[Any, ...]]:
        """The rows as tuples of Python values (timestamps as aware UTC datetimes)."""
        columns = [column.to_pylist() for column in self._table.columns]
        return list(zip(*columns, strict=True)) if columns else []


class Connection:
    """A project's catalog, open for SQL. Close it (or use ``with``) when done.

    Args:
        settings: the project's settings.
    """

    def __init__(self, settings: Settings) -> None:
        from dataflow.metadata import open_metadata
        from dataflow.query.session import QuerySession

        self.settings = settings
        self._db: MetadataDB = open_metadata(settings.metadata_url)
        try:
            self._session = QuerySession(settings, self._db)
        except BaseException:
            self._db.dispose()
            raise
        # A second session for .duckdb: each plan of .sql() re-points its tables' views at
        # the pruned files of that query, which must not change what .duckdb users see.
        self._views: QuerySession | None = None
        self._closed = False

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<dataflow.Connection project={str(self.settings.project_dir)!r}>"

    def sql(
        self,
        text: str,
        dialect: str = "duckdb",
        params: Params = None,
        *,
        as_of: str | int | dt.datetime | None = None,
    ) -> Result:
        """Run one read-only statement and return its rows.

        Args:
            text: the statement: SELECT, WITH, VALUES, SHOW, DESCRIBE, SUMMARIZE or EXPLAIN.
            dialect: ``duckdb``, ``athena``/``trino`` or ``spark``.
            params: values bound to ``?`` (a list) or ``$name`` (a mapping) parameters.
            as_of: time travel for every Iceberg table: a snapshot id or a time.

        Raises:
            QueryError: Athena-style (``SYNTAX_ERROR: line 1:8: ...``, ``TABLE_NOT_FOUND``,
                a refused statement).

        Example:
            >>> con.sql("SELECT ? AS n", params=[1]).rows()  # doctest: +SKIP
            [(1,)]
        """
        self._check_open()
        plan = self._session.plan(text, dialect=dialect, as_of=as_of, params=params)
        return Result(self._session.arrow(plan))

    def tables(self) -> list[str]:
        """Every table a query can name, as ``database.table``, sorted."""
        self._check_open()
        return self._session.tables()

    @property
    def duckdb(self) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection with every catalog table as a view (made on first use)."""
        self._check_open()
        if self._views is None:
            self._views = self._view_session()
        return self._views.connection

    def refresh(self) -> None:
        """Point the views of :attr:`duckdb` at each table's current snapshot again."""
        if self._views is not None:
            self._views.close()
            self._views = None

    def close(self) -> None:
        """Close the DuckDB connections and the metadata database (again: nothing happens)."""
        if self._closed:
            return
        self._closed = True
        self.refresh()
        self._session.close()
        self._db.dispose()

    def _check_open(self) -> None:
        if self._closed:
            from dataflow.errors import ConfigError

            raise ConfigError("this connection is closed — open another with dataflow.connect()")

    def _view_session(self) -> QuerySession:
        from dataflow.errors import DataflowError
        from dataflow.query.session import QuerySession
        from dataflow.query.views import quote_identifier

        session = QuerySession(self.settings, self._db)
        for name in session.tables():
            database, table = name.split(".", 1)
            target = f"{quote_identifier(database)}.{quote_identifier(table)}"
            try:
                # Running a plan makes its tables' views; LIMIT 0 reads no rows.
                session.run(session.plan(f"SELECT * FROM {target} LIMIT 0"))
            except DataflowError as exc:
                log.warning("table %s is left out of .duckdb: %s", name, exc)
        return session


def connect(project_dir: str | Path | None = None) -> Connection:
    """Open a project's catalog for SQL from Python.

    Args:
        project_dir: the project folder (default: env ``DATAFLOW_PROJECT``, else the current
            folder).

    Example:
        >>> with connect("demo") as con:  # doctest: +SKIP
        ...     con.tables()
        ['market.quotes', 'market.time_series', 'raw.quote', 'raw.time_series']
    """
    from dataflow.config import load_settings

    return Connection(load_settings(project_dir))


def _require(module: str, method: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(
            f"Result.{method}() needs {module}, which is not installed — "
            f"install it with: pip install {module}"
        ) from None


__all__ = ["Connection", "Result", "connect"]
