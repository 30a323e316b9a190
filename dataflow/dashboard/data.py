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


__all__ = [
    "LatestValue",
    "alarm_summaries",
    "latest_metric_values",
    "metric_listing",
    "run_counts",
]
