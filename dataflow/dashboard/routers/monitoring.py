"""Runs, metrics, alarms and logs: ``/api/runs``, ``/api/metrics``, ``/api/alarms`` (with each
alarm's history), ``/api/logs`` — and ``/metrics``, the Prometheus exposition of the same
database (:mod:`..prometheus`)."""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from dataflow.dashboard.deps import DbDep, SettingsDep
from dataflow.errors import ConfigError

router = APIRouter(prefix="/api", tags=["monitoring"])
prometheus_router = APIRouter(tags=["monitoring"])

RECORD_FIELDS = "fields ts, level, stage, logger, run_id, message"
"""The fields of a log record a message search shows (every record has them)."""


@router.get("/runs", summary="Run history")
def list_runs(
    db: DbDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    status: str | None = None,
) -> list[dict[str, Any]]:
    """Recent runs with their stages, newest first."""
    from dataflow.metadata import RunStore

    return [asdict(run) for run in RunStore(db).list(limit=limit, status=status)]


@router.get("/alarms", summary="Alarms and their states")
def list_alarms(settings: SettingsDep, db: DbDep) -> list[dict[str, Any]]:
    """The project's alarms (defaults when dataflow.yaml defines none) and their states."""
    from dataflow.dashboard.data import alarm_summaries

    return alarm_summaries(settings, db)


@router.get("/alarms/{name}/history", summary="An alarm's history (DescribeAlarmHistory)")
def alarm_history(
    settings: SettingsDep,
    db: DbDep,
    name: str,
    type: Annotated[
        str | None, Query(description="ConfigurationUpdate, StateUpdate or Action")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """History items of one alarm, most recent first: state transitions with their reasons,
    actions and configuration updates."""
    from dataflow.dashboard.data import alarm_history
    from dataflow.errors import ConfigError, NoSuchTableError
    from dataflow.monitor.alarm_store import ITEM_TYPES
    from dataflow.monitor.default_alarms import configured_alarms

    if type is not None and type not in ITEM_TYPES:
        raise ConfigError(f"unknown history item type {type!r}; use one of {', '.join(ITEM_TYPES)}")
    items = alarm_history(db, name, item_type=type, limit=limit)
    if not items and name not in {spec.name for spec in configured_alarms(settings)}:
        # NoSuchTableError is the app's "not found" (404).
        raise NoSuchTableError(f"no alarm {name!r} — see /api/alarms for the project's alarms")
    return items


RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
"""A run id or a prefix of one (``20261207T101500Z-1a2b``): letters, digits, ``-``, ``_``."""


def check_run_id(run: str) -> str:
    """``run`` if it can be a run id (or a prefix of one): it names a log file, so nothing else
    (``/``, ``..``, an absolute path) gets near the file system.

    Raises:
        ConfigError: anything else (400).

    Example:
        >>> check_run_id("20261207T101500Z-1a2b")
        '20261207T101500Z-1a2b'
    """
    if not RUN_ID.fullmatch(run):
        raise ConfigError(
            f"run {run[:80]!r} is not a run id — give an id from /api/runs (letters, digits, "
            "'-' and '_'; a prefix works)"
        )
    return run


@router.get("/logs", summary="Search the run logs (Logs Insights)")
def search_logs(
    settings: SettingsDep,
    query: Annotated[
        str | None,
        Query(description="A Logs Insights query, e.g. 'filter level = \"ERROR\" | limit 20'"),
    ] = None,
    filter: Annotated[
        str | None, Query(description="Only records whose message contains this text")
    ] = None,
    run: Annotated[str | None, Query(description="A run id or a unique prefix")] = None,
    stage: str | None = None,
    level: Annotated[str | None, Query(description="This level and above")] = None,
    since: Annotated[str | None, Query(description="15m, 2h, 3d, 1w or an ISO time")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> dict[str, Any]:
    """Log records (newest first) or a query's rows, as ``dataflow logs`` reads them.

    ``filter`` and ``query`` combine: the message filter runs first. Without either, the
    newest ``limit`` records come back.
    """
    from dataflow.dashboard.data import message_filter
    from dataflow.monitor.logquery import parse_since, query_logs

    if run is not None:
        check_run_id(run)
    text = query.strip() if query and query.strip() else None
    if filter:
        base = message_filter(filter)
        # A plain filter still returns whole records, newest first, like the tail does.
        text = f"{base} | {text}" if text else f"{base} | {RECORD_FIELDS} | sort @timestamp desc"
    result = query_logs(
        settings.state_dir / "logs",
        text,
        run_id=run,
        stage=stage,
        level=level,
        since=parse_since(since) if since else None,
        log_group=settings.name,
        limit=limit,
    )
    rows = result.rows if text is not None else list(reversed(result.rows))
    return {
        "columns": list(result.columns),
        "rows": rows,
        "files": result.files,
        "records_scanned": result.records_scanned,
    }


@router.get("/metrics", summary="Metrics that have datapoints (ListMetrics)")
def list_metrics(db: DbDep, namespace: str | None = None) -> list[dict[str, Any]]:
    """``namespace``, ``name`` and ``dimensions`` of every metric, sorted."""
    from dataflow.dashboard.data import metric_listing
    from dataflow.monitor.metrics import Metrics

    return metric_listing(Metrics(db).list_metrics(namespace))


@router.get("/metrics/data", summary="A statistic per period (GetMetricStatistics)")
def metric_data(
    db: DbDep,
    name: str,
    namespace: str = "Custom",
    dimension: Annotated[list[str] | None, Query(description="NAME=VALUE, repeatable")] = None,
    stat: Annotated[str, Query(description="Sum, Average, Minimum, Maximum, SampleCount, pNN")] = (
        "Average"
    ),
    period: Annotated[str, Query(description="60, 5m, 1h ...")] = "5m",
    start: Annotated[str, Query(description="ISO-8601 or relative (-3h)")] = "-3h",
    end: Annotated[str, Query(description="ISO-8601, relative or now")] = "now",
) -> dict[str, Any]:
    """The metric ``namespace`` + ``name`` + exactly the dimensions given, per period."""
    from dataflow.monitor.metrics import Metrics
    from dataflow.monitor.statistics import metric_statistics

    answer = metric_statistics(
        Metrics(db), namespace, name, dimensions=dimension, stat=stat, period=period,
        start=start, end=end,
    )  # fmt: skip
    return answer.to_json()


@prometheus_router.get(
    "/metrics",
    summary="Prometheus exposition",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
def prometheus(db: DbDep) -> Response:
    """The newest value of every metric as gauges, run counts by status, alarm states."""
    from dataflow.dashboard.prometheus import CONTENT_TYPE_LATEST, exposition

    return Response(exposition(db), media_type=CONTENT_TYPE_LATEST)


__all__ = ["prometheus_router", "router"]
