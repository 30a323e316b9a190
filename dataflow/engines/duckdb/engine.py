"""The DuckDB engine: in-process SQL over Arrow, Iceberg commits through pyiceberg.

Relations are Arrow tables registered on one DuckDB connection (zero-copy). Session time zone is
UTC so ``TIMESTAMPTZ`` values leave DuckDB as ``timestamp[us, tz=UTC]``, which Iceberg stores as
``timestamptz``. Only extensions bundled in the wheel (json, parquet, icu) are used: nothing is
ever downloaded.

The upsert (see :meth:`DuckDBEngine.upsert`) is copy-on-write and touches only what it must:

1. de-duplicate the incoming rows on the key (latest ``_received_at``, then ``_raw_key``,
   ``_raw_line``, ``_record_path`` wins);
2. read the existing rows that *may* share a key, through a pruning filter built from the
   incoming keys (``IN`` for text, a ``BETWEEN`` range for times and numbers);
3. keep an incoming row when its key is new or its lineage is strictly newer — equal lineage is
   the same raw record processed again, so it changes nothing;
4. append the winners; if some replace existing rows, overwrite exactly the range those rows
   span with (existing rows in it − replaced) + winners. Both happen in ONE Iceberg transaction
   whose snapshots carry the caller's properties (the transform bookmark).

Example:
    >>> import pyarrow as pa
    >>> engine = DuckDBEngine()
    >>> engine.register("t", pa.table({"x": [1, 2]}))
    >>> engine.sql("SELECT max(x) AS m FROM t").to_pylist()
    [{'m': 2}]
    >>> engine.close()
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from dataflow.engines.base import CONTRACT_DIALECT, EngineCapabilities, WriteResult, translate
from dataflow.errors import ModelError

if TYPE_CHECKING:
    from pyiceberg.expressions import BooleanExpression
    from pyiceberg.table import Table, Transaction

LINEAGE_ORDER = ("_received_at", "_raw_key", "_raw_line", "_record_path")
"""Columns that decide which of two rows with the same key wins, most significant first."""

MAX_IN_VALUES = 1000
"""Above this many distinct text values a key column is not used to prune (the filter stays
correct: it is only ever a superset of the rows that can match)."""

CRASH_ENV = "DATAFLOW_TEST_CRASH_BEFORE_COMMIT"
"""Test seam: when set to a table name (or ``*``), the process exits with status 75 after the
data files of that table's commit are written and before the catalog commit. Used by the
crash-safety tests; never set it in production."""

BeforeCommit = Callable[["Table"], None]


def _crash_seam(table: Table) -> None:
    wanted = os.environ.get(CRASH_ENV)
    if wanted and wanted in {"*", table.name()[-1]}:
        os._exit(75)


class DuckDBEngine:
    """The embedded engine.

    Args:
        memory_limit: DuckDB ``memory_limit`` (e.g. ``"2GB"``); default DuckDB's (80% of RAM).
        threads: worker threads; default DuckDB's (all cores).
    """

    name = "duckdb"
    capabilities = EngineCapabilities(dialect="duckdb")

    def __init__(self, *, memory_limit: str | None = None, threads: int | None = None) -> None:
        self._con = duckdb.connect(":memory:")
        self._con.execute("SET TimeZone = 'UTC'")
        if memory_limit:
            self._con.execute("SET memory_limit = ?", [memory_limit])
        if threads:
            self._con.execute(f"SET threads = {int(threads)}")
        self._registered: set[str] = set()
        self.before_commit: BeforeCommit = _crash_seam

    def __enter__(self) -> DuckDBEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- relations and SQL -----------------------------------------------------------------------

    def register(self, name: str, data: pa.Table) -> None:
        """Make ``data`` queryable as ``name``."""
        self.unregister(name)
        self._con.register(name, data)
        self._registered.add(name)

    def unregister(self, name: str) -> None:
        """Forget ``name``."""
        if name in self._registered:
            self._con.unregister(name)
            self._registered.discard(name)

    def sql(self, text: str, *, dialect: str = CONTRACT_DIALECT) -> pa.Table:
        """Run one statement and return its rows as Arrow.

        Raises:
            ModelError: the SQL is invalid (DuckDB's message names the problem).
        """
        text = translate(text, self.capabilities.dialect, source=dialect)
        try:
            relation = self._con.sql(text)
            if relation is None:
                return pa.table({})
            return relation.to_arrow_table()
        except duckdb.Error as exc:
            raise ModelError(f"SQL failed on DuckDB: {exc}") from exc

    def run_model(self, text: str, *, relations: Mapping[str, pa.Table]) -> pa.Table:
        """Run a model's SELECT over ``relations`` (registered under their names)."""
        for name, data in relations.items():
            self.register(name, data)
        try:
            return self.sql(text)
        finally:
            for name in relations:
                self.unregister(name)

    def close(self) -> None:
        """Close the connection."""
        self._con.close()

    # --- Iceberg ---------------------------------------------------------------------------------

    def upsert(
        self,
        table: Table,
        rows: pa.Table,
        *,
        keys: Sequence[str],
        snapshot_properties: Mapping[str, str],
        replace_all: bool = False,
    ) -> WriteResult:
        """Commit ``rows`` to ``table`` as an upsert on ``keys`` (see the module docstring).

        Example:
            >>> engine.upsert(table, rows, keys=["symbol", "ts"],  # doctest: +SKIP
            ...               snapshot_properties={"dataflow.bookmark": "…"})
            WriteResult(rows_written=10, rows_replaced=0, rows_skipped=0, snapshot_id=…)
        """
        from pyiceberg.expressions import AlwaysTrue

        props = dict(snapshot_properties)
        missing = [key for key in keys if key not in rows.column_names]
        if missing:
            raise ModelError(f"table {table.name()[-1]}: key column(s) {missing} not in the rows")
        self.register("_df_incoming", rows)
        try:
            order = [c for c in LINEAGE_ORDER if c in rows.column_names]
            key_list = ", ".join(_q(k) for k in keys)
            order_sql = ", ".join(f"{_q(c)} DESC" for c in order) or "1"
            incoming = self.sql(
                f"SELECT * FROM _df_incoming QUALIFY row_number() OVER "
                f"(PARTITION BY {key_list} ORDER BY {order_sql}) = 1"
            )
            incoming = _cast_to(incoming, table)
            result = WriteResult(rows_skipped=rows.num_rows - incoming.num_rows)
            txn = table.transaction()
            if replace_all:
                if table.current_snapshot() is not None:
                    txn.delete(AlwaysTrue(), snapshot_properties=props)
                txn.append(incoming, snapshot_properties=props)
                result.rows_written = incoming.num_rows
            else:
                self._merge(table, txn, incoming, keys, order, props, result)
            self.before_commit(table)
            committed = txn.commit_transaction()
            snapshot = committed.current_snapshot()
            result.snapshot_id = snapshot.snapshot_id if snapshot else None
            return result
        finally:
            for name in ("_df_incoming", "_df_in", "_df_existing", "_df_replaced"):
                self.unregister(name)

    def _merge(
        self,
        table: Table,
        txn: Transaction,
        incoming: pa.Table,
        keys: Sequence[str],
        order: Sequence[str],
        props: dict[str, str],
        result: WriteResult,
    ) -> None:
        self.register("_df_in", incoming)
        existing_rows = 0
        if table.current_snapshot() is not None and incoming.num_rows:
            prune = _prune_filter(incoming, keys)
            existing = table.scan(row_filter=prune).to_arrow()
            existing_rows = existing.num_rows
            self.register("_df_existing", existing)
        if not existing_rows:
            txn.append(incoming, snapshot_properties=props)
            result.rows_written = incoming.num_rows
            return
        join = " AND ".join(f"i.{_q(k)} IS NOT DISTINCT FROM e.{_q(k)}" for k in keys)
        mine = ", ".join(f"i.{_q(c)}" for c in order)
        theirs = ", ".join(f"e.{_q(c)}" for c in order)
        newer = f"({mine}) > ({theirs})" if order else "false"
        first = _q(keys[0])
        winners = self.sql(
            f"SELECT i.* FROM _df_in i LEFT JOIN _df_existing e ON {join} "
            f"WHERE e.{first} IS NULL OR {newer}"
        )
        replaced = self.sql(f"SELECT i.* FROM _df_in i JOIN _df_existing e ON {join} WHERE {newer}")
        result.rows_written = winners.num_rows
        result.rows_replaced = replaced.num_rows
        result.rows_skipped += incoming.num_rows - winners.num_rows
        winners = _cast_to(winners, table)
        if not replaced.num_rows:
            txn.append(winners, snapshot_properties=props)
            return
        # Rewrite only the range the replaced keys span: existing rows in it that are not
        # replaced are written back beside the winners, in the same transaction.
        self.register("_df_replaced", replaced)
        in_range = " AND ".join(_range_sql("e", k, replaced) for k in keys)
        not_replaced = " AND ".join(f"r.{_q(k)} IS NOT DISTINCT FROM e.{_q(k)}" for k in keys)
        kept = self.sql(
            f"SELECT e.* FROM _df_existing e WHERE {in_range} "
            f"AND NOT EXISTS (SELECT 1 FROM _df_replaced r WHERE {not_replaced})"
        )
        rewritten = pa.concat_tables([_cast_to(kept, table), winners])
        txn.overwrite(
            rewritten, overwrite_filter=_prune_filter(replaced, keys), snapshot_properties=props
        )


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _is_text(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)
    )


def _is_ordered(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_temporal(kind) or pa.types.is_integer(kind) or pa.types.is_floating(kind)
    )


def _range_sql(alias: str, key: str, rows: pa.Table) -> str:
    """SQL form of the pruning constraint :func:`_prune_filter` puts on ``key``."""
    column = rows.column(key)
    col = f"{alias}.{_q(key)}"
    if column.null_count:
        return "true"
    if _is_text(column.type):
        if len(column.unique()) > MAX_IN_VALUES:
            return "true"
        return f"{col} IN (SELECT DISTINCT {_q(key)} FROM _df_replaced)"
    if _is_ordered(column.type):
        return (
            f"{col} BETWEEN (SELECT min({_q(key)}) FROM _df_replaced) "
            f"AND (SELECT max({_q(key)}) FROM _df_replaced)"
        )
    return "true"


def _prune_filter(rows: pa.Table, keys: Sequence[str]) -> BooleanExpression:
    """An Iceberg filter matching every row that can share a key with ``rows`` (a superset)."""
    import pyarrow.compute as pc
    from pyiceberg.expressions import (
        AlwaysTrue,
        And,
        GreaterThanOrEqual,
        In,
        LessThanOrEqual,
        Reference,
    )
    from pyiceberg.expressions.literals import literal

    in_: Any = In  # pyiceberg's In is a pydantic model with a __new__ that mypy misreads
    expr: BooleanExpression = AlwaysTrue()
    for key in keys:
        column = rows.column(key)
        if column.null_count or not rows.num_rows:
            continue
        if _is_text(column.type):
            values = column.unique().to_pylist()
            if len(values) <= MAX_IN_VALUES:
                expr = And(expr, in_(key, set(values)))
        elif _is_ordered(column.type):
            bounds: Any = pc.min_max(column).as_py()
            expr = And(
                expr,
                And(
                    GreaterThanOrEqual(term=Reference(key), value=literal(bounds["min"])),
                    LessThanOrEqual(term=Reference(key), value=literal(bounds["max"])),
                ),
            )
    return expr


def _cast_to(rows: pa.Table, table: Table) -> pa.Table:
    """``rows`` with the table's columns, in its order and Arrow types (missing ones NULL)."""
    target = table.schema().as_arrow()
    columns = []
    for field in target:
        if field.name in rows.column_names:
            columns.append(rows.column(field.name).cast(field.type))
        else:
            columns.append(pa.nulls(rows.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=target)


__all__ = ["CRASH_ENV", "LINEAGE_ORDER", "DuckDBEngine"]
