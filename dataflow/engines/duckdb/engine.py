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

import itertools
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

MAX_RUNS = 100_000
"""Above this many runs of equal partition values a batch is sorted without further checks."""

MAX_GROUPS = 256
"""Above this many key groups in a batch the existence scan uses the coarse filter."""

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
            duplicates = self.sql(
                f"SELECT count(*) AS n FROM (SELECT 1 FROM _df_incoming GROUP BY {key_list} "
                "HAVING count(*) > 1)"
            ).column("n")[0]
            incoming = rows
            if duplicates.as_py():  # rare: the same key twice in one batch
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
                append_rows(txn, incoming, props)
                result.rows_written = incoming.num_rows
            else:
                self._merge(table, txn, incoming, keys, order, props, result)
            self.before_commit(table)
            committed = txn.commit_transaction()
            snapshot = committed.current_snapshot()
            result.snapshot_id = snapshot.snapshot_id if snapshot else None
            return result
        finally:
            for name in ("_df_incoming", "_df_in", "_df_existing", "_df_replaced", "_df_range"):
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
            # Only the key and lineage columns decide who wins: read just those, of the rows
            # that can share a key with the batch (per key group, see _group_filter).
            known = set(table.schema().column_names)
            wanted = [*keys, *(c for c in order if c not in keys and c in known)]
            existing = table.scan(
                row_filter=_group_filter(incoming, keys), selected_fields=tuple(wanted)
            ).to_arrow()
            existing_rows = existing.num_rows
            self.register("_df_existing", existing)
            del existing
        if not existing_rows:
            append_rows(txn, incoming, props)
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
        replaced = self.sql(
            f"SELECT {', '.join('i.' + _q(k) for k in keys)} FROM _df_in i "
            f"JOIN _df_existing e ON {join} WHERE {newer}"
        )
        result.rows_written = winners.num_rows
        result.rows_replaced = replaced.num_rows
        result.rows_skipped += incoming.num_rows - winners.num_rows
        winners = _cast_to(winners, table)
        if not replaced.num_rows:
            append_rows(txn, winners, props)
            return
        # Rewrite only the range the replaced keys span: existing rows in it that are not
        # replaced are written back beside the winners, in the same transaction. The range is
        # read and deleted with the same filter, so nothing outside it is touched.
        self.register("_df_replaced", replaced)
        overwrite_filter = _prune_filter(replaced, keys)
        self.register("_df_range", table.scan(row_filter=overwrite_filter).to_arrow())
        not_replaced = " AND ".join(f"r.{_q(k)} IS NOT DISTINCT FROM e.{_q(k)}" for k in keys)
        kept = self.sql(
            "SELECT e.* FROM _df_range e "
            f"WHERE NOT EXISTS (SELECT 1 FROM _df_replaced r WHERE {not_replaced})"
        )
        self.unregister("_df_range")
        rewritten = pa.concat_tables([_cast_to(kept, table), winners])
        txn.delete(overwrite_filter, snapshot_properties=props)
        append_rows(txn, rewritten, props)


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


def _group_filter(rows: pa.Table, keys: Sequence[str]) -> BooleanExpression:
    """A finer :func:`_prune_filter`: per group of the non-ordered keys, the ordered keys' range.

    ``symbol IN (...) AND ts BETWEEN min AND max`` over a whole batch spans nearly the whole
    table when a batch holds many series; one ``symbol = s AND ts BETWEEN ...`` term per series
    lets Iceberg prune partitions and files per series. Above :data:`MAX_GROUPS` groups (or
    without both kinds of key) it falls back to :func:`_prune_filter`: still a superset.
    """
    from pyiceberg.expressions import (
        And,
        EqualTo,
        GreaterThanOrEqual,
        IsNull,
        LessThanOrEqual,
        Or,
        Reference,
    )
    from pyiceberg.expressions.literals import literal

    ordered = [k for k in keys if _is_ordered(rows.column(k).type)]
    grouped = [k for k in keys if k not in ordered]
    if not rows.num_rows or not ordered or not grouped:
        return _prune_filter(rows, keys)
    aggregates = [(k, f) for k in ordered for f in ("min", "max")]
    groups = rows.group_by(grouped).aggregate(aggregates)
    if groups.num_rows > MAX_GROUPS:
        return _prune_filter(rows, keys)
    terms: list[BooleanExpression] = []
    for group in groups.to_pylist():
        parts: list[BooleanExpression] = [
            IsNull(term=Reference(k))
            if group[k] is None
            else EqualTo(term=Reference(k), value=literal(group[k]))
            for k in grouped
        ]
        for k in ordered:
            low, high = group[f"{k}_min"], group[f"{k}_max"]
            if low is None:
                continue  # a NULL key: no range constraint for this column
            parts.append(GreaterThanOrEqual(term=Reference(k), value=literal(low)))
            parts.append(LessThanOrEqual(term=Reference(k), value=literal(high)))
        terms.append(parts[0] if len(parts) == 1 else And(*parts))
    return terms[0] if len(terms) == 1 else Or(*terms)


def _cast_to(rows: pa.Table, table: Table) -> pa.Table:
    """``rows`` with the table's columns, in its order and Arrow types (missing ones NULL)."""
    target = table.schema().as_arrow()
    columns = []
    fields = []
    for field in target:
        if field.name not in rows.column_names:
            columns.append(pa.nulls(rows.num_rows, field.type))
            fields.append(field)
            continue
        column = rows.column(field.name)
        if _is_text(column.type) and _is_text(field.type):
            # string vs large_string: Iceberg accepts both; a cast would copy every offset.
            fields.append(field.with_type(column.type))
        else:
            column = column.cast(field.type)
            fields.append(field)
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=pa.schema(fields, metadata=target.metadata))


def append_rows(txn: Transaction, rows: pa.Table, snapshot_properties: Mapping[str, str]) -> int:
    """``txn.append(rows)`` without pyiceberg's filter-per-partition; returns the files written.

    pyiceberg 0.12 splits a batch into partitions by filtering the whole batch once per
    partition (O(partitions x rows): seconds for a few hundred partitions). Here the batch is
    cut into runs of equal partition values, each a zero-copy slice written as one task, hence
    one file per partition (up to the table's ``write.target-file-size-bytes``). When a
    partition spans several runs, the rows are sorted by partition values first (one copy).

    Example:
        >>> with table.transaction() as txn:  # doctest: +SKIP
        ...     append_rows(txn, rows, {"dataflow.run_id": "r1"})
        12
    """
    import pyarrow.compute as pc
    from pyiceberg.io.pyarrow import (
        _check_pyarrow_schema_compatible,
        _get_field_from_arrow_table,
        bin_pack_arrow_table,
        pyarrow_to_schema,
        write_file,
    )
    from pyiceberg.partitioning import PartitionFieldValue, PartitionKey
    from pyiceberg.table import TableProperties, WriteTask
    from pyiceberg.utils.properties import property_as_int

    meta = txn.table_metadata
    schema, spec = meta.schema(), meta.spec()
    _check_pyarrow_schema_compatible(schema, provided_schema=rows.schema)
    producer = txn.update_snapshot(snapshot_properties=dict(snapshot_properties)).fast_append()
    with producer as append:
        if not rows.num_rows:
            return 0
        target: int = property_as_int(  # type: ignore[assignment]  # has a default
            meta.properties,
            TableProperties.WRITE_TARGET_FILE_SIZE_BYTES,
            TableProperties.WRITE_TARGET_FILE_SIZE_BYTES_DEFAULT,
        )
        task_schema = pyarrow_to_schema(
            rows.schema, name_mapping=schema.name_mapping, format_version=meta.format_version
        )
        counter = itertools.count(0)
        parts: list[tuple[PartitionKey | None, pa.Table]] = [(None, rows)]
        if not spec.is_unpartitioned():
            values = []
            for field in spec.fields:
                name = schema.find_column_name(field.source_id)
                source = schema.find_field(field.source_id)
                column = _get_field_from_arrow_table(rows, str(name))
                values.append(field.transform.pyarrow_transform(source.field_type)(column))
            keys = pa.table(values, names=[f"p{i}" for i in range(len(values))])
            runs = _runs(keys) if keys.num_rows else []
            starts = [tuple(c[start].as_py() for c in keys.columns) for start, _ in runs[:MAX_RUNS]]
            if len(runs) > MAX_RUNS or len(set(starts)) < len(runs):
                # A partition in several runs: order the rows once (one copy) so that each
                # partition is one contiguous slice, hence one file.
                order = pc.sort_indices(
                    keys, sort_keys=[(n, "ascending") for n in keys.column_names]
                )
                rows, keys = rows.take(order), keys.take(order)
                runs = _runs(keys)
                starts = [tuple(c[start].as_py() for c in keys.columns) for start, _ in runs]
            parts = [
                (
                    PartitionKey(
                        field_values=[
                            PartitionFieldValue(field=f, value=v)
                            for f, v in zip(spec.fields, value, strict=True)
                        ],
                        partition_spec=spec,
                        schema=schema,
                    ),
                    rows.slice(start, end - start),
                )
                for value, (start, end) in zip(starts, runs, strict=True)
            ]
        tasks = [
            WriteTask(
                write_uuid=append.commit_uuid,
                task_id=next(counter),
                record_batches=batches,
                partition_key=key,
                schema=task_schema,
            )
            for key, part in parts
            for batches in bin_pack_arrow_table(part, target)
        ]
        written = 0
        for data_file in write_file(io=txn._table.io, table_metadata=meta, tasks=iter(tasks)):
            append.append_data_file(data_file)
            written += 1
    return written


def _runs(keys: pa.Table) -> list[tuple[int, int]]:
    """(start, end) of each run of equal rows in ``keys`` (nulls equal to nulls)."""
    import pyarrow.compute as pc

    size = keys.num_rows
    if size <= 1:
        return [(0, size)] if size else []
    changed: Any = None
    for column in keys.columns:
        left, right = column.slice(0, size - 1), column.slice(1)
        differs = pc.if_else(
            pc.and_(pc.is_null(left), pc.is_null(right)),
            False,
            pc.fill_null(pc.not_equal(left, right), True),
        )
        changed = differs if changed is None else pc.or_(changed, differs)
    cuts = [0, *(int(i) + 1 for i in pc.indices_nonzero(changed).to_pylist()), size]
    return list(itertools.pairwise(cuts))


__all__ = ["CRASH_ENV", "LINEAGE_ORDER", "DuckDBEngine", "append_rows"]
