"""``/api/pipeline``: what the Pipeline page shows besides runs and alarms.

Runs come from ``/api/runs`` and alarms from ``/api/alarms`` (:mod:`.monitoring`); this router
adds the freshness of every clean table and the DQ score trend.

Example:
    >>> sorted(route.path for route in router.routes)
    ['/api/pipeline/dq-trend', '/api/pipeline/freshness']
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from dataflow.dashboard.deps import DbDep, SettingsDep

router = APIRouter(prefix="/api/pipeline", tags=["pipeline"])


@router.get("/freshness", summary="Freshness of every clean table")
def freshness(settings: SettingsDep) -> dict[str, Any]:
    """Each table's newest row (from the Iceberg manifests), lag and fresh/stale status.

    A table is stale when its lag is above the threshold of the alarm watching
    ``Dataflow/Freshness LagSeconds`` (the default ``dataflow-freshness``: twice the
    schedule period).
    """
    import datetime as dt

    from dataflow.dashboard.data import table_freshness
    from dataflow.dashboard.status import freshness_threshold

    now = dt.datetime.now(dt.UTC)
    threshold, source = freshness_threshold(settings)
    return {
        "measured_at": now.isoformat(),
        "threshold_seconds": threshold,
        "threshold_source": source,
        "tables": table_freshness(settings, now=now),
    }


@router.get("/dq-trend", summary="DQ score per table over time")
def dq_trend(
    db: DbDep, limit: Annotated[int, Query(ge=1, le=10_000)] = 1000
) -> list[dict[str, Any]]:
    """The score of the last ``limit`` evaluations, one series per dataset, oldest first."""
    from dataflow.dashboard.data import dq_score_trend

    return dq_score_trend(db, limit=limit)


__all__ = ["router"]
