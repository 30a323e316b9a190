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
from pathlib import Path
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


def freshness_threshold(settings: Settings, table: str | None = None) -> tuple[float, str]:
    """The lag (seconds) above which ``table`` is stale, and where that number comes from.

    The threshold of the alarm that watches the table's ``Dataflow/Freshness LagSeconds`` (a
    per-table alarm first, then the pipeline-level one — the default ``dataflow-freshness``),
    else the default alarm's rule: twice the schedule period (2 days unscheduled).

    Example:
        >>> from dataflow.config import load_settings
        >>> freshness_threshold(load_settings("/nonexistent-project", env={}))
        (172800.0, 'alarm dataflow-freshness')
    """
    from dataflow.monitor.default_alarms import (
        UNSCHEDULED_FRESHNESS_PERIOD,
        configured_alarms,
        schedule_period,
    )
    from dataflow.monitor.freshness import NAMESPACE

    watching = [
        spec
        for spec in configured_alarms(settings)
        if spec.metric.namespace == NAMESPACE
        and spec.metric.name == "LagSeconds"
        and str(spec.comparison_operator).startswith("GreaterThan")
    ]
    for wanted in (table, None):
        for spec in watching:
            if (spec.metric.dimensions or {}).get("table") == wanted:
                return float(spec.threshold), f"alarm {spec.name}"
    period = schedule_period(settings) or UNSCHEDULED_FRESHNESS_PERIOD
    return float(2 * period), "twice the schedule period"


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
    from dataflow.monitor.freshness import lag_seconds, newest_value

    now = now or dt.datetime.now(dt.UTC)
    catalog = open_catalog(settings)
    namespace = settings.catalog.namespace
    if (namespace,) not in {tuple(n) for n in catalog.list_namespaces()}:
        return []
    found = []
    for identifier in sorted(catalog.list_tables(namespace)):
        name = identifier[-1]
        if _is_quarantine(name):
            continue
        table = catalog.load_table(identifier)
        newest = newest_value(table)
        threshold, source = freshness_threshold(settings, name)
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
                "rows": _snapshot_rows(table),
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
            {"time": _iso(completed), "score": score, "run_id": run_id, "result_id": result_id}
        )
    return [{"dataset": name, "points": points} for name, points in sorted(series.items())]


# --- data quality page -----------------------------------------------------------------------


def _is_quarantine(name: str) -> bool:
    from dataflow.quality.audit import QUARANTINE_SUFFIX

    return name.endswith(QUARANTINE_SUFFIX)


def _snapshot_rows(table: Any) -> int | None:
    """The table's row count from its current snapshot's summary (no data read)."""
    snapshot = table.current_snapshot()
    if snapshot is None:
        return 0
    total = (snapshot.summary.additional_properties if snapshot.summary else {}).get(
        "total-records"
    )
    return int(total) if total is not None else None


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat()


def _clean_tables(settings: Settings) -> list[str]:
    """The names of the clean zone's tables (without quarantine tables); none without a zone."""
    from dataflow.catalog.iceberg import open_catalog

    catalog = open_catalog(settings)
    namespace = settings.catalog.namespace
    if (namespace,) not in {tuple(n) for n in catalog.list_namespaces()}:
        return []
    names = (identifier[-1] for identifier in catalog.list_tables(namespace))
    return sorted(n for n in names if not _is_quarantine(n))


def ruleset_listing(settings: Settings) -> list[dict[str, Any]]:
    """Each table's ruleset (project or built-in), its policy and where the policy comes from.

    Tables: the clean zone's, and every table a built-in or project ruleset names. A table
    without a ruleset is listed with ``source: None`` (it is published unaudited).

    Example:
        >>> import tempfile
        >>> from dataflow.config import load_settings
        >>> rows = ruleset_listing(load_settings(tempfile.mkdtemp(), env={}))
        >>> rows[0]["table"], rows[0]["source"], rows[0]["policy"], rows[0]["policy_source"]
        ('cryptocurrencies', 'built-in', 'warn', 'default')
    """
    from dataflow.errors import DataflowError
    from dataflow.quality.dqdl import load_ruleset
    from dataflow.quality.policy import BUILTIN_RULESETS, POLICY_KEY, find_ruleset, policy_for

    project = Path(settings.project_dir) / "quality"
    names = {p.stem for p in BUILTIN_RULESETS.glob("*.dqdl")}
    names |= {p.stem for p in project.glob("*.dqdl")} if project.is_dir() else set()
    names |= set(_clean_tables(settings))
    found = []
    for table in sorted(names):
        path = find_ruleset(settings, table)
        row: dict[str, Any] = {"table": table, "source": None, "path": None, "policy": None}
        row |= {"policy_source": None, "rules": 0, "text": None, "error": None}
        found.append(row)
        if path is None:
            continue
        builtin = path.parent == BUILTIN_RULESETS
        row["source"] = "built-in" if builtin else "project"
        row["path"] = f"{'dataflow/quality/rulesets' if builtin else 'quality'}/{path.name}"
        row["text"] = path.read_text(encoding="utf-8")
        try:
            ruleset = load_ruleset(path)
            row["policy"] = str(policy_for(table, ruleset, settings))
        except DataflowError as exc:
            row["error"] = str(exc)
            continue
        row["rules"] = len(ruleset.rules)
        if table in settings.quality.policies:
            row["policy_source"] = f"quality.policies.{table} in dataflow.yaml"
        elif ruleset.metadata.get(POLICY_KEY) is not None:
            row["policy_source"] = f'ruleset Metadata "{POLICY_KEY}"'
        elif settings.quality.default_policy is not None:
            row["policy_source"] = "quality.default_policy in dataflow.yaml"
        else:
            row["policy_source"] = "default"
    return found


def latest_outcomes(db: MetadataDB) -> list[dict[str, Any]]:
    """The newest evaluation of every dataset, with every rule's outcome and message.

    Example:
        >>> from dataflow.metadata import open_metadata
        >>> latest_outcomes(open_metadata("sqlite://"))
        []
    """
    from dataflow.metadata.schema import dq_evaluations
    from dataflow.quality.history import HistoryStore

    with db.read() as conn:
        datasets = conn.execute(sa.select(dq_evaluations.c.dataset).distinct()).scalars().all()
    store = HistoryStore(db)
    found = []
    for dataset in sorted(datasets):
        (evaluation,) = store.evaluations(dataset=dataset, limit=1)
        failed = evaluation.count("FAIL")
        errored = evaluation.count("ERROR")
        found.append(
            {
                "dataset": dataset,
                "table": dataset.rpartition(".")[2],
                "result_id": evaluation.result_id,
                "ruleset_name": evaluation.ruleset_name,
                "completed_on": _iso(evaluation.completed_on),
                "run_id": evaluation.run_id,
                "snapshot_id": evaluation.snapshot_id,
                "score": evaluation.score,
                "rules_passed": evaluation.count("PASS"),
                "rules_failed": failed,
                "rules_errored": errored,
                "rows": evaluation.rows,
                "result": "PASS" if evaluation.passed else "FAIL",
                "rules": [
                    {
                        "name": r.name,
                        "description": r.description,
                        "result": r.result,
                        "message": r.message,
                        "metrics": dict(r.metrics),
                    }
                    for r in evaluation.rule_results
                ],
            }
        )
    return found


def quarantine_counts(settings: Settings) -> list[dict[str, Any]]:
    """Rows in every ``<table>__quarantine`` table, in total and per run that put them there.

    The per-run split needs the run id column the quality gate writes (``_dq_run_id``);
    only that column is read.

    Example:
        >>> import tempfile
        >>> from dataflow.config import load_settings
        >>> quarantine_counts(load_settings(tempfile.mkdtemp(), env={}))
        []
    """
    from collections import Counter

    from dataflow.catalog.iceberg import open_catalog
    from dataflow.quality.audit import QUARANTINE_SUFFIX

    catalog = open_catalog(settings)
    namespace = settings.catalog.namespace
    if (namespace,) not in {tuple(n) for n in catalog.list_namespaces()}:
        return []
    found = []
    for identifier in sorted(catalog.list_tables(namespace)):
        name = identifier[-1]
        if not _is_quarantine(name):
            continue
        table = catalog.load_table(identifier)
        run_column = next(
            (c for c in ("_dq_run_id", "_run_id") if c in table.schema().column_names), None
        )
        by_run: list[dict[str, Any]] = []
        if run_column is not None and table.current_snapshot() is not None:
            values = table.scan(selected_fields=(run_column,)).to_arrow().column(run_column)
            counts = Counter(values.to_pylist())
            by_run = [
                {"run_id": run, "rows": n}
                for run, n in sorted(counts.items(), key=lambda kv: str(kv[0]), reverse=True)
            ]
        found.append(
            {
                "table": name,
                "source_table": name.removesuffix(QUARANTINE_SUFFIX),
                "rows": _snapshot_rows(table),
                "run_column": run_column,
                "by_run": by_run,
            }
        )
    return found


def dq_history(db: MetadataDB, dataset: str, *, limit: int = 50) -> list[dict[str, Any]]:
    """The score and rule counts of a dataset's evaluations, oldest first.

    The fields of ``dataflow dq history --format json`` (which lists newest first).

    Example:
        >>> from dataflow.metadata import open_metadata
        >>> dq_history(open_metadata("sqlite://"), "market.time_series")
        []
    """
    from dataflow.quality.history import HistoryStore

    evaluations = HistoryStore(db).evaluations(dataset=dataset, limit=limit)
    return [
        {
            "ResultId": e.result_id,
            "CompletedOn": _iso(e.completed_on),
            "RulesetName": e.ruleset_name,
            "EvaluationContext": e.evaluation_context,
            "Score": e.score,
            "RulesPassed": e.count("PASS"),
            "RulesFailed": e.count("FAIL"),
            "RulesErrored": e.count("ERROR"),
            "Rows": e.rows,
            "SnapshotId": e.snapshot_id,
            "RunId": e.run_id,
        }
        for e in reversed(evaluations)
    ]


def dq_metric_keys(db: MetadataDB, dataset: str) -> list[str]:
    """The rule and analyzer metric keys recorded for a dataset (``Column.close.Completeness``).

    Example:
        >>> from dataflow.metadata import open_metadata
        >>> dq_metric_keys(open_metadata("sqlite://"), "market.time_series")
        []
    """
    from dataflow.metadata.schema import dq_metrics

    query = (
        sa.select(dq_metrics.c.key)
        .where(dq_metrics.c.dataset == dataset)
        .distinct()
        .order_by(dq_metrics.c.key)
    )
    with db.read() as conn:
        return [str(k) for k in conn.execute(query).scalars()]


def dq_metric_series(
    db: MetadataDB, dataset: str, key: str, *, limit: int = 200
) -> list[dict[str, Any]]:
    """One DQ metric of a dataset over its recent evaluations, oldest first.

    Example:
        >>> from dataflow.metadata import open_metadata
        >>> dq_metric_series(open_metadata("sqlite://"), "market.t", "Dataset.*.RowCount")
        []
    """
    from dataflow.metadata.schema import dq_metrics as m

    query = (
        sa.select(m.c.recorded_at, m.c.value, m.c.result_id)
        .where(m.c.dataset == dataset, m.c.key == key)
        .order_by(m.c.recorded_at.desc(), m.c.id.desc())
        .limit(limit)
    )
    with db.read() as conn:
        rows = conn.execute(query).all()
    return [
        {"time": _iso(at), "value": value, "result_id": result_id}
        for at, value, result_id in reversed(rows)
    ]


# --- monitoring page -------------------------------------------------------------------------


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
            "timestamp": _iso(item.timestamp),
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
    "dq_history",
    "dq_metric_keys",
    "dq_metric_series",
    "dq_score_trend",
    "freshness_threshold",
    "latest_metric_values",
    "latest_outcomes",
    "message_filter",
    "metric_listing",
    "quarantine_counts",
    "ruleset_listing",
    "run_counts",
    "table_freshness",
]
