"""The upsert's merge: which incoming rows win, and the copy-on-write of the files they replace.

:meth:`DuckDBEngine.upsert <dataflow.engines.duckdb.engine.DuckDBEngine.upsert>` calls
:func:`merge` inside its transaction. The existing files that can hold a key of the batch are
found from their column bounds (one join over the planned files' statistics), their keys (and
lineage) read, and each incoming row kept when its key is new or its lineage is strictly newer
(``LINEAGE_ORDER``). Files holding a replaced key are rewritten without those rows; small
overlaps (an incremental run's newest files) are read whole once and reused for the rewrite.

Example:
    >>> _positions(3).to_pylist(), _q('a"b')
    ([0, 1, 2], '"a""b"')
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from dataflow.engines.base import WriteResult
from dataflow.engines.duckdb.iceberg_io import (
    append_rows,
    cast_to,
    cluster_column,
    write_data_files,
)
from dataflow.engines.duckdb.pruning import (
    MAX_PLAN_VALUES,
    file_bounds,
    is_ordered,
    is_text,
    plan_tasks,
    prune_filter,
)

if TYPE_CHECKING:
    from pyiceberg.expressions import BooleanExpression
    from pyiceberg.io.pyarrow import ArrowScan
    from pyiceberg.manifest import DataFile
    from pyiceberg.table import FileScanTask, Table, Transaction

    from dataflow.engines.duckdb.engine import DuckDBEngine

ROW_COLUMN = "_df_row_position"
"""Column the upsert adds to the registered batch: each row's position in it."""

FILE_COLUMN = "_df_file_index"
"""Column tagging each row of the files a copy-on-write reads with its file's index."""

ONE_PASS_ROWS = 100_000
"""Up to this many rows in the files an upsert must check, keys and lineage are read in one
pass (a second pass over few rows costs more than the lineage it saves)."""


def merge(
    engine: DuckDBEngine,
    table: Table,
    txn: Transaction,
    incoming: pa.Table,
    keys: Sequence[str],
    order: Sequence[str],
    props: dict[str, str],
    result: WriteResult,
    ref: str | None,
) -> None:
    from pyiceberg.expressions import AlwaysTrue
    from pyiceberg.io.pyarrow import ArrowScan

    cluster = cluster_column(table, keys)
    # Each incoming row's position: the winners are picked from ``incoming`` by it, so the
    # batch (the new rows, nearly all winners) is never copied through DuckDB.
    positions = _positions(incoming.num_rows)
    engine.register("_df_in", incoming.append_column(ROW_COLUMN, positions))
    existing_rows = 0
    tasks: list[FileScanTask] = []
    whole_files: dict[str, pa.Table] = {}
    whole = ArrowScan(table.metadata, table.io, table.schema(), AlwaysTrue())
    head = None if ref is None else table.snapshot_by_name(ref)
    if head is not None and incoming.num_rows:
        # Only the key and lineage columns decide who wins: read just those, of the data
        # files whose column bounds can hold a key of the batch (see overlapping).
        known = set(table.schema().column_names)
        wanted = [*keys, *(c for c in order if c not in keys and c in known)]
        # A coarse filter (few-valued text keys, ranges) lets pyiceberg prune partitions
        # cheaply; the per-series check of each file's bounds is one join (overlapping).
        prune = prune_filter(incoming, keys, max_values=MAX_PLAN_VALUES)
        planned = plan_tasks(table, prune, head.snapshot_id)
        tasks = overlapping(engine, table, planned, incoming, keys)
        if sum(task.file.record_count for task in tasks) <= ONE_PASS_ROWS:
            # Few rows in all (an incremental run's newest files): each file is read whole,
            # once; its keys and lineage decide the winners, and its rows are what a
            # copy-on-write keeps, without reading the file again.
            whole_files = _read_whole(whole, tasks)
            existing = _matching(engine, list(whole_files.values()), wanted, keys)
        else:
            existing = _existing(engine, table, tasks, wanted, prune, keys)
        existing_rows = existing.num_rows
        if existing_rows:
            engine.register("_df_existing", existing)
        del existing
    if not existing_rows:
        append_rows(txn, incoming, props, branch=ref, cluster_by=cluster)
        result.rows_written = incoming.num_rows
        return
    join = " AND ".join(f"i.{_q(k)} IS NOT DISTINCT FROM e.{_q(k)}" for k in keys)
    mine = ", ".join(f"i.{_q(c)}" for c in order)
    theirs = ", ".join(f"e.{_q(c)}" for c in order)
    newer = f"({mine}) > ({theirs})" if order else "false"
    # An incoming row loses when its key exists and its lineage is not strictly newer (equal
    # lineage: the same raw record processed again); every other row wins.
    losers = engine.sql(
        f"SELECT DISTINCT i.{_q(ROW_COLUMN)} AS n FROM _df_in i JOIN _df_existing e ON {join} "
        f"WHERE ({newer}) IS NOT TRUE"
    ).column("n")
    replaced = engine.sql(
        f"SELECT {', '.join('i.' + _q(k) for k in keys)} FROM _df_in i "
        f"JOIN _df_existing e ON {join} WHERE {newer}"
    )
    engine.unregister("_df_existing")
    winners = incoming
    if len(losers):
        winners = incoming.filter(pc.invert(pc.is_in(positions, value_set=losers)))
    result.rows_written = winners.num_rows
    result.rows_replaced = replaced.num_rows
    result.rows_skipped += incoming.num_rows - winners.num_rows
    winners = cast_to(winners, table)
    if not replaced.num_rows:
        append_rows(txn, winners, props, branch=ref, cluster_by=cluster)
        return
    # Copy-on-write of exactly the data files holding a replaced key: each is read whole,
    # written back without the replaced rows beside the winners, and swapped for the new
    # files in ONE overwrite snapshot of the same transaction. Other files are untouched.
    engine.register("_df_replaced", replaced)
    not_replaced = " AND ".join(f"r.{_q(k)} IS NOT DISTINCT FROM e.{_q(k)}" for k in keys)
    rewrite = overlapping(engine, table, tasks, replaced, keys)
    dropped: list[DataFile]
    kept: list[pa.Table]
    if rewrite and all(task.file.file_path in whole_files for task in rewrite):
        files = [whole_files[task.file.file_path] for task in rewrite]
        dropped, kept = _without_replaced(engine, table, rewrite, files, not_replaced)
    else:
        dropped, kept = [], []
        for task in rewrite:
            found = whole.to_table([task])
            engine.register("_df_file", found)
            rest = engine.sql(
                "SELECT e.* FROM _df_file e "
                f"WHERE NOT EXISTS (SELECT 1 FROM _df_replaced r WHERE {not_replaced})"
            )
            engine.unregister("_df_file")
            if rest.num_rows == found.num_rows:
                continue  # no replaced key in this file: keep it as it is
            dropped.append(task.file)
            if rest.num_rows:
                kept.append(cast_to(rest, table))
    del whole_files
    rewritten = pa.concat_tables([*kept, winners], promote_options="permissive")
    producer = txn.update_snapshot(snapshot_properties=dict(props), branch=ref).overwrite()
    with producer as overwrite:
        for data_file in dropped:
            overwrite.delete_data_file(data_file)
        for data_file in write_data_files(
            txn, rewritten, overwrite.commit_uuid, cluster_by=cluster
        ):
            overwrite.append_data_file(data_file)


def _without_replaced(
    engine: DuckDBEngine,
    table: Table,
    tasks: Sequence[FileScanTask],
    files: Sequence[pa.Table],
    not_replaced: str,
) -> tuple[list[DataFile], list[pa.Table]]:
    """(the files holding a key of ``_df_replaced``, the rows they keep), in one query.

    ``files`` are the rows of ``tasks``' files, in memory (few rows in all): each row is
    tagged with its file's index, and the rows whose key is not replaced come back from one
    query instead of one per file.
    """
    tagged = pa.concat_tables(
        [
            rows.append_column(FILE_COLUMN, pa.repeat(pa.scalar(i, pa.int64()), rows.num_rows))
            for i, rows in enumerate(files)
        ],
        promote_options="permissive",
    )
    engine.register("_df_file", tagged)
    try:
        rest = engine.sql(
            "SELECT e.* FROM _df_file e "
            f"WHERE NOT EXISTS (SELECT 1 FROM _df_replaced r WHERE {not_replaced})"
        )
    finally:
        engine.unregister("_df_file")
    counts = rest.group_by(FILE_COLUMN).aggregate([(FILE_COLUMN, "count")]).to_pylist()
    left = {row[FILE_COLUMN]: row[f"{FILE_COLUMN}_count"] for row in counts}
    changed = [i for i, rows in enumerate(files) if left.get(i, 0) != rows.num_rows]
    if not changed:
        return [], []
    mask = pc.is_in(rest.column(FILE_COLUMN), value_set=pa.array(changed, pa.int64()))
    kept = rest.filter(mask).drop_columns([FILE_COLUMN])
    return [tasks[i].file for i in changed], [cast_to(kept, table)] if kept.num_rows else []


def _matching(
    engine: DuckDBEngine, files: Sequence[pa.Table], columns: Sequence[str], keys: Sequence[str]
) -> pa.Table:
    """The ``columns`` of the rows of ``files`` (in memory) whose key is in ``_df_in``."""
    if not files:
        return pa.table({k: pa.array([], pa.null()) for k in columns})
    rows = pa.concat_tables([f.select(list(columns)) for f in files], promote_options="permissive")
    match = " AND ".join(f"i.{_q(k)} IS NOT DISTINCT FROM e.{_q(k)}" for k in keys)
    engine.register("_df_scan", rows)
    try:
        return engine.sql(
            f"SELECT e.* FROM _df_scan e WHERE EXISTS (SELECT 1 FROM _df_in i WHERE {match})"
        )
    finally:
        engine.unregister("_df_scan")


def _existing(
    engine: DuckDBEngine,
    table: Table,
    tasks: list[FileScanTask],
    wanted: Sequence[str],
    prune: BooleanExpression,
    keys: Sequence[str],
) -> pa.Table:
    """The ``wanted`` columns of the rows of ``tasks`` whose key is in ``_df_in``.

    The files are streamed through DuckDB's semi-join, so only the matching rows are ever
    held in memory (a file holds many series; a batch may share a key with few of them).
    The key columns are read first: the lineage columns (long strings, the costlier part)
    are read only when some key matches, and only from the files whose bounds can hold a
    matching key (a first load, whose batches share no key, reads keys only). Files of
    few rows in all (an incremental run's newest files) are not read here: ``_merge``
    reads them whole, once (:meth:`_matching`).
    """
    if len(wanted) > len(keys):
        found = _scan_matching(engine, table, tasks, list(keys), prune, keys)
        if not found.num_rows:
            return found
        tasks = overlapping(engine, table, tasks, found, keys)
    return _scan_matching(engine, table, tasks, wanted, prune, keys)


def _scan_matching(
    engine: DuckDBEngine,
    table: Table,
    tasks: list[FileScanTask],
    columns: Sequence[str],
    prune: BooleanExpression,
    keys: Sequence[str],
) -> pa.Table:
    """The ``columns`` of the rows of ``tasks`` whose key is in ``_df_in`` (streamed)."""
    from pyiceberg.io.pyarrow import ArrowScan

    scan = ArrowScan(table.metadata, table.io, table.schema().select(*columns), prune)
    batches = iter(scan.to_record_batches(tasks))
    first = next(batches, None)
    if first is None:
        return pa.table({k: pa.array([], pa.null()) for k in columns})
    reader = pa.RecordBatchReader.from_batches(first.schema, itertools.chain([first], batches))
    match = " AND ".join(f"i.{_q(k)} IS NOT DISTINCT FROM e.{_q(k)}" for k in keys)
    engine._con.register("_df_scan", reader)
    try:
        return engine.sql(
            f"SELECT e.* FROM _df_scan e WHERE EXISTS (SELECT 1 FROM _df_in i WHERE {match})"
        )
    finally:
        engine._con.unregister("_df_scan")


def overlapping(
    engine: DuckDBEngine,
    table: Table,
    tasks: Iterable[FileScanTask],
    rows: pa.Table,
    keys: Sequence[str],
) -> list[FileScanTask]:
    """The ``tasks`` whose files' column bounds can hold a key of ``rows`` (a superset).

    The keys are grouped on their non-ordered columns (``symbol, interval``) with the range
    of the ordered ones (``ts``) per group; a file is kept when some group lies within its
    bounds. pyiceberg would evaluate such a filter (one OR term per group) file by file in
    Python; here it is one join in DuckDB, however many groups and files there are.
    """
    tasks = list(tasks)
    ordered = [k for k in keys if is_ordered(rows.column(k).type)]
    grouped = [k for k in keys if k not in ordered and is_text(rows.column(k).type)]
    if not tasks or not rows.num_rows or not (ordered or grouped):
        return tasks
    bounds = file_bounds(table, tasks, rows, [*grouped, *ordered])
    if bounds is None:
        return tasks
    aggregates = [(k, f) for k in ordered for f in ("min", "max")]
    if grouped:
        groups = rows.group_by(grouped).aggregate(aggregates)
    else:
        extremes = {k: pc.min_max(rows.column(k)).as_py() for k in ordered}
        groups = pa.table(
            {f"{k}_{f}": pa.array([extremes[k][f]], rows.column(k).type) for k, f in aggregates}
        )
    conditions = ["true"]
    for k in grouped:
        lo, hi, g = f"f.{_q('lo_' + k)}", f"f.{_q('hi_' + k)}", f"g.{_q(k)}"
        conditions.append(f"({lo} IS NULL OR {g} IS NULL OR {g} >= {lo})")
        conditions.append(f"({hi} IS NULL OR {g} IS NULL OR {g} <= {hi})")
    for k in ordered:
        lo, hi = f"f.{_q('lo_' + k)}", f"f.{_q('hi_' + k)}"
        low, high = f"g.{_q(k + '_min')}", f"g.{_q(k + '_max')}"
        conditions.append(f"({lo} IS NULL OR {high} IS NULL OR {high} >= {lo})")
        conditions.append(f"({hi} IS NULL OR {low} IS NULL OR {low} <= {hi})")
    engine.register("_df_files", bounds)
    engine.register("_df_groups", groups)
    try:
        found = engine.sql(
            "SELECT DISTINCT f._df_task FROM _df_files f, _df_groups g WHERE "
            + " AND ".join(conditions)
        )
    finally:
        engine.unregister("_df_files")
        engine.unregister("_df_groups")
    return [tasks[i] for i in sorted(found.column("_df_task").to_pylist())]


def _read_whole(scan: ArrowScan, tasks: Sequence[FileScanTask]) -> dict[str, pa.Table]:
    """Each task's file, read whole, by its path.

    One scan of all the files (pyiceberg reads them in its pool, in task order), cut back into
    files by their record counts: a scan per file cost ~2 ms more each. Files with delete
    files (never written by Dataflow), or a scan whose rows do not add up, are read one by one.
    """
    if not tasks:
        return {}
    counts = [task.file.record_count for task in tasks]
    if not any(task.delete_files for task in tasks):
        rows = scan.to_table(tasks)
        if rows.num_rows == sum(counts):
            starts = itertools.accumulate(counts, initial=0)
            return {
                task.file.file_path: rows.slice(start, count)
                for task, start, count in zip(tasks, starts, counts, strict=False)
            }
    return {task.file.file_path: scan.to_table([task]) for task in tasks}


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _positions(count: int) -> pa.Array:
    """``0 .. count - 1`` as an int64 Arrow array (in C++: Arrow has no ``arange``).

    Example:
        >>> _positions(4).to_pylist()
        [0, 1, 2, 3]
    """
    if count == 0:
        return pa.array([], pa.int64())
    return pc.subtract(pc.cumulative_sum(pa.repeat(pa.scalar(1, pa.int64()), count)), 1)


__all__ = ["FILE_COLUMN", "ONE_PASS_ROWS", "ROW_COLUMN", "merge", "overlapping"]
