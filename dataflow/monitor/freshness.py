"""Freshness: how old the newest row of every clean table is, as CloudWatch-style metrics.

The newest timestamp comes from the Iceberg manifests (each data file's upper bound of its time
column), so no data is read. Every run records ``Dataflow/Freshness LagSeconds`` per table
(dimensions ``pipeline`` and ``table``) and once for the pipeline alone, as the lag of its
freshest table: the pipeline-level value grows only when nothing new lands anywhere, which is
what the default freshness alarm watches (a per-table alarm watches one table, e.g. 1h bars).

Example:
    >>> lag_seconds(dt.datetime(2024, 1, 2, 12, tzinfo=dt.UTC), dt.date(2024, 1, 2))
    43200.0
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyiceberg.table import Table

    from dataflow.config import Settings
    from dataflow.monitor.metrics import Metrics

log = logging.getLogger("dataflow.monitor.freshness")

NAMESPACE = "Dataflow/Freshness"
TIME_COLUMNS = ("ts", "date")
"""The column that says when a row's data is from, in order of preference."""


def lag_seconds(now: dt.datetime, newest: dt.datetime | dt.date) -> float:
    """Seconds from ``newest`` (a timestamp, or a date read as its midnight UTC) to ``now``."""
    if not isinstance(newest, dt.datetime):
        newest = dt.datetime.combine(newest, dt.time(), tzinfo=dt.UTC)
    if newest.tzinfo is None:
        newest = newest.replace(tzinfo=dt.UTC)
    return max(0.0, (now - newest).total_seconds())


def newest_value(table: Table) -> dt.datetime | dt.date | None:
    """The largest value of the table's time column, from the manifests' upper bounds."""
    from pyiceberg.conversions import from_bytes
    from pyiceberg.expressions import AlwaysTrue
    from pyiceberg.types import DateType, PrimitiveType, TimestampType, TimestamptzType

    from dataflow.engines.duckdb.pruning import plan_tasks

    schema = table.schema()
    field = next((schema.find_field(c) for c in TIME_COLUMNS if c in schema.column_names), None)
    head = table.current_snapshot()
    if field is None or head is None:
        return None
    if not isinstance(field.field_type, PrimitiveType):
        return None
    newest: Any = None
    # The manifests' entries only: pyiceberg's plan_files() also builds each file's residual
    # filter in Python, most of its cost on a table of thousands of files.
    for task in plan_tasks(table, AlwaysTrue(), head.snapshot_id):
        raw = (task.file.upper_bounds or {}).get(field.field_id)
        if raw is None:
            continue
        value = from_bytes(field.field_type, raw)
        newest = value if newest is None else max(newest, value)
    if newest is None:
        return None
    if isinstance(field.field_type, TimestamptzType | TimestampType):
        return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=int(newest))
    if isinstance(field.field_type, DateType):
        return dt.date(1970, 1, 1) + dt.timedelta(days=int(newest))
    return None


def record_freshness(
    settings: Settings, metrics: Metrics, *, now: dt.datetime | None = None
) -> dict[str, float]:
    """Record the lag of every clean table with a time column; return table -> seconds."""
    from dataflow.catalog.iceberg import open_catalog
    from dataflow.monitor.metrics import Datapoint

    now = now or dt.datetime.now(dt.UTC)
    run = metrics.run_id
    catalog = open_catalog(settings)
    namespace = settings.catalog.namespace
    if (namespace,) not in {tuple(n) for n in catalog.list_namespaces()}:
        return {}
    lags: dict[str, float] = {}
    for identifier in catalog.list_tables(namespace):
        newest = newest_value(catalog.load_table(identifier))
        if newest is not None:
            lags[identifier[-1]] = lag_seconds(now, newest)
    pipeline = {"pipeline": settings.name}
    points = [
        Datapoint(NAMESPACE, "LagSeconds", lag, "Seconds", {**pipeline, "table": name}, now, run)
        for name, lag in sorted(lags.items())
    ]
    if lags:
        freshest = min(lags.values())
        points.append(Datapoint(NAMESPACE, "LagSeconds", freshest, "Seconds", pipeline, now, run))
        log.info("freshness: the freshest table is %.0f s old", freshest)
    metrics.record_many(points)
    return lags
