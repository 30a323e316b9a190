"""`/api/dashboards` and the dashboard pages through FastAPI's TestClient, on real data."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.exceptions import StarletteDeprecationWarning

from dataflow.config import Settings
from dataflow.dashboard import create_app
from dataflow.query import QuerySession

with warnings.catch_warnings():
    # Starlette 1.x warns that its TestClient prefers the httpx2 package; httpx still works.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

TOKEN = "dashboard-t0ken"
MARKET_VISUALS = [
    "last_price",
    "period_change",
    "range_52w",
    "candles",
    "performance",
    "fx",
    "fx_latest",
    "top_movers",
]


@pytest.fixture(scope="module")
def client(web_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(web_settings)) as made:
        yield made


@pytest.fixture(scope="module")
def guarded(web_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(web_settings, token=TOKEN), follow_redirects=False) as made:
        yield made


def data(client: TestClient, params: dict[str, Any] | None = None, name: str = "market") -> Any:
    response = client.post(f"/api/dashboards/{name}/data", json={"params": params or {}})
    assert response.status_code == 200, response.text
    return response.json()


def test_list(client: TestClient) -> None:
    response = client.get("/api/dashboards")
    assert response.status_code == 200, response.text
    (market,) = response.json()
    assert market["name"] == "market"
    assert market["origin"] == "built-in"
    assert market["visuals"] == len(MARKET_VISUALS)
    assert market["error"] is None


def test_spec_with_options_and_defaults(client: TestClient) -> None:
    response = client.get("/api/dashboards/market")
    assert response.status_code == 200, response.text
    spec = response.json()
    assert [v["name"] for s in spec["sheets"] for v in s["visuals"]] == MARKET_VISUALS
    symbol = spec["parameters"][0]
    assert symbol["control"] == "dropdown"
    assert symbol["value"] == "AAPL"
    assert {"value": "MSFT", "label": None} in symbol["options"]
    period = spec["parameters"][1]
    assert period["control"] == "date-range"
    assert len(period["value"]) == 2


def test_data_of_every_visual(client: TestClient, web_settings: Settings) -> None:
    body = data(client, {"symbol": "MSFT"})
    assert body["params"]["symbol"] == "MSFT"
    assert [v["name"] for v in body["visuals"]] == MARKET_VISUALS
    with QuerySession(web_settings) as session:
        close = session.execute(
            "SELECT round(close, 4) FROM market.time_series "
            "WHERE symbol = 'MSFT' AND interval = '1day' ORDER BY ts DESC LIMIT 1"
        ).rows[0][0]
    visuals = {v["name"]: v for v in body["visuals"]}
    assert visuals["last_price"]["rows"][0][0] == close
    for visual in body["visuals"]:
        assert visual["error"] is None, visual
        assert visual["row_count"] == len(visual["rows"]) > 0
        assert isinstance(visual["elapsed_ms"], float)
        assert {s["freshness"] for s in visual["status"]} <= {"fresh", "stale", "unknown"}
    candles = visuals["candles"]
    assert candles["tables"] == ["market.time_series"]
    assert candles["types"][0] == "VARCHAR"
    assert candles["types"][1] == "DOUBLE"
    status = candles["status"][0]
    assert status["table"] == "market.time_series"
    assert status["quality"] in {"passed", "failed"}
    assert status["rules_passed"] + status["rules_failed"] > 0
    assert data(client, {"symbol": "MSFT"})["visuals"][3]["cached"] is True


def test_dates_and_timestamps_come_as_iso_text(client: TestClient, web_settings: Settings) -> None:
    dashboards = web_settings.project_dir / "dashboards"
    dashboards.mkdir(exist_ok=True)
    (dashboards / "types.yaml").write_text(
        "title: Types\nsheets:\n  - name: s\n    visuals:\n"
        "      - name: t\n        type: table\n        sql: |\n"
        "          SELECT ts, ts::DATE AS day, 1.50::DECIMAL(5, 2) AS price, NULL AS nothing\n"
        "          FROM market.time_series ORDER BY ts LIMIT 1\n"
    )
    try:
        visual = data(client, name="types")["visuals"][0]
    finally:
        (dashboards / "types.yaml").unlink()
        if not any(dashboards.iterdir()):
            dashboards.rmdir()
    ts, day, price, nothing = visual["rows"][0]
    assert ts.endswith("+00:00")
    assert "T" in ts
    assert len(day) == 10
    assert price == 1.5
    assert nothing is None


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({"symbl": "AAPL"}, 400, "dashboard 'market' has no parameter 'symbl'"),
        ({"symbol": "NOPE"}, 400, "parameter symbol: 'NOPE' is not one of the options"),
        ({"period": ["2024-01-01"]}, 400, "parameter period: a date range is [from, to]"),
        ({"compare": "AAPL' OR 1=1 --"}, 400, "is not one of the options"),
    ],
)
def test_bad_parameters_are_clear_errors(
    client: TestClient, params: dict[str, Any], status: int, message: str
) -> None:
    response = client.post("/api/dashboards/market/data", json={"params": params})
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


def test_unknown_dashboard_and_non_json_posts(client: TestClient) -> None:
    for response in (
        client.get("/api/dashboards/nope"),
        client.post("/api/dashboards/nope/data", json={}),
        client.get("/dashboards/nope"),
    ):
        assert response.status_code == 404, response.text
        assert "no dashboard 'nope' (known: market)" in response.json()["error"]
    form = client.post("/api/dashboards/market/data", data={"params": "x"})
    assert form.status_code == 415, form.text
    assert data(client)["params"]["symbol"] == "AAPL"  # no body parameters: the defaults


def test_token_guards_the_api_and_the_pages(guarded: TestClient) -> None:
    assert guarded.get("/api/dashboards").status_code == 401
    assert guarded.post("/api/dashboards/market/data", json={}).status_code == 401
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert guarded.get("/api/dashboards", headers=auth).status_code == 200
    page = guarded.get("/dashboards/market")
    assert page.status_code == 303
    assert page.headers["location"].startswith("/login")
    assert guarded.get("/dashboards").status_code == 303


def test_pages_render(client: TestClient) -> None:
    page = client.get("/dashboards/market")
    assert page.status_code == 200
    assert 'data-name="market"' in page.text
    assert "/static/dashboard.js" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    listing = client.get("/dashboards")
    assert listing.status_code == 200
    assert 'href="/dashboards/market"' in listing.text
    home = client.get("/", follow_redirects=False)
    assert home.headers["location"] == "/dashboards/market"


def test_warm_up_serves_the_first_visitor_from_the_cache(web_settings: Settings) -> None:
    """``dataflow serve`` warms the Market dashboard up at start: the first load is cached."""
    import time

    app = create_app(web_settings, warm_up=True)
    with TestClient(app) as warmed:
        deadline = time.monotonic() + 60
        while True:
            runners = getattr(app.state, "dashboard_runners", {})
            thread_done = not any(t.name == "dashboard-warm-up" for t in threading.enumerate())
            if runners and thread_done:
                break
            assert time.monotonic() < deadline, "the warm-up did not finish"
            time.sleep(0.05)
        body = data(warmed)
        assert all(v["cached"] for v in body["visuals"]), [
            (v["name"], v["cached"]) for v in body["visuals"]
        ]
    with TestClient(create_app(web_settings)) as cold:
        assert not any(v["cached"] for v in data(cold)["visuals"])
