"""The files a query reads of each table: one snapshot, pruned; and the parameters it binds.

* :func:`resolve_snapshot` picks the snapshot of an Iceberg table a query reads — the current
  one, or ``--as-of`` a snapshot id or a time (time travel). It is resolved once per query, so
  every reference to the table in that query sees the same data even while a transform commits.
* :func:`iceberg_scan` plans the snapshot's data files with a row filter (pyiceberg prunes by
  partition values and column statistics); :func:`external_scan` lists an external table's
  partition files. Both return a :class:`~dataflow.query.planning.TableScan` with the bytes.
* :func:`bind_params` shapes ``--param`` values for DuckDB: a mapping for ``$name``, a list in
  order for ``?``.

Example:
    >>> bind_params(("AAPL", 5), None)
    ['AAPL', 5]
"""

from __future__ import annotations

import datetime as dt
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dataflow.errors import ConfigError, StorageError
from dataflow.query.planning import DataFile, TableScan
from dataflow.query.views import external_files, local_path

if TYPE_CHECKING:
    from pyiceberg.expressions import BooleanExpression
    from pyiceberg.table import Table
    from pyiceberg.table.snapshots import Snapshot

    from dataflow.catalog.external import ExternalCatalog, ExternalTable


def resolve_snapshot(table: Table, as_of: str | int | dt.datetime | None) -> Snapshot | None:
    """The snapshot of ``table`` a query reads: current, by id, or the last one at a time.

    ``as_of`` is a snapshot id (an int, or digits), an aware or naive-UTC datetime, or an
    ISO-8601 text (``2024-05-01T12:00:00Z``).

    Raises:
        ConfigError: no such snapshot, or no snapshot at or before that time.

    Example:
        >>> resolve_snapshot(table, "2024-05-01T00:00:00Z")  # doctest: +SKIP
        Snapshot(snapshot_id=..., ...)
    """
    name = ".".join(table.name())
    if as_of is None:
        return table.current_snapshot()
    if isinstance(as_of, int) or (isinstance(as_of, str) and re.fullmatch(r"-?\d+", as_of.strip())):
        snapshot = table.snapshot_by_id(int(as_of))
        if snapshot is None:
            raise ConfigError(
                f"--as-of {as_of}: table {name} has no snapshot with that id — "
                f"see `dataflow catalog snapshots {name}`"
            )
        return snapshot
    if isinstance(as_of, dt.datetime):
        moment = as_of
    else:
        try:
            moment = dt.datetime.fromisoformat(as_of.strip())
        except ValueError:
            raise ConfigError(
                f"--as-of {as_of!r}: give a snapshot id or an ISO-8601 time, e.g. "
                "2024-05-01T12:00:00Z"
            ) from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    snapshot = table.snapshot_as_of_timestamp(int(moment.timestamp() * 1000))
    if snapshot is None:
        raise ConfigError(
            f"--as-of {moment.isoformat()}: table {name} has no snapshot at or before that time"
        )
    return snapshot


def plan_files(table: Table, snapshot_id: int | None, row_filter: Any) -> tuple[Any, list[Any]]:
    """The scan and its planned files; without the filter if pyiceberg cannot use it."""
    from pyiceberg.expressions import AlwaysTrue

    scan = table.scan(row_filter=row_filter, snapshot_id=snapshot_id, case_sensitive=False)
    try:
        return scan, list(scan.plan_files())
    except (ValueError, TypeError) as exc:  # a literal that does not bind: do not prune
        if isinstance(row_filter, AlwaysTrue):
            raise StorageError(f"cannot plan table {'.'.join(table.name())}: {exc}") from exc
        return plan_files(table, snapshot_id, AlwaysTrue())


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _hive_partition(path: str) -> str:
    return "/".join(part for part in path.split(os.sep)[:-1] if "=" in part)


PLAN_CACHE_SIZE = 256
"""How many planned ``(table metadata, snapshot, filter)`` file lists a process keeps."""

# A snapshot never changes once committed, so the files pyiceberg plans for a metadata file,
# a snapshot id and a row filter are always the same: cache them (process-wide; a session
# per thread shares it). A commit writes a new metadata file, hence a new key.
_planned: OrderedDict[tuple[Any, ...], tuple[Any, list[Any], tuple[DataFile, ...]]] = OrderedDict()
_planned_lock = threading.Lock()


def clear_plan_cache() -> None:
    """Forget every cached file plan (tests; memory)."""
    with _planned_lock:
        _planned.clear()


def _plan(
    table: Table, snapshot_id: int | None, row_filter: Any
) -> tuple[tuple[Any, ...], Any, list[Any], tuple[DataFile, ...]]:
    """``(cache key, scan, tasks, files)`` of a snapshot pruned by ``row_filter``, cached."""
    key = (table.metadata_location, tuple(table.name()), snapshot_id, repr(row_filter))
    with _planned_lock:
        hit = _planned.get(key) if table.metadata_location else None
        if hit is not None:
            _planned.move_to_end(key)
    if hit is not None:
        return (key, *hit)
    scan, tasks = plan_files(table, snapshot_id, row_filter)
    specs = table.specs()
    schema = scan.projection()
    files = tuple(
        DataFile(
            local_path(task.file.file_path),
            task.file.file_size_in_bytes,
            specs[task.file.spec_id].partition_to_path(task.file.partition, schema)
            if specs[task.file.spec_id].fields
            else "",
        )
        for task in tasks
    )
    with _planned_lock:
        if table.metadata_location:
            _planned[key] = (scan, tasks, files)
        while len(_planned) > PLAN_CACHE_SIZE:
            _planned.popitem(last=False)
    return key, scan, tasks, files


def iceberg_scan(
    key: tuple[str, str],
    table: Table,
    snapshot: Snapshot | None,
    row_filter: BooleanExpression,
    count_totals: bool = False,
) -> tuple[TableScan, tuple[Any, Any, list[Any], tuple[Any, ...]]]:
    """The pruned files of ``table`` at ``snapshot``, and what a view needs to read them.

    The file list is planned once per metadata file, snapshot and filter in a process (see
    :data:`PLAN_CACHE_SIZE`): a dashboard repeating a query skips pyiceberg's manifest reads.

    Returns:
        The TableScan and ``(table, pyiceberg scan, planned tasks, plan key)`` for
        :func:`~dataflow.query.views.iceberg_select` (equal keys: the same files).

    Example:
        >>> key = ("market", "t")
        >>> scan, pending = iceberg_scan(key, table, None, AlwaysTrue())  # doctest: +SKIP
        >>> len(scan.files)  # doctest: +SKIP
        3
    """
    from pyiceberg.expressions import AlwaysTrue

    snapshot_id = snapshot.snapshot_id if snapshot is not None else None
    plan_key, scan, tasks, files = _plan(table, snapshot_id, row_filter)
    total_files = total_bytes = None
    if count_totals:
        every = (
            files
            if isinstance(row_filter, AlwaysTrue)
            else _plan(table, snapshot_id, AlwaysTrue())[3]
        )
        total_files = len(every)
        total_bytes = sum(f.size for f in every)
    table_scan = TableScan(
        *key,
        kind="iceberg",
        files=files,
        snapshot_id=snapshot_id,
        row_filter=repr(scan.row_filter),
        total_files=total_files,
        total_bytes=total_bytes,
    )
    return table_scan, (table, scan, tasks, plan_key)


def external_scan(
    key: tuple[str, str], table: ExternalTable, catalog: ExternalCatalog
) -> tuple[TableScan, list[str]]:
    """Every file of an external table's live partitions (no pruning: Athena reads them all)."""
    paths = external_files(table, catalog)
    files = tuple(DataFile(path, _size(path), _hive_partition(path)) for path in paths)
    return TableScan(*key, kind="external", files=files, total_files=len(files)), paths


def bind_params(
    params: Sequence[Any] | Mapping[str, Any] | None, tree: Any
) -> Sequence[Any] | Mapping[str, Any] | None:
    """Parameters shaped for the statement: ``$name`` takes a mapping, ``?`` a list in order.

    Raises:
        ConfigError: a ``$name`` without a value, or values for a statement without parameters.
    """
    if not params:
        return params or None
    if not isinstance(params, Mapping):
        return list(params)
    from sqlglot import exp

    holders = list(tree.find_all(exp.Placeholder)) if tree is not None else []
    names = [str(holder.this) for holder in holders if holder.this]
    if not holders:
        raise ConfigError(
            f"--param given ({', '.join(params)}) but the query has no $name or ? parameters"
        )
    if not names:
        return list(params.values())
    missing = sorted({name for name in names if name not in params})
    if missing:
        raise ConfigError(f"no value for ${missing[0]} — give it with --param {missing[0]}=VALUE")
    return {name: value for name, value in params.items() if name in set(names)}


__all__ = [
    "PLAN_CACHE_SIZE",
    "bind_params",
    "clear_plan_cache",
    "external_scan",
    "iceberg_scan",
    "plan_files",
    "resolve_snapshot",
]
