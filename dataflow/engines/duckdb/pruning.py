"""Which data files an upsert or delete must read: Iceberg filters and file bounds of keys.

:func:`prune_filter` is a coarse Iceberg filter (few-valued text keys, ranges) that pyiceberg
evaluates cheaply when planning files; :func:`file_bounds` decodes the planned files' column
bounds of the key columns into one Arrow table, which the engine joins with a batch's key groups
(``merge.overlapping``).

Example:
    >>> import pyarrow as pa
    >>> is_text(pa.string()), is_ordered(pa.int64())
    (True, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from pyiceberg.expressions import BooleanExpression
    from pyiceberg.table import FileScanTask, Table

MAX_IN_VALUES = 1000
"""Above this many distinct text values a key column is not used to prune (the filter stays
correct: it is only ever a superset of the rows that can match)."""

MAX_PLAN_VALUES = 16
"""Distinct values of a text key above which the file planning filter leaves it out: pyiceberg
evaluates an ``IN`` per file in Python (a batch holds ~100 symbols but ~5 intervals)."""


def is_text(kind: pa.DataType) -> bool:
    """Whether ``kind`` is an Arrow string type (any width or view).

    Example:
        >>> is_text(pa.large_string())
        True
    """
    return bool(
        pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)
    )


def is_ordered(kind: pa.DataType) -> bool:
    """Whether keys of ``kind`` are grouped by range (times and numbers), not by value.

    Example:
        >>> is_ordered(pa.timestamp("us", tz="UTC"))
        True
    """
    return bool(
        pa.types.is_temporal(kind) or pa.types.is_integer(kind) or pa.types.is_floating(kind)
    )


def prune_filter(
    rows: pa.Table, keys: Sequence[str], *, max_values: int = MAX_IN_VALUES
) -> BooleanExpression:
    """An Iceberg filter matching every row that can share a key with ``rows`` (a superset).

    A text key with more than ``max_values`` distinct values is left out (still a superset).
    """
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
        if is_text(column.type):
            values = column.unique().to_pylist()
            if len(values) <= max_values:
                expr = And(expr, in_(key, set(values)))
        elif is_ordered(column.type):
            bounds: Any = pc.min_max(column).as_py()
            expr = And(
                expr,
                And(
                    GreaterThanOrEqual(term=Reference(key), value=literal(bounds["min"])),
                    LessThanOrEqual(term=Reference(key), value=literal(bounds["max"])),
                ),
            )
    return expr


def plan_tasks(table: Table, row_filter: BooleanExpression, snapshot_id: int) -> list[FileScanTask]:
    """``table.scan(row_filter=…, snapshot_id=…).plan_files()`` without the per-file residuals.

    pyiceberg computes each planned file's *residual* filter (what is left to evaluate on its
    rows) in Python, once per file; with the upsert's filter that cost more than reading the
    manifests (~1 ms per file, ~3 s over a 5M-row first load). The engine never uses residuals:
    it reads whole files or filters the rows itself. Files are pruned exactly as ``plan_files``
    prunes them (partition summaries, partition values, column metrics). A snapshot with delete
    files (never written by Dataflow) takes pyiceberg's own planning.

    Example:
        >>> head = table.current_snapshot().snapshot_id  # doctest: +SKIP
        >>> tasks = plan_tasks(table, AlwaysTrue(), head)  # doctest: +SKIP
    """
    from pyiceberg.manifest import DataFileContent
    from pyiceberg.table import FileScanTask

    from dataflow.engines.duckdb.manifest_cache import install

    install()  # the manifests are decoded once per process (see manifest_cache)
    scan = table.scan(row_filter=row_filter, snapshot_id=snapshot_id)
    entries = getattr(scan, "_plan_manifest_entries", None)
    if entries is None:  # another pyiceberg: the public way
        return list(scan.plan_files())
    found = [entry for group in entries() for entry in group]
    if any(entry.data_file.content != DataFileContent.DATA for entry in found):
        return list(scan.plan_files())
    return [FileScanTask(entry.data_file) for entry in found]


def file_bounds(
    table: Table, tasks: Sequence[FileScanTask], rows: pa.Table, keys: Sequence[str]
) -> pa.Table | None:
    """Per task (``_df_task``, its index), ``lo_<key>``/``hi_<key>``: its file's column bounds.

    A bound the file lacks is NULL (anything may be in it). None when a key's bounds cannot be
    decoded into the rows' Arrow type: the caller then keeps every file.
    """
    from pyiceberg.conversions import from_bytes
    from pyiceberg.types import PrimitiveType

    schema = table.schema()
    columns: dict[str, pa.Array] = {"_df_task": pa.array(range(len(tasks)), pa.int64())}
    for key in keys:
        field = schema.find_field(key)
        kind = rows.column(key).type
        if not isinstance(field.field_type, PrimitiveType):
            return None
        for side in ("lo", "hi"):
            values: list[Any] = []
            for task in tasks:
                found = task.file.lower_bounds if side == "lo" else task.file.upper_bounds
                raw = found.get(field.field_id) if found else None
                values.append(None if raw is None else from_bytes(field.field_type, raw))
            try:
                if pa.types.is_temporal(kind):
                    # Iceberg bounds of times are integers (days, or micros); Arrow casts them.
                    plain = pa.int32() if pa.types.is_date32(kind) else pa.int64()
                    column = pa.array(values, plain).cast(kind)
                else:
                    column = pa.array(values, kind)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError):
                return None
            columns[f"{side}_{key}"] = column
    return pa.table(columns)


__all__ = [
    "MAX_IN_VALUES",
    "MAX_PLAN_VALUES",
    "file_bounds",
    "is_ordered",
    "is_text",
    "plan_tasks",
    "prune_filter",
]
