"""The HTTP API of `dataflow serve`, through FastAPI's TestClient, over a real pipeline run."""

from __future__ import annotations

import datetime as dt
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.exceptions import StarletteDeprecationWarning

from dataflow.config import Settings, load_settings
from dataflow.dashboard import create_app
from dataflow.dashboard.deps import get_settings
from dataflow.metadata import open_metadata
from dataflow.monitor.metrics import Metrics
from dataflow.pipeline import RunOptions, run_pipeline
from dataflow.query import QuerySession

with warnings.catch_warnings():
    # Starlette 1.x warns that its TestClient prefers the httpx2 package; httpx still works.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

TOKEN = "t0ken-for-tests"
COUNT_SQL = "SELECT count(*) AS n FROM market.time_series"


@pytest.fixture(scope="module")
def api_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """One real pipeline run, plus a custom metric with known datapoints."""
    settings = load_settings(tmp_path_factory.mktemp("api") / "project", env={})
    result = run_pipeline(settings, RunOptions(endpoints=["time_series", "quote"]))
    assert result.status == "succeeded", result.results
    db = open_metadata(settings.metadata_url)
    try:
        now = dt.datetime.now(dt.UTC)
        metrics = Metrics(db)
        for seconds_ago, value in ((120, 4.0), (60, 6.0), (1, 7.5)):
            metrics.record(
                "Custom/Api",
                "LatencyMs",
                value,
                "Milliseconds",
                {"route": "quotes", "data-set": "x"},
                now - dt.timedelta(seconds=seconds_ago),
            )
    finally:
        db.dispose()
    return settings


@pytest.fixture(scope="module")
def api_count(api_settings: Settings) -> int:
    """The oracle: market.time_series' row count, straight from a QuerySession."""
    with QuerySession(api_settings) as session:
        (count,) = session.execute(COUNT_SQL).rows[0]
    assert count > 0
    return int(count)


@pytest.fixture(scope="module")
def api_client(api_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(api_settings)) as client:
        yield client


@pytest.fixture
def api_token_client(api_settings: Settings) -> Iterator[TestClient]:
    # One app per test: each counts its own failed sign-ins (too many get 429).
    with TestClient(create_app(api_settings, token=TOKEN)) as client:
        yield client


def _ok(response: httpx.Response, status: int = 200) -> Any:
    """The body of a response that must have ``status`` (the body is the failure message)."""
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    return response.json() if "json" in response.headers["content-type"] else response.text


# --- queries -------------------------------------------------------------------------------------


def test_post_query_runs_it_and_returns_the_athena_execution(
    api_client: TestClient, api_count: int
) -> None:
    execution = _ok(api_client.post("/api/queries", json={"sql": COUNT_SQL}))
    assert isinstance(execution, dict)
    assert execution["Status"]["State"] == "SUCCEEDED"
    assert execution["Statistics"]["RowsReturned"] == 1
    assert execution["Statistics"]["DataScannedInBytes"] > 0
    query_id = execution["QueryExecutionId"]

    again = _ok(api_client.get(f"/api/queries/{query_id}"))
    assert again == execution
    assert _ok(api_client.get(f"/api/queries/{query_id[:8]}")) == execution

    results = _ok(api_client.get(f"/api/queries/{query_id}/results?format=json"))
    assert results == {
        "QueryExecutionId": query_id,
        "ColumnInfo": results["ColumnInfo"],
        "Rows": [{"n": api_count}],
    }
    assert results["ColumnInfo"][0]["Name"] == "n"

    response = api_client.get(f"/api/queries/{query_id}/results?format=csv")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.text.splitlines() == ['"n"', f'"{api_count}"']

    history = _ok(api_client.get("/api/queries?limit=5"))
    assert query_id in [e["QueryExecutionId"] for e in history]


def test_athena_dialect_and_bound_parameters(api_client: TestClient) -> None:
    body = {
        "sql": "SELECT symbol, count_if(close > ?) AS up FROM market.time_series "
        "WHERE symbol = ? GROUP BY symbol",
        "dialect": "athena",
        "params": [0, "AAPL"],
    }
    execution = _ok(api_client.post("/api/queries", json=body))
    rows = _ok(api_client.get(f"/api/queries/{execution['QueryExecutionId']}/results"))
    assert [r["symbol"] for r in rows["Rows"]] == ["AAPL"]
    assert rows["Rows"][0]["up"] > 0


def test_parameters_are_bound_not_interpolated(api_client: TestClient) -> None:
    body = {"sql": "SELECT $s AS s", "params": {"s": "x'; DROP TABLE t; --"}}
    execution = _ok(api_client.post("/api/queries", json=body))
    rows = _ok(api_client.get(f"/api/queries/{execution['QueryExecutionId']}/results"))
    assert rows["Rows"] == [{"s": "x'; DROP TABLE t; --"}]


@pytest.mark.parametrize(
    ("sql", "error"),
    [
        ("SELEC 1", "SYNTAX_ERROR: line 1:"),
        ("SELECT * FROM market.nope", "TABLE_NOT_FOUND: line 1:15:"),
        ("SELECT nope FROM market.time_series", "COLUMN_NOT_FOUND"),
        ("DROP TABLE market.time_series", "NOT_SUPPORTED"),
        ("COPY (SELECT 1) TO '/tmp/x.csv'", "NOT_SUPPORTED"),
    ],
)
def test_failed_query_is_400_with_athena_error_and_recorded(
    api_client: TestClient, sql: str, error: str
) -> None:
    response = api_client.post("/api/queries", json={"sql": sql})
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith(error), response.text
    assert "Traceback" not in response.text
    latest = _ok(api_client.get("/api/queries?limit=1"))[0]
    assert latest["Query"] == sql
    assert latest["Status"]["State"] == "FAILED"


def test_results_of_a_failed_query_are_400(api_client: TestClient) -> None:
    api_client.post("/api/queries", json={"sql": "SELEC 1"})
    failed = _ok(api_client.get("/api/queries?limit=1"))[0]
    response = api_client.get(f"/api/queries/{failed['QueryExecutionId']}/results")
    assert response.status_code == 400, response.text
    assert "FAILED and has no results" in response.json()["error"]


def test_unknown_query_id_is_404(api_client: TestClient) -> None:
    response = api_client.get("/api/queries/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404, response.text
    assert "no query execution" in response.json()["error"]


def test_dry_run_plans_without_running(api_client: TestClient) -> None:
    before = len(_ok(api_client.get("/api/queries?limit=1000")))
    plan = _ok(api_client.post("/api/queries/dry-run", json={"sql": COUNT_SQL}))
    assert plan["bytes_scanned"] > 0
    assert plan["cost_usd"] > 0
    assert [t["table"] for t in plan["tables"]] == ["market.time_series"]
    assert len(_ok(api_client.get("/api/queries?limit=1000"))) == before


@pytest.mark.parametrize(
    ("headers", "content"),
    [
        ({"Content-Type": "application/x-www-form-urlencoded"}, "sql=SELECT+1"),
        ({"Content-Type": "text/plain"}, '{"sql": "SELECT 1"}'),
        ({"Content-Type": "multipart/form-data; boundary=x"}, "--x--"),
        ({}, '{"sql": "SELECT 1"}'),
    ],
)
def test_posts_accept_json_only(
    api_client: TestClient, headers: dict[str, str], content: str
) -> None:
    response = api_client.post("/api/queries", content=content, headers=headers)
    assert response.status_code == 415, response.text
    assert "application/json" in response.json()["error"]


def test_invalid_body_is_422_json(api_client: TestClient) -> None:
    response = api_client.post("/api/queries", json={"query": "SELECT 1"})
    assert response.status_code == 422, response.text
    assert response.json()["error"].startswith("invalid request: body.sql: Field required")


# --- catalog -------------------------------------------------------------------------------------


def test_catalog_databases_and_tables(api_client: TestClient) -> None:
    assert _ok(api_client.get("/api/catalog/databases")) == ["market", "raw"]
    names = [f"{t['database']}.{t['name']}" for t in _ok(api_client.get("/api/catalog/tables"))]
    assert names == ["market.quotes", "market.time_series", "raw.quote", "raw.time_series"]
    raw = _ok(api_client.get("/api/catalog/tables?database=raw"))
    assert {t["type"] for t in raw} == {"external"}


def test_catalog_table_details(api_client: TestClient) -> None:
    table = _ok(api_client.get("/api/catalog/tables/market/time_series"))
    assert table["type"] == "iceberg"
    assert "symbol" in [c["name"] for c in table["columns"]]
    assert table["snapshots"] >= 1
    versions = _ok(api_client.get("/api/catalog/tables/market/time_series/versions"))
    assert any(v["current"] for v in versions)
    partitions = _ok(api_client.get("/api/catalog/tables/market/time_series/partitions"))
    assert sum(p["records"] for p in partitions) > 0
    snapshots = _ok(api_client.get("/api/catalog/tables/market/time_series/snapshots"))
    assert str(snapshots[-1]["snapshot_id"]) in str(table["current_snapshot_id"])
    external = _ok(api_client.get("/api/catalog/tables/raw/quote/partitions"))
    assert external
    assert all("ingest_date=" + p["values"][0] in p["location"] for p in external)


def test_catalog_errors(api_client: TestClient) -> None:
    missing = api_client.get("/api/catalog/tables/market/nope")
    assert missing.status_code == 404, missing.text
    assert "nope" in missing.json()["error"]
    external = api_client.get("/api/catalog/tables/raw/quote/snapshots")
    assert external.status_code == 400, external.text
    assert "no snapshots" in external.json()["error"]


# --- runs, alarms, metrics -----------------------------------------------------------------------


def test_runs(api_client: TestClient) -> None:
    runs = _ok(api_client.get("/api/runs"))
    assert [r["status"] for r in runs] == ["succeeded"]
    assert {s["stage"] for s in runs[0]["stages"]} >= {"ingest", "transform"}
    bad = api_client.get("/api/runs?status=bogus")
    assert bad.status_code == 400, bad.text


def test_alarms(api_client: TestClient) -> None:
    alarms = _ok(api_client.get("/api/alarms"))
    assert alarms, "a new project has default alarms"
    assert {a["state"] for a in alarms} <= {"OK", "ALARM", "INSUFFICIENT_DATA"}
    assert all(a["reason"] for a in alarms)


def test_metrics_list_and_statistics(api_client: TestClient) -> None:
    listed = _ok(api_client.get("/api/metrics?namespace=Custom/Api"))
    assert listed == [
        {
            "namespace": "Custom/Api",
            "name": "LatencyMs",
            "dimensions": {"data-set": "x", "route": "quotes"},
        }
    ]
    query = (
        "/api/metrics/data?namespace=Custom/Api&name=LatencyMs&dimension=route=quotes"
        "&dimension=data-set=x&stat={stat}&period=1h&start=-1d"
    )
    data = _ok(api_client.get(query.format(stat="Sum")))
    assert sum(p["value"] for p in data["datapoints"]) == 17.5
    assert data["period"] == 3600
    maximum = _ok(api_client.get(query.format(stat="Maximum")))
    assert max(p["value"] for p in maximum["datapoints"]) == 7.5
    # Exactly this dimension set: one dimension less is another metric.
    fewer = _ok(api_client.get(query.format(stat="Sum").replace("&dimension=data-set=x", "")))
    assert fewer["datapoints"] == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ("stat=Median", "unknown statistic 'Median'"),
        ("stat=Sum&period=0", "is not a duration"),
        ("stat=Sum&dimension=route", "use NAME=VALUE"),
        ("stat=Sum&start=now&end=-1h", "is not after start"),
    ],
)
def test_metric_statistics_bad_input_is_400(
    api_client: TestClient, params: str, message: str
) -> None:
    response = api_client.get(f"/api/metrics/data?name=LatencyMs&{params}")
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


def test_prometheus_exposition(api_client: TestClient) -> None:
    response = api_client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    latency = families["dataflow_custom_api_latency_ms"]
    assert latency.type == "gauge"
    assert [(s.labels, s.value) for s in latency.samples] == [
        ({"route": "quotes", "data_set": "x"}, 7.5)
    ]
    runs = {s.labels["status"]: s.value for s in families["dataflow_pipeline_runs"].samples}
    assert runs["succeeded"] == 1.0
    assert runs["failed"] == 0.0
    requests = families["dataflow_ingest_requests"]
    endpoints = {s.labels.get("endpoint") for s in requests.samples}
    assert {"quote", "time_series"} <= endpoints
    assert all(s.value > 0 for s in requests.samples)


# --- safety, docs, errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/api/queries", "/api/catalog/databases", "/api/runs", "/api/alarms", "/metrics"]
)
def test_token_guards_api_and_metrics(api_token_client: TestClient, path: str) -> None:
    missing = api_token_client.get(path)
    assert missing.status_code == 401, missing.text
    assert missing.headers["www-authenticate"] == "Bearer"
    assert TOKEN not in missing.text
    wrong = api_token_client.get(path, headers={"Authorization": "Bearer not-it"})
    assert wrong.status_code == 401, wrong.text
    basic = api_token_client.get(path, headers={"Authorization": f"Basic {TOKEN}"})
    assert basic.status_code == 401, basic.text
    right = api_token_client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
    assert right.status_code == 200, right.text


def test_token_guards_posts(api_token_client: TestClient) -> None:
    response = api_token_client.post("/api/queries", json={"sql": "SELECT 1"})
    assert response.status_code == 401, response.text
    ok = api_token_client.post(
        "/api/queries", json={"sql": "SELECT 1"}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("path", ["/healthz", "/docs", "/openapi.json"])
def test_open_routes_need_no_token(api_token_client: TestClient, path: str) -> None:
    response = api_token_client.get(path)
    assert response.status_code == 200, response.text


def test_docs_page_is_self_contained(api_client: TestClient) -> None:
    response = api_client.get("/docs")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    page = response.text
    assert "<script" not in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "no external assets"
    for path in ("/api/queries", "/api/queries/{query_id}/results", "/api/metrics/data"):
        assert f"<code>{path}</code>" in page
    schema = _ok(api_client.get("/openapi.json"))
    assert "/api/catalog/tables/{database}/{table}/snapshots" in schema["paths"]
    assert "/docs" not in schema["paths"]


def test_unknown_route_is_json_404(api_client: TestClient) -> None:
    response = api_client.get("/api/nope")
    assert response.status_code == 404, response.text
    assert response.json() == {"error": "Not Found"}


def test_settings_dependency_can_be_overridden(api_settings: Settings, tmp_path: Path) -> None:
    app = create_app(api_settings)
    empty = load_settings(tmp_path / "empty", env={})
    app.dependency_overrides[get_settings] = lambda: empty
    with TestClient(app) as client:
        assert _ok(client.get("/api/runs")) == []
        assert _ok(client.get("/api/catalog/tables")) == []


def test_unexpected_errors_hide_the_traceback(api_settings: Settings) -> None:
    app = create_app(api_settings)

    def broken() -> Settings:
        raise RuntimeError("secret internals at /some/path")

    app.dependency_overrides[get_settings] = broken
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/api/runs")
    assert response.status_code == 500, response.text
    assert response.json() == {"error": "internal error (RuntimeError) — see the server log"}
