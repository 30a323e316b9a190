"""Write one batch of a model's output: quarantine first, then rows + bookmark in one commit.

Order matters for crash safety. Quarantined rows are upserted (keyed by table and lineage) before
the table's own commit, so a crash in between only means the batch is read again and its
quarantine rows are upserted again — identical, hence no duplicates. The table's commit carries
the new bookmark, so rows and "these files are done" become visible together or not at all.

Example:
    >>> QUARANTINE_KEY
    ('table_name', '_raw_key', '_raw_line', '_record_path')
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from dataflow.catalog.iceberg import create_table, load_table
from dataflow.engines.base import WriteResult
from dataflow.errors import ModelError
from dataflow.transform.bookmarks import snapshot_properties, write_bookmark
from dataflow.transform.models import ERROR_COLUMN, LINEAGE_COLUMNS, Model

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

    from dataflow.engines.base import Engine
    from dataflow.transform.flatten import RawBatch

QUARANTINE_TABLE = "quarantine"
QUARANTINE_KEY = ("table_name", "_raw_key", "_raw_line", "_record_path")
QUARANTINE_PARTITION = "table_name"
"""Why identity(table_name): quarantine is read per table ("what did time_series reject?")."""
QUARANTINE_SCHEMA = pa.schema(
    [
        ("table_name", pa.string()),
        ("reason", pa.string()),
        ("record", pa.string()),
        ("symbol", pa.string()),
        ("_raw_key", pa.string()),
        ("_raw_line", pa.int32()),
        ("_record_path", pa.string()),
        ("_run_id", pa.string()),
        ("_received_at", pa.timestamp("us", tz="UTC")),
        ("quarantine_run_id", pa.string()),
    ]
)


@dataclass
class BatchOutcome:
    """What one batch did to a table."""

    rows_out: int = 0
    quarantined: int = 0
    replaced: int = 0
    skipped: int = 0


def check_output(model: Model, rows: pa.Table) -> None:
    """Fail clearly when a model's SELECT lacks lineage, ``_error`` or key columns.

    Raises:
        ModelError: naming the model file and the missing columns.
    """
    needed = [*LINEAGE_COLUMNS, ERROR_COLUMN, *model.key]
    missing = [name for name in needed if name not in rows.column_names]
    if missing:
        raise ModelError(
            f"{model.origin}: the SELECT must return {', '.join(missing)} — every model returns "
            f"the lineage columns {', '.join(LINEAGE_COLUMNS)} and {ERROR_COLUMN}"
        )


def split_rows(model: Model, rows: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(good rows without ``_error``, rejected rows with their reason in ``_error``).

    A row whose key column is NULL is rejected too: it could never be upserted, and so is a
    row holding NaN or an infinity in a floating-point column. When every row is good (the
    usual case) the rows are not copied.
    """
    reason = rows.column(ERROR_COLUMN)
    for name, column in zip(rows.column_names, rows.columns, strict=True):
        # NaN and Infinity are never stored as numbers, whatever the model's SQL checked.
        if pa.types.is_floating(column.type) and not name.startswith("_"):
            finite = pc.is_finite(column)
            if finite.null_count != len(finite) and not pc.all(finite).as_py():
                bad_number = pc.if_else(
                    pc.invert(pc.fill_null(finite, True)), f"{name} is not a finite number", None
                )
                reason = pc.coalesce(reason, bad_number)
    for key in model.key:
        column = rows.column(key)
        if column.null_count:
            missing_key = pc.if_else(pc.is_null(column), f"key column {key} is NULL", None)
            reason = pc.coalesce(reason, missing_key)
    if reason.null_count == len(reason):
        return rows.drop_columns([ERROR_COLUMN]), rows.schema.empty_table()
    bad = pc.is_valid(reason)
    good = rows.filter(pc.invert(bad)).drop_columns([ERROR_COLUMN])
    rejected = rows.filter(bad).set_column(
        rows.column_names.index(ERROR_COLUMN), ERROR_COLUMN, reason.filter(bad)
    )
    return good, rejected


def quarantine_rows(model: Model, rejected: pa.Table, engine: Engine, run_id: str) -> pa.Table:
    """Rejected rows in the quarantine table's shape, with the raw record they came from.

    Runs while the batch's bodies are registered (inside ``raw_relation`` of
    :mod:`dataflow.transform.flatten`). The records are read as JSON text from the bodies that
    hold a rejected row only (a model may read ``raw`` typed, without ``record``).
    """
    from dataflow.transform.raw_view import BODIES, raw_select_sql

    engine.register("_df_rejected", rejected)
    try:
        symbol = "q.symbol" if "symbol" in rejected.column_names else "r.symbol"
        table = engine.sql(
            f"WITH _df_hit AS (SELECT * FROM {BODIES} b WHERE EXISTS (SELECT 1 FROM "
            "_df_rejected q WHERE q._raw_key = b._raw_key AND q._raw_line = b._raw_line)), "
            f"_df_raw AS ({raw_select_sql('_df_hit')}) "
            f"SELECT '{model.target}' AS table_name, q._error AS reason, r.record AS record, "
            f"CAST({symbol} AS VARCHAR) AS symbol, q._raw_key, CAST(q._raw_line AS INTEGER) "
            f"AS _raw_line, q._record_path, q._run_id, q._received_at, '{run_id}' AS "
            "quarantine_run_id FROM _df_rejected q LEFT JOIN _df_raw r ON "
            "q._raw_key = r._raw_key AND q._raw_line = r._raw_line "
            "AND q._record_path = r._record_path"
        )
    finally:
        engine.unregister("_df_rejected")
    return table.cast(QUARANTINE_SCHEMA)


def set_aside_rows(model: Model, batch: RawBatch, run_id: str) -> pa.Table:
    """Quarantine rows (in :data:`QUARANTINE_SCHEMA`) for the files and lines of ``batch``
    that could not be read at all: ``_raw_line`` 0 is a whole file, ``_record_path`` is
    empty, ``record`` NULL and ``reason`` says what is wrong."""
    items = batch.set_aside
    count = len(items)
    return pa.table(
        {
            "table_name": [model.target] * count,
            "reason": [f"raw file set aside: {item.reason}" for item in items],
            "record": pa.nulls(count, pa.string()),
            "symbol": pa.nulls(count, pa.string()),
            "_raw_key": [item.key for item in items],
            "_raw_line": pa.array([item.line for item in items], pa.int32()),
            "_record_path": [""] * count,
            "_run_id": pa.nulls(count, pa.string()),
            "_received_at": pa.nulls(count, pa.timestamp("us", tz="UTC")),
            "quarantine_run_id": [run_id] * count,
        },
        schema=QUARANTINE_SCHEMA,
    )


def ensure_table(catalog: Catalog, namespace: str, model: Model, schema: pa.Schema) -> Table:
    """Load the model's table, creating it from ``schema`` (or adding new columns) as needed."""
    table = load_table(catalog, namespace, model.target)
    if table is None:
        return create_table(
            catalog, namespace, model.target, schema, partition=model.partition,
            properties={"comment": model.description} if model.description else None,
        )  # fmt: skip
    known = set(table.schema().column_names)
    if any(name not in known for name in schema.names):
        # Additive schema evolution: a model that gains a column keeps its history.
        with table.update_schema() as update:
            update.union_by_name(schema)
        table = table.refresh()
    return table


def ensure_quarantine(catalog: Catalog, namespace: str) -> Table:
    """The quarantine table, created on first use."""
    table = load_table(catalog, namespace, QUARANTINE_TABLE)
    if table is not None:
        return table
    return create_table(
        catalog, namespace, QUARANTINE_TABLE, QUARANTINE_SCHEMA, partition=QUARANTINE_PARTITION,
        properties={"comment": "Rows models rejected, with the reason and their lineage."},
    )  # fmt: skip


def commit_rows(
    engine: Engine,
    table: Table,
    rows: pa.Table,
    *,
    keys: Iterable[str],
    consumed: set[str],
    run_id: str,
    replace_all: bool,
    branch: str | None = None,
) -> WriteResult:
    """Upsert ``rows`` and the new bookmark (``consumed``: every raw key done) in one commit.

    ``branch``: commit to this Iceberg branch instead of ``main`` (the pipeline's audit branch,
    see :mod:`dataflow.quality.gate`).
    """
    location = write_bookmark(table, consumed, run_id=run_id)
    props = snapshot_properties(location, len(consumed), run_id)
    return engine.upsert(
        table,
        rows,
        keys=list(keys),
        snapshot_properties=props,
        replace_all=replace_all,
        branch=branch,
    )


__all__ = [
    "QUARANTINE_KEY",
    "QUARANTINE_SCHEMA",
    "QUARANTINE_TABLE",
    "BatchOutcome",
    "check_output",
    "commit_rows",
    "ensure_quarantine",
    "ensure_table",
    "quarantine_rows",
    "set_aside_rows",
    "split_rows",
]
