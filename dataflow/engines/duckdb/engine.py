"""The DuckDB engine: in-process SQL over Arrow, Iceberg commits through pyiceberg.

Relations are Arrow tables registered on one DuckDB connection (zero-copy). Session time zone is
UTC so ``TIMESTAMPTZ`` values leave DuckDB as ``timestamp[us, tz=UTC]``, which Iceberg stores as
``timestamptz``. Only extensions bundled in the wheel (json, parquet, icu) are used: nothing is
ever downloaded.

The upsert (see :meth:`DuckDBEngine.upsert`) is copy-on-write and touches only what it must:

1. de-duplicate the incoming rows on the key (latest ``_received_at``, then ``_raw_key``,
   ``_raw_line``, ``_record_path`` wins);
2. read the key and lineage columns of the existing rows that *may* share a key: pyiceberg
   plans the files with a coarse filter (few-valued text keys, ranges), then one DuckDB join of
   each file's column bounds against the batch's key groups (per series, its ``ts`` range)
   keeps only the files that can hold one (:meth:`DuckDBEngine._overlapping`); their rows
   stream through a semi-join on the batch's keys, so only matches are held in memory (files
   of few rows in all, an incremental run's newest ones, are read whole, once, and kept for
   step 4);
3. keep an incoming row when its key is new or its lineage is strictly newer — equal lineage is
   the same raw record processed again, so it changes nothing (DuckDB returns the positions of
   the losing rows; the batch itself is filtered in Arrow, not copied through DuckDB);
4. append the winners; if some replace existing rows, the data files holding a replaced key
   are rewritten without those rows beside the winners, in ONE overwrite snapshot (other files
   are untouched). Everything happens in ONE Iceberg transaction whose snapshots carry the
   caller's properties (the transform bookmark).

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
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from dataflow.engines.base import CONTRACT_DIALECT, EngineCapabilities, WriteResult, translate
from dataflow.engines.duckdb.iceberg_io import (
    append_rows,
    cast_to,
    cluster_column,
    transaction,
    write_data_files,
)
from dataflow.engines.duckdb.manifest_cache import install as install_manifest_cache
from dataflow.engines.duckdb.pruning import (
    MAX_PLAN_VALUES,
    file_bounds,
    is_ordered,
    is_text,
    plan_tasks,
    prune_filter,
)
from dataflow.errors import ModelError

if TYPE_CHECKING:
    from pyiceberg.expressions import BooleanExpression
    from pyiceberg.io.pyarrow import ArrowScan
    from pyiceberg.manifest import DataFile
    from pyiceberg.table import FileScanTask, Table, Transaction

LINEAGE_ORDER = ("_received_at", "_raw_key", "_raw_line", "_record_path")
"""Columns that decide which of two rows with the same key wins, most significant first."""

CRASH_ENV = "DATAFLOW_TEST_CRASH_BEFORE_COMMIT"
"""Test seam: when set to a table name (or ``*``), the process exits with status 75 after the
data files of that table's commit are written and before the catalog commit. Used by the
crash-safety tests; never set it in production."""

ROW_COLUMN = "_df_row_position"
"""Column the upsert adds to the registered batch: each row's position in it."""

FILE_COLUMN = "_df_file_index"
"""Column tagging each row of the files a copy-on-write reads with its file's index."""

ONE_PASS_ROWS = 100_000
"""Up to this many rows in the files an upsert must check, keys and lineage are read in one
pass (a second pass over few rows costs more than the lineage it saves)."""

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
        install_manifest_cache()  # plan, overwrite and freshness decode the same manifests
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
        branch: str | None = None,
    ) -> WriteResult:
        """Commit ``rows`` to ``table`` as an upsert on ``keys`` (see the module docstring).

        ``branch`` names the Iceberg branch the upsert reads and commits to (default ``main``):
        the pipeline writes to an audit branch that only the publish stage fast-forwards
        ``main`` to (write → audit → publish, see :mod:`dataflow.quality.gate`).

        Example:
            >>> engine.upsert(table, rows, keys=["symbol", "ts"],  # doctest: +SKIP
            ...               snapshot_properties={"dataflow.bookmark": "…"})
            WriteResult(rows_written=10, rows_replaced=0, rows_skipped=0, snapshot_id=…)
        """
        from pyiceberg.expressions import AlwaysTrue
        from pyiceberg.table.refs import MAIN_BRANCH

        ref = branch or MAIN_BRANCH
        # Iceberg accepts a commit to a branch other than main only on a table that has some
        # snapshot: a new table's first commit is staged (on no branch), then the branch is
        # pointed at it. Main stays empty, so readers still see nothing unpublished.
        staged = ref != MAIN_BRANCH and not table.metadata.snapshots
        target = None if staged else ref
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
            incoming = cast_to(incoming, table)
            result = WriteResult(rows_skipped=rows.num_rows - incoming.num_rows)
            txn = transaction(table)
            if replace_all:
                if table.snapshot_by_name(ref) is not None:
                    txn.delete(AlwaysTrue(), snapshot_properties=props, branch=ref)
                append_rows(
                    txn, incoming, props, branch=target, cluster_by=cluster_column(table, keys)
                )
                result.rows_written = incoming.num_rows
            else:
                self._merge(table, txn, incoming, keys, order, props, result, target)
            self.before_commit(table)
            committed = txn.commit_transaction()
            if staged and committed.metadata.snapshots:
                with committed.manage_snapshots() as manage:
                    manage.create_branch(committed.metadata.snapshots[-1].snapshot_id, ref)
            snapshot = committed.snapshot_by_name(ref)
            result.snapshot_id = snapshot.snapshot_id if snapshot else None
            return result
        finally:
            for name in ("_df_incoming", "_df_in", "_df_existing", "_df_replaced", "_df_range"):
                self.unregister(name)

    def delete_keys(
        self,
        table: Table,
        keys_rows: pa.Table,
        *,
        keys: Sequence[str],
        snapshot_properties: Mapping[str, str],
        branch: str | None = None,
    ) -> int:
        """Delete the rows whose key is in ``keys_rows``, copy-on-write, in one snapshot.

        Only the data files whose bounds can hold such a key are read (as :meth:`upsert` does);
        each one holding a deleted key is rewritten without it. Returns the rows deleted
        (0 commits nothing).

        Example:
            >>> engine.delete_keys(table, bad, keys=["symbol", "ts"],  # doctest: +SKIP
            ...                    snapshot_properties={"dataflow.run_id": "r1"}, branch="audit")
            3
        """
        from pyiceberg.expressions import AlwaysTrue
        from pyiceberg.io.pyarrow import ArrowScan
        from pyiceberg.table.refs import MAIN_BRANCH

        ref = branch or MAIN_BRANCH
        head = table.snapshot_by_name(ref)
        if head is None or not keys_rows.num_rows:
            return 0
        gone = keys_rows.select(list(keys))
        prune = prune_filter(gone, keys, max_values=MAX_PLAN_VALUES)
        planned = plan_tasks(table, prune, head.snapshot_id)
        match = " AND ".join(f"g.{_q(k)} IS NOT DISTINCT FROM e.{_q(k)}" for k in keys)
        whole = ArrowScan(table.metadata, table.io, table.schema(), AlwaysTrue())
        dropped: list[DataFile] = []
        kept: list[pa.Table] = []
        deleted = 0
        self.register("_df_gone", gone)
        try:
            for task in self._overlapping(table, planned, gone, keys):
                found = whole.to_table([task])
                total = found.num_rows
                self.register("_df_file", found)
                rest = self.sql(
                    "SELECT e.* FROM _df_file e "
                    f"WHERE NOT EXISTS (SELECT 1 FROM _df_gone g WHERE {match})"
                )
                if rest.num_rows == total:
                    continue
                deleted += total - rest.num_rows
                dropped.append(task.file)
                if rest.num_rows:
                    kept.append(cast_to(rest, table))
        finally:
            self.unregister("_df_file")
            self.unregister("_df_gone")
        if not dropped:
            return 0
        txn = transaction(table)
        props = dict(snapshot_properties)
        with txn.update_snapshot(snapshot_properties=props, branch=ref).overwrite() as overwrite:
            for data_file in dropped:
                overwrite.delete_data_file(data_file)
            if kept:
                rest = pa.concat_tables(kept, promote_options="permissive")
                cluster = cluster_column(table, keys)
                for data_file in write_data_files(
                    txn, rest, overwrite.commit_uuid, cluster_by=cluster
                ):
                    overwrite.append_data_file(data_file)
        self.before_commit(table)
        txn.commit_transaction()
        return deleted

    def _merge(
        self,
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
        self.register("_df_in", incoming.append_column(ROW_COLUMN, positions))
        existing_rows = 0
        tasks: list[FileScanTask] = []
        whole_files: dict[str, pa.Table] = {}
        whole = ArrowScan(table.metadata, table.io, table.schema(), AlwaysTrue())
        head = None if ref is None else table.snapshot_by_name(ref)
        if head is not None and incoming.num_rows:
            # Only the key and lineage columns decide who wins: read just those, of the data
            # files whose column bounds can hold a key of the batch (see _overlapping).
            known = set(table.schema().column_names)
            wanted = [*keys, *(c for c in order if c not in keys and c in known)]
            # A coarse filter (few-valued text keys, ranges) lets pyiceberg prune partitions
            # cheaply; the per-series check of each file's bounds is one join (_overlapping).
            prune = prune_filter(incoming, keys, max_values=MAX_PLAN_VALUES)
            planned = plan_tasks(table, prune, head.snapshot_id)
            tasks = self._overlapping(table, planned, incoming, keys)
            if sum(task.file.record_count for task in tasks) <= ONE_PASS_ROWS:
                # Few rows in all (an incremental run's newest files): each file is read whole,
                # once; its keys and lineage decide the winners, and its rows are what a
                # copy-on-write keeps, without reading the file again.
                whole_files = _read_whole(whole, tasks)
                existing = self._matching(list(whole_files.values()), wanted, keys)
            else:
                existing = self._existing(table, tasks, wanted, prune, keys)
            existing_rows = existing.num_rows
            if existing_rows:
                self.register("_df_existing", existing)
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
        losers = self.sql(
            f"SELECT DISTINCT i.{_q(ROW_COLUMN)} AS n FROM _df_in i JOIN _df_existing e ON {join} "
            f"WHERE ({newer}) IS NOT TRUE"
        ).column("n")
        replaced = self.sql(
            f"SELECT {', '.join('i.' + _q(k) for k in keys)} FROM _df_in i "
            f"JOIN _df_existing e ON {join} WHERE {newer}"
        )
        self.unregister("_df_existing")
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
        self.register("_df_replaced", replaced)
        not_replaced = " AND ".join(f"r.{_q(k)} IS NOT DISTINCT FROM e.{_q(k)}" for k in keys)
        rewrite = self._overlapping(table, tasks, replaced, keys)
        dropped: list[DataFile]
        kept: list[pa.Table]
        if rewrite and all(task.file.file_path in whole_files for task in rewrite):
            files = [whole_files[task.file.file_path] for task in rewrite]
            dropped, kept = self._without_replaced(table, rewrite, files, not_replaced)
        else:
            dropped, kept = [], []
            for task in rewrite:
                found = whole.to_table([task])
                self.register("_df_file", found)
                rest = self.sql(
                    "SELECT e.* FROM _df_file e "
                    f"WHERE NOT EXISTS (SELECT 1 FROM _df_replaced r WHERE {not_replaced})"
                )
                self.unregister("_df_file")
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
        self,
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
        self.register("_df_file", tagged)
        try:
            rest = self.sql(
                "SELECT e.* FROM _df_file e "
                f"WHERE NOT EXISTS (SELECT 1 FROM _df_replaced r WHERE {not_replaced})"
            )
        finally:
            self.unregister("_df_file")
        counts = rest.group_by(FILE_COLUMN).aggregate([(FILE_COLUMN, "count")]).to_pylist()
        left = {row[FILE_COLUMN]: row[f"{FILE_COLUMN}_count"] for row in counts}
        changed = [i for i, rows in enumerate(files) if left.get(i, 0) != rows.num_rows]
        if not changed:
            return [], []
        mask = pc.is_in(rest.column(FILE_COLUMN), value_set=pa.array(changed, pa.int64()))
        kept = rest.filter(mask).drop_columns([FILE_COLUMN])
        return [tasks[i].file for i in changed], [cast_to(kept, table)] if kept.num_rows else []

    def _matching(
        self, files: Sequence[pa.Table], columns: Sequence[str], keys: Sequence[str]
    ) -> pa.Table:
        """The ``columns`` of the rows of ``files`` (in memory) whose key is in ``_df_in``."""
        if not files:
            return pa.table({k: pa.array([], pa.null()) for k in columns})
        rows = pa.concat_tables(
            [f.select(list(columns)) for f in files], promote_options="permissive"
        )
        match = " AND ".join(f"i.{_q(k)} IS NOT DISTINCT FROM e.{_q(k)}" for k in keys)
        self.register("_df_scan", rows)
        try:
            return self.sql(
                f"SELECT e.* FROM _df_scan e WHERE EXISTS (SELECT 1 FROM _df_in i WHERE {match})"
            )
        finally:
            self.unregister("_df_scan")

    def _existing(
        self,
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
            found = self._scan_matching(table, tasks, list(keys), prune, keys)
            if not found.num_rows:
                return found
            tasks = self._overlapping(table, tasks, found, keys)
        return self._scan_matching(table, tasks, wanted, prune, keys)

    def _scan_matching(
        self,
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
        self._con.register("_df_scan", reader)
        try:
            return self.sql(
                f"SELECT e.* FROM _df_scan e WHERE EXISTS (SELECT 1 FROM _df_in i WHERE {match})"
            )
        finally:
            self._con.unregister("_df_scan")

    def _overlapping(
        self,
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
        self.register("_df_files", bounds)
        self.register("_df_groups", groups)
        try:
            found = self.sql(
                "SELECT DISTINCT f._df_task FROM _df_files f, _df_groups g WHERE "
                + " AND ".join(conditions)
            )
        finally:
            self.unregister("_df_files")
            self.unregister("_df_groups")
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


__all__ = ["CRASH_ENV", "LINEAGE_ORDER", "DuckDBEngine", "append_rows", "write_data_files"]
