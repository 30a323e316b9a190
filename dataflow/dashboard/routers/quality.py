"""``/api/quality``: rulesets and policies, latest outcomes, quarantine counts, DQ history.

Example:
    >>> sorted(route.path for route in router.routes)[:3]
    ['/api/quality/history', '/api/quality/metrics', '/api/quality/metrics/series']
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from dataflow.dashboard.deps import DbDep, SettingsDep

router = APIRouter(prefix="/api/quality", tags=["quality"])

TableQuery = Annotated[str, Query(description="The dataset: DB.TABLE or TABLE (default DB).")]


def _dataset(settings: SettingsDep, table: str) -> str:
    from dataflow.quality.datasets import split_table_name

    return ".".join(split_table_name(table, settings.catalog.namespace))


@router.get("/rulesets", summary="Rulesets and their policies")
def rulesets(settings: SettingsDep) -> list[dict[str, Any]]:
    """Each table's ruleset (``quality/<table>.dqdl`` or built-in), text, rule count, policy."""
    from dataflow.dashboard.quality_data import ruleset_listing

    return ruleset_listing(settings)


@router.get("/outcomes", summary="The latest evaluation of every table")
def outcomes(db: DbDep) -> list[dict[str, Any]]:
    """Score, rule counts, PASS/FAIL and every rule's outcome with its EvaluationMessage."""
    from dataflow.dashboard.quality_data import latest_outcomes

    return latest_outcomes(db)


@router.get("/quarantine", summary="Rows in the quarantine tables")
def quarantine(settings: SettingsDep) -> list[dict[str, Any]]:
    """Rows in each ``<table>__quarantine``, in total and per run."""
    from dataflow.dashboard.quality_data import quarantine_counts

    return quarantine_counts(settings)


@router.get("/history", summary="Score and rule counts over time (dq history)")
def history(
    settings: SettingsDep,
    db: DbDep,
    table: TableQuery,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> list[dict[str, Any]]:
    """The fields of ``dataflow dq history --format json``, oldest first."""
    from dataflow.dashboard.quality_data import dq_history

    return dq_history(db, _dataset(settings, table), limit=limit)


@router.get("/metrics", summary="DQ metric keys of a table")
def metric_keys(settings: SettingsDep, db: DbDep, table: TableQuery) -> list[str]:
    """Keys like ``Column.close.Completeness`` or ``Dataset.*.RowCount``, sorted."""
    from dataflow.dashboard.quality_data import dq_metric_keys

    return dq_metric_keys(db, _dataset(settings, table))


@router.get("/metrics/series", summary="One DQ metric over time")
def metric_series(
    settings: SettingsDep,
    db: DbDep,
    table: TableQuery,
    key: Annotated[str, Query(description="A metric key from /api/quality/metrics")],
    limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
) -> list[dict[str, Any]]:
    """``time``, ``value`` and ``result_id`` of the metric's last ``limit`` values, oldest first."""
    from dataflow.dashboard.quality_data import dq_metric_series

    return dq_metric_series(db, _dataset(settings, table), key, limit=limit)


__all__ = ["router"]
