"""Runs, metrics and alarms: ``/api/runs``, ``/api/metrics``, ``/api/alarms`` — and
``/metrics``, the Prometheus exposition of the same database (:mod:`..prometheus`)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from dataflow.dashboard.deps import DbDep, SettingsDep

router = APIRouter(prefix="/api", tags=["monitoring"])
prometheus_router = APIRouter(tags=["monitoring"])


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
