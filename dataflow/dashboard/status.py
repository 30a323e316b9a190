"""The freshness and data-quality status of the tables a visual reads — its badges.

* **Freshness** comes from the ``Dataflow/Freshness LagSeconds`` datapoint every run records
  per clean table (:mod:`dataflow.monitor.freshness`): the lag then, plus the time since. A table
  is *stale* when that lag is past the threshold of the project's freshness alarm (the alarm on
  ``Dataflow/Freshness LagSeconds`` for that table, else the pipeline-wide one; without either,
  twice the schedule period, as :mod:`dataflow.monitor.default_alarms` sets it). A table no run
  has measured (an external raw table, a table without a time column) is *unknown*.
* **Quality** is the newest DQ evaluation of the table (:class:`~dataflow.quality.history.
  HistoryStore`): *passed* when every rule passed, *failed* otherwise (with the failing rules),
  *none* when no ruleset was ever evaluated on it.

Example:
    >>> from dataflow.config import load_settings
    >>> from dataflow.metadata import open_metadata
    >>> settings = load_settings("/nonexistent-project", env={})
    >>> status = table_statuses(settings, open_metadata("sqlite://"), ["market.prices"])
    >>> status["market.prices"].freshness, status["market.prices"].quality
    ('unknown', 'none')
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dataflow.config import AlarmSpec, Settings
    from dataflow.metadata.db import MetadataDB

FRESHNESS_NAMESPACE = "Dataflow/Freshness"
FRESHNESS_METRIC = "LagSeconds"


@dataclass(frozen=True)
class TableStatus:
    """What a reader of one table should know about it.

    Attributes:
        table: ``database.table``.
        freshness: ``fresh``, ``stale`` or ``unknown``.
        lag_seconds: how old its newest row is now (None when unknown).
        threshold_seconds: the lag past which it is stale.
        measured_at: when a run last measured the lag.
        quality: ``passed``, ``failed`` or ``none`` (never evaluated).
        score: the newest evaluation's score (passed rules / rules).
        rules_passed: rules that passed in it.
        rules_failed: rules that failed (or errored) in it.
        failed_rules: the failing rules with their messages.
        evaluated_at: when it was evaluated.
    """

    table: str
    freshness: str = "unknown"
    lag_seconds: float | None = None
    threshold_seconds: float | None = None
    measured_at: dt.datetime | None = None
    quality: str = "none"
    score: float | None = None
    rules_passed: int = 0
    rules_failed: int = 0
    failed_rules: list[str] = field(default_factory=list)
    evaluated_at: dt.datetime | None = None

    def to_json(self) -> dict[str, Any]:
        """The status as JSON-ready data (times ISO)."""
        return {
            "table": self.table,
            "freshness": self.freshness,
            "lag_seconds": self.lag_seconds,
            "threshold_seconds": self.threshold_seconds,
            "measured_at": self.measured_at.isoformat() if self.measured_at else None,
            "quality": self.quality,
            "score": self.score,
            "rules_passed": self.rules_passed,
            "rules_failed": self.rules_failed,
            "failed_rules": list(self.failed_rules),
            "evaluated_at": self.evaluated_at.isoformat() if self.evaluated_at else None,
        }


def table_statuses(
    settings: Settings,
    db: MetadataDB,
    tables: Iterable[str],
    *,
    now: dt.datetime | None = None,
) -> dict[str, TableStatus]:
    """The status of each table (``database.table``), by name.

    Example:
        >>> table_statuses(settings, db, ["market.time_series"])  # doctest: +SKIP
        {'market.time_series': TableStatus(table='market.time_series', freshness='fresh', ...)}
    """
    now = now or dt.datetime.now(dt.UTC)
    alarms = freshness_alarms(settings)
    found: dict[str, TableStatus] = {}
    for table in sorted(set(tables)):
        database, _, name = table.partition(".")
        freshness = _freshness(settings, db, database, name, alarms, now)
        found[table] = TableStatus(table, **freshness, **_quality(db, table))
    return found


def freshness_threshold(
    settings: Settings, table: str | None = None, alarms: list[AlarmSpec] | None = None
) -> tuple[float, str]:
    """The lag (seconds) past which ``table`` is stale, and where that number comes from.

    The threshold of the enabled alarm that watches the table's ``Dataflow/Freshness
    LagSeconds`` (a per-table alarm first, then the pipeline-level one — the default
    ``dataflow-freshness``), else the default alarm's rule: twice the schedule period (2 days
    unscheduled).

    Args:
        settings: the project's settings.
        table: a table name in the default namespace (None: the pipeline-level threshold).
        alarms: the freshness alarms, when the caller already has them (else read here).

    Example:
        >>> from dataflow.config import load_settings
        >>> freshness_threshold(load_settings("/nonexistent-project", env={}), "prices")
        (172800.0, 'alarm dataflow-freshness')
    """
    from dataflow.monitor.default_alarms import UNSCHEDULED_FRESHNESS_PERIOD, schedule_period

    watching = freshness_alarms(settings) if alarms is None else alarms
    for wanted in (table, None):
        for alarm in watching:
            if (alarm.metric.dimensions or {}).get("table") == wanted:
                return float(alarm.threshold), f"alarm {alarm.name}"
    period = schedule_period(settings) or UNSCHEDULED_FRESHNESS_PERIOD
    return float(2 * period), "twice the schedule period"


def freshness_alarms(settings: Settings) -> list[AlarmSpec]:
    """The project's enabled alarms on ``Dataflow/Freshness LagSeconds`` going above a value."""
    from dataflow.monitor.default_alarms import configured_alarms

    return [
        alarm
        for alarm in configured_alarms(settings)
        if alarm.enabled
        and alarm.metric.namespace == FRESHNESS_NAMESPACE
        and alarm.metric.name == FRESHNESS_METRIC
        and str(alarm.comparison_operator).startswith("GreaterThan")
    ]


def _freshness(
    settings: Settings,
    db: MetadataDB,
    database: str,
    name: str,
    alarms: list[AlarmSpec],
    now: dt.datetime,
) -> dict[str, Any]:
    import sqlalchemy as sa

    from dataflow.metadata.schema import canonical_dimensions, metric_points

    if database != settings.catalog.namespace.lower():
        return {}  # only the clean tables of the pipeline's namespace are measured
    t = metric_points.c
    query = (
        sa.select(t.value, t.timestamp)
        .where(
            t.namespace == FRESHNESS_NAMESPACE,
            t.name == FRESHNESS_METRIC,
            t.dimensions == canonical_dimensions({"pipeline": settings.name, "table": name}),
        )
        .order_by(t.timestamp.desc(), t.id.desc())
        .limit(1)
    )
    with db.read() as conn:
        row = conn.execute(query).first()
    if row is None:
        return {}
    measured: dt.datetime = row.timestamp
    if measured.tzinfo is None:
        measured = measured.replace(tzinfo=dt.UTC)
    lag = float(row.value) + max(0.0, (now - measured).total_seconds())
    threshold, _source = freshness_threshold(settings, name, alarms)
    return {
        "freshness": "stale" if lag > threshold else "fresh",
        "lag_seconds": round(lag, 3),
        "threshold_seconds": threshold,
        "measured_at": measured,
    }


def _quality(db: MetadataDB, table: str) -> dict[str, Any]:
    from dataflow.quality.history import HistoryStore

    newest = HistoryStore(db).evaluations(dataset=table, limit=1)
    if not newest:
        return {}
    evaluation = newest[0]
    failed = [r for r in evaluation.rule_results if r.result != "PASS"]
    completed = evaluation.completed_on
    if completed is not None and completed.tzinfo is None:
        completed = completed.replace(tzinfo=dt.UTC)
    return {
        "quality": "failed" if failed else "passed",
        "score": evaluation.score,
        "rules_passed": len(evaluation.rule_results) - len(failed),
        "rules_failed": len(failed),
        "failed_rules": [f"{r.name}: {r.message}" if r.message else r.name for r in failed],
        "evaluated_at": completed,
    }


__all__ = ["TableStatus", "freshness_alarms", "freshness_threshold", "table_statuses"]
