"""What the routes and the Prometheus collector read from the metadata database.

The routes stay thin: whatever loops over rows, or joins two sources, lives here.

Example:
    >>> from dataflow.metadata import open_metadata
    >>> db = open_metadata("sqlite://")
    >>> latest_metric_values(db), run_counts(db)["succeeded"]
    ([], 0)
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from dataflow.metadata.schema import metric_points, runs

if TYPE_CHECKING:
    from dataflow.config import Settings
    from dataflow.metadata.db import MetadataDB


@dataclass(frozen=True)
class LatestValue:
    """The newest datapoint of one metric (namespace + name + exact dimensions)."""

    namespace: str
    name: str
    dimensions: dict[str, str]
    value: float
    unit: str
    timestamp: dt.datetime


def latest_metric_values(db: MetadataDB) -> list[LatestValue]:
    """The newest datapoint of every metric, sorted by namespace, name and dimensions.

    "Newest" is by timestamp (a datapoint may be put with a past timestamp), then by insertion.

    Example:
        >>> from dataflow.metadata import open_metadata
        >>> from dataflow.monitor.metrics import Metrics
        >>> db = open_metadata("sqlite://")
        >>> Metrics(db).record("Dataflow/Ingest", "Requests", 3, "Count", {"endpoint": "quote"})
        >>> Metrics(db).record("Dataflow/Ingest", "Requests", 5, "Count", {"endpoint": "quote"})
        >>> [(v.name, v.value) for v in latest_metric_values(db)]
        [('Requests', 5.0)]
    """
    t = metric_points.c
    rank = (
        sa.func.row_number()
        .over(
            partition_by=(t.namespace, t.name, t.dimensions),
            order_by=(t.timestamp.desc(), t.id.desc()),
        )
        .label("rank")
    )
    ranked = sa.select(
        t.namespace, t.name, t.dimensions, t.value, t.unit, t.timestamp, rank
    ).subquery()
    query = (
        sa.select(ranked)
        .where(ranked.c.rank == 1)
        .order_by(ranked.c.namespace, ranked.c.name, ranked.c.dimensions)
    )
    with db.read() as conn:
        rows = conn.execute(query).mappings().all()
    return [
        LatestValue(
            r["namespace"],
            r["name"],
            json.loads(r["dimensions"]),
            r["value"],
            r["unit"],
            r["timestamp"],
        )
        for r in rows
    ]


def run_counts(db: MetadataDB) -> dict[str, int]:
    """How many runs are in each run status (every status listed, 0 when none).

    Example:
        >>> from dataflow.metadata import open_metadata
        >>> sorted(run_counts(open_metadata("sqlite://")))[:2]
        ['failed', 'interrupted']
    """
    from dataflow.metadata import RUN_STATUSES

    counts = dict.fromkeys(RUN_STATUSES, 0)
    query = sa.select(runs.c.status, sa.func.count()).group_by(runs.c.status)
    with db.read() as conn:
        for status, count in conn.execute(query).all():
            counts[str(status)] = int(count)
    return counts


def alarm_summaries(settings: Settings, db: MetadataDB) -> list[dict[str, Any]]:
    """Every configured alarm with its stored state (``INSUFFICIENT_DATA`` if never evaluated).

    Example:
        >>> from dataflow.config import load_settings
        >>> from dataflow.metadata import open_metadata
        >>> rows = alarm_summaries(load_settings("/nonexistent-project", env={}),
        ...                        open_metadata("sqlite://"))
        >>> rows[0]["state"], rows[0]["reason"]
        ('INSUFFICIENT_DATA', 'Unchecked: Initial alarm creation')
    """
    from dataflow.monitor.alarm_store import AlarmStore
    from dataflow.monitor.alarms import INITIAL_REASON
    from dataflow.monitor.default_alarms import configured_alarms

    stored = {r.name: r for r in AlarmStore(db).list_states()}
    found = []
    for spec in configured_alarms(settings):
        record = stored.get(spec.name)
        found.append(
            {
                "name": spec.name,
                "state": record.state if record else "INSUFFICIENT_DATA",
                "reason": record.reason if record else INITIAL_REASON,
                "updated": record.updated_at if record else None,
                "evaluated": record.evaluated_at if record else None,
                "enabled": spec.enabled,
                "metric": {"namespace": spec.metric.namespace, "name": spec.metric.name},
                "dimensions": dict(spec.metric.dimensions or {}),
                "statistic": spec.statistic,
                "threshold": spec.threshold,
                "comparison_operator": str(spec.comparison_operator),
            }
        )
    return found


def metric_listing(found: Sequence[tuple[str, str, Mapping[str, str]]]) -> list[dict[str, Any]]:
    """``Metrics.list_metrics()`` as JSON objects."""
    return [{"namespace": ns, "name": name, "dimensions": dict(dims)} for ns, name, dims in found]


# --- pipeline page ---------------------------------------------------------------------------


def table_freshness(settings: Settings, *, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Every clean table's newest row, its lag and ``fresh`` / ``stale`` / ``unknown``.

    Measured as the pipeline measures it (:mod:`dataflow.monitor.freshness`: the Iceberg
    manifests' upper bound of ``ts`` or ``date``, no data read); quarantine tables are left
    out. ``unknown``: the table has no time column (reference data) or no rows.

    Example:
        >>> import tempfile
        >>> from dataflow.config import load_settings
        >>> table_freshness(load_settings(tempfile.mkdtemp(), env={}))
        []
    """
    from dataflow.catalog.iceberg import open_catalog
    from dataflow.dashboard.status import freshness_alarms, freshness_threshold
    from dataflow.monitor.freshness import lag_seconds, newest_value

    now = now or dt.datetime.now(dt.UTC)
    catalog = open_catalog(settings)
    namespace = settings.catalog.namespace
    if (namespace,) not in {tuple(n) for n in catalog.list_namespaces()}:
        return []
    alarms = freshness_alarms(settings)
    found = []
    for identifier in sorted(catalog.list_tables(namespace)):
        name = identifier[-1]
        if is_quarantine(name):
            continue
        table = catalog.load_table(identifier)
        newest = newest_value(table)
        threshold, source = freshness_threshold(settings, name, alarms)
        lag = lag_seconds(now, newest) if newest is not None else None
        status = "unknown" if lag is None else ("stale" if lag > threshold else "fresh")
        found.append(
            {
                "table": name,
                "newest": newest.isoformat() if newest is not None else None,
                "lag_seconds": lag,
                "status": status,
                "threshold_seconds": threshold,
                "threshold_source": source,
                "rows": snapshot_rows(table),
            }
        )
    return found


def dq_score_trend(db: MetadataDB, *, limit: int = 1000) -> list[dict[str, Any]]:
    """The score of every table's recent evaluations, oldest first, one series per dataset.

    Example:
        >>> from dataflow.metadata import open_metadata
        >>> dq_score_trend(open_metadata("sqlite://"))
        []
    """
    from dataflow.metadata.schema import dq_evaluations as e

    query = (
        sa.select(e.c.dataset, e.c.completed_on, e.c.score, e.c.run_id, e.c.result_id)
        .order_by(e.c.completed_on.desc(), e.c.result_id.desc())
        .limit(limit)
    )
    with db.read() as conn:
        rows = conn.execute(query).all()
    series: dict[str, list[dict[str, Any]]] = {}
    for dataset, completed, score, run_id, result_id in reversed(rows):
        series.setdefault(dataset, []).append(
            {"time": iso(completed), "score": score, "run_id": run_id, "result_id": result_id}
        )
    return [{"dataset": name, "points": points} for name, points in sorted(series.items())]


# --- shared by the page readers ------------------------------------------------------------


def is_quarantine(name: str) -> bool:
    """True for a ``<table>__quarantine`` table."""
    from dataflow.quality.audit import QUARANTINE_SUFFIX

    return name.endswith(QUARANTINE_SUFFIX)


def snapshot_rows(table: Any) -> int | None:
    """The table's row count from its current snapshot's summary (no data read)."""
    snapshot = table.current_snapshot()
    if snapshot is None:
        return 0
    total = (snapshot.summary.additional_properties if snapshot.summary else {}).get(
        "total-records"
    )
    return int(total) if total is not None else None


def iso(value: dt.datetime | None) -> str | None:
    """ISO-8601 with a zone (naive datetimes from the database are UTC)."""
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat()


def clean_tables(settings: Settings) -> list[str]:
    """The names of the clean zone's tables (without quarantine tables); none without a zone."""
    from dataflow.catalog.iceberg import open_catalog

    catalog = open_catalog(settings)
    namespace = settings.catalog.namespace
    if (namespace,) not in {tuple(n) for n in catalog.list_namespaces()}:
        return []
    names = (identifier[-1] for identifier in catalog.list_tables(namespace))
    return sorted(n for n in names if not is_quarantine(n))


def alarm_history(
    db: MetadataDB, name: str, *, item_type: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """An alarm's history items (DescribeAlarmHistory), most recent first.

    Example:
        >>> from dataflow.metadata import open_metadata
        >>> alarm_history(open_metadata("sqlite://"), "dataflow-run-failed")
        []
    """
    from dataflow.monitor.alarm_store import AlarmStore

    return [
        {
            "name": item.name,
            "timestamp": iso(item.timestamp),
            "type": item.item_type,
            "old_state": item.old_state,
            "new_state": item.new_state,
            "summary": item.summary,
            "data": item.data,
        }
        for item in AlarmStore(db).history(name, item_type=item_type, limit=limit)
    ]


def message_filter(text: str) -> str:
    """A Logs Insights query keeping the records whose message contains ``text``.

    Example:
        >>> message_filter('say "hi"')
        'filter @message like "say \\\\"hi\\\\""'
    """
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'filter @message like "{escaped}"'


__all__ = [
    "LatestValue",
    "alarm_history",
    "alarm_summaries",
    "clean_tables",
    "dq_score_trend",
    "is_quarantine",
    "iso",
    "latest_metric_values",
    "message_filter",
    "metric_listing",
    "run_counts",
    "snapshot_rows",
    "table_freshness",
]
