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
   keeps only the files that can hold one (:func:`.merge.overlapping`); their rows
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

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa

from dataflow.engines.base import (
    CONTRACT_DIALECT,
    EngineCapabilities,
    WriteResult,
    run_over,
    translate,
)
from dataflow.engines.duckdb.attempts import finish, recover
from dataflow.engines.duckdb.iceberg_io import (
    append_rows,
    cast_to,
    cluster_column,
    transaction,
    write_data_files,
)
from dataflow.engines.duckdb.manifest_cache import install as install_manifest_cache
from dataflow.engines.duckdb.merge import _q, merge, overlapping
from dataflow.engines.duckdb.pruning import (
    MAX_PLAN_VALUES,
    plan_tasks,
    prune_filter,
)
from dataflow.errors import ModelError

if TYPE_CHECKING:
    from pyiceberg.manifest import DataFile
    from pyiceberg.table import Table

LINEAGE_ORDER = ("_received_at", "_raw_key", "_raw_line", "_record_path")
"""Columns that decide which of two rows with the same key wins, most significant first."""

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
        return run_over(self, text, relations)

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
        recover(table)  # files of a commit a crash cut short (we hold the project lock)
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
                merge(self, table, txn, incoming, keys, order, props, result, target)
            self.before_commit(table)
            committed = txn.commit_transaction()
            finish(txn, table.io)
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
        recover(table)
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
            for task in overlapping(self, table, planned, gone, keys):
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
        finish(txn, table.io)
        return deleted


__all__ = ["CRASH_ENV", "LINEAGE_ORDER", "DuckDBEngine", "append_rows", "write_data_files"]
