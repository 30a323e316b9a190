"""The Catalog page's API: sample rows and snapshot ids, through FastAPI's TestClient."""

from __future__ import annotations

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

SAMPLE = "/api/catalog/tables/market/time_series/sample"


@pytest.fixture(scope="module")
def client(web_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(web_settings)) as test_client:
        yield test_client


def _history_ids(client: TestClient) -> list[str]:
    response = client.get("/api/queries?limit=1000")
    assert response.status_code == 200, response.text
    return [e["QueryExecutionId"] for e in response.json()]


def test_sample_rows_default_to_20_and_match_the_query_layer(
    client: TestClient, web_settings: Settings
) -> None:
    with QuerySession(web_settings) as session:
        oracle = session.execute("SELECT * FROM market.time_series LIMIT 20")
    before = _history_ids(client)

    response = client.get(SAMPLE)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["database"] == "market"
    assert data["table"] == "time_series"
    assert data["limit"] == 20
    assert [c["name"] for c in data["columns"]] == oracle.columns
    assert [c["type"] for c in data["columns"]] == oracle.types
    assert len(data["rows"]) == 20
    assert set(data["rows"][0]) == set(oracle.columns)
    # Browsing the catalog is not a query execution: the history is unchanged.
    assert _history_ids(client) == before


@pytest.mark.parametrize("limit", [1, 7, 200])
def test_sample_limit(client: TestClient, limit: int) -> None:
    data = client.get(SAMPLE, params={"limit": limit}).json()
    assert len(data["rows"]) == limit


@pytest.mark.parametrize("limit", [0, 201, -1])
def test_sample_limit_out_of_range_is_422(client: TestClient, limit: int) -> None:
    response = client.get(SAMPLE, params={"limit": limit})
    assert response.status_code == 422
    assert "limit" in response.json()["error"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/catalog/tables/market/no_such_table/sample",
        "/api/catalog/tables/nodb/time_series/sample",
        '/api/catalog/tables/market/x"; DROP TABLE y; --/sample',
    ],
)
def test_sample_of_an_unknown_table_is_404(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404, response.text
    assert "no table" in response.json()["error"]


def test_sample_of_an_external_table(client: TestClient) -> None:
    tables: list[dict[str, Any]] = client.get("/api/catalog/tables").json()
    external = next(t for t in tables if t["type"] == "external")
    response = client.get(
        f"/api/catalog/tables/{external['database']}/{external['name']}/sample",
        params={"limit": 3},
    )
    assert response.status_code == 200, response.text
    data = response.json()
    assert 1 <= len(data["rows"]) <= 3
    assert data["columns"]


def test_snapshot_ids_are_strings_with_every_digit(client: TestClient) -> None:
    table = client.get("/api/catalog/tables/market/time_series").json()
    snapshots = client.get("/api/catalog/tables/market/time_series/snapshots").json()
    assert isinstance(table["current_snapshot_id"], str)
    assert table["current_snapshot_id"].isdigit()
    assert snapshots[-1]["snapshot_id"] == table["current_snapshot_id"]
    assert all(s["parent_id"] is None or isinstance(s["parent_id"], str) for s in snapshots)
    # The same id the query layer reads at.
    execution = client.post(
        "/api/queries", json={"sql": "SELECT count(*) FROM market.time_series"}
    ).json()
    assert execution["Snapshots"]["market.time_series"] == table["current_snapshot_id"]
