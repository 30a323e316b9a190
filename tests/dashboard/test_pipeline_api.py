"""`/api/pipeline`: freshness per table and the DQ score trend, against the catalog and the
metadata database read directly."""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from starlette.exceptions import StarletteDeprecationWarning

from dataflow.catalog.iceberg import open_catalog
from dataflow.config import AlarmSpec, Settings, load_settings
from dataflow.dashboard import create_app
from dataflow.dashboard.deps import get_settings
from dataflow.metadata import open_metadata
from dataflow.metadata.schema import dq_evaluations
from dataflow.monitor.default_alarms import default_alarms
from dataflow.monitor.freshness import lag_seconds, newest_value

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def client(web_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(web_settings)) as test_client:
        yield test_client


def _ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, f"{response.status_code}: {response.text}"
    return response.json()


def test_freshness_of_every_clean_table_matches_the_manifests(
    client: TestClient, web_settings: Settings
) -> None:
    before = dt.datetime.now(dt.UTC)
    answer = _ok(client.get("/api/pipeline/freshness"))
    (alarm,) = [a for a in default_alarms(web_settings) if a.name == "dataflow-freshness"]
    assert answer["threshold_seconds"] == alarm.threshold == 2 * 86_400
    assert answer["threshold_source"] == "alarm dataflow-freshness"

    catalog = open_catalog(web_settings)
    namespace = web_settings.catalog.namespace
    expected = {}
    for identifier in catalog.list_tables(namespace):
        table = catalog.load_table(identifier)
        expected[identifier[-1]] = (newest_value(table), table.scan().to_arrow().num_rows)
    rows = {row["table"]: row for row in answer["tables"]}
    assert set(rows) == {name for name in expected if not name.endswith("__quarantine")}
    assert {"time_series", "quotes", "stocks"} <= set(rows)
    for name, row in rows.items():
        newest, count = expected[name]
        assert row["rows"] == count, name
        if newest is None:
            assert (row["newest"], row["lag_seconds"], row["status"]) == (None, None, "unknown")
            continue
        lag = lag_seconds(before, newest)
        assert row["newest"] == newest.isoformat(), name
        assert lag <= row["lag_seconds"] <= lag + 60, name
        assert row["status"] == ("stale" if row["lag_seconds"] > alarm.threshold else "fresh")
    # The simulator's bars end at the last full bar: the run just now left them fresh.
    assert rows["time_series"]["status"] == "fresh"
    assert rows["stocks"]["status"] == "unknown"  # reference data: no time column


def test_dq_trend_is_the_score_of_every_evaluation(
    client: TestClient, web_settings: Settings
) -> None:
    trend = _ok(client.get("/api/pipeline/dq-trend"))
    db = open_metadata(web_settings.metadata_url)
    try:
        with db.read() as conn:
            rows = conn.execute(
                sa.select(
                    dq_evaluations.c.dataset, dq_evaluations.c.score, dq_evaluations.c.run_id
                ).order_by(dq_evaluations.c.completed_on)
            ).all()
    finally:
        db.dispose()
    assert rows, "the pipeline run recorded no evaluation"
    expected: dict[str, list[tuple[float, str]]] = {}
    for dataset, score, run_id in rows:
        expected.setdefault(dataset, []).append((score, run_id))
    got = {s["dataset"]: [(p["score"], p["run_id"]) for p in s["points"]] for s in trend}
    assert got == expected
    assert "market.time_series" in got
    assert [s["dataset"] for s in trend] == sorted(got)
    limited = _ok(client.get("/api/pipeline/dq-trend?limit=1"))
    assert sum(len(s["points"]) for s in limited) == 1
    assert client.get("/api/pipeline/dq-trend?limit=0").status_code == 422


def test_a_project_without_runs_answers_empty(client: TestClient, tmp_path: Path) -> None:
    empty = load_settings(tmp_path / "empty", env={})
    client.app.dependency_overrides[get_settings] = lambda: empty  # type: ignore[attr-defined]
    try:
        freshness = _ok(client.get("/api/pipeline/freshness"))
        assert freshness["tables"] == []
        assert freshness["threshold_seconds"] == 2 * 86_400
        assert _ok(client.get("/api/pipeline/dq-trend")) == []
    finally:
        client.app.dependency_overrides.clear()  # type: ignore[attr-defined]


def test_a_project_alarm_on_one_table_sets_that_table_s_threshold(
    client: TestClient, web_settings: Settings
) -> None:
    alarm = {
        "name": "bars-late",
        "metric": {
            "namespace": "Dataflow/Freshness",
            "name": "LagSeconds",
            "dimensions": {"pipeline": web_settings.name, "table": "time_series"},
        },
        "statistic": "Maximum",
        "period": 300,
        "evaluation_periods": 1,
        "comparison_operator": "GreaterThanThreshold",
        "threshold": 1,
    }
    strict = web_settings.model_copy(update={"alarms": [AlarmSpec.model_validate(alarm)]})
    client.app.dependency_overrides[get_settings] = lambda: strict  # type: ignore[attr-defined]
    try:
        rows = {r["table"]: r for r in _ok(client.get("/api/pipeline/freshness"))["tables"]}
    finally:
        client.app.dependency_overrides.clear()  # type: ignore[attr-defined]
    bars = rows["time_series"]
    assert (bars["threshold_seconds"], bars["threshold_source"]) == (1.0, "alarm bars-late")
    assert bars["status"] == "stale"  # the newest bar is older than one second
    # Other tables have no alarm of their own and none for the pipeline: the default rule.
    assert rows["quotes"]["threshold_source"] == "twice the schedule period"


def test_pipeline_routes_need_the_token(web_settings: Settings) -> None:
    with TestClient(create_app(web_settings, token="secret-token")) as guarded:
        assert guarded.get("/api/pipeline/freshness").status_code == 401
        headers = {"Authorization": "Bearer secret-token"}
        assert guarded.get("/api/pipeline/dq-trend", headers=headers).status_code == 200
