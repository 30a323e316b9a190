"""The API of the SQL editor: results downloads, DDL/UTILITY ``.txt`` results, named queries,
workgroups — through FastAPI's TestClient over a real pipeline run."""

from __future__ import annotations

import csv
import io
import json
import uuid
import warnings
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import typer
from starlette.exceptions import StarletteDeprecationWarning
from typer.testing import CliRunner

from dataflow.cli.query import register
from dataflow.config import Settings
from dataflow.dashboard import create_app
from dataflow.metadata import open_metadata
from dataflow.query import QuerySession
from dataflow.query.config import query_config
from dataflow.query.history import QueryExecution, QueryState, record
from dataflow.query.output import (
    read_results,
    result_csv,
    result_key,
    stored_result_key,
    txt_text,
    write_results,
)
from dataflow.query.result import QueryResult
from dataflow.storage import open_store

with warnings.catch_warnings():
    # Starlette 1.x warns that its TestClient prefers the httpx2 package; httpx still works.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def client(web_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(web_settings)) as test_client:
        yield test_client


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    return response.json() if "json" in response.headers["content-type"] else response.text


# --- results -------------------------------------------------------------------------------------


def test_csv_download_is_an_attachment_named_after_the_query(
    client: TestClient, web_settings: Settings
) -> None:
    sql = "SELECT symbol, close FROM market.quotes ORDER BY symbol"
    with QuerySession(web_settings) as session:
        expected = session.execute(sql)
    execution = _ok(client.post("/api/queries", json={"sql": sql}))
    query_id = execution["QueryExecutionId"]

    response = client.get(f"/api/queries/{query_id}/results", params={"format": "csv"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == f'attachment; filename="{query_id}.csv"'
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["symbol", "close"]
    assert [row[0] for row in rows[1:]] == [row[0] for row in expected.rows]

    data = _ok(client.get(f"/api/queries/{query_id}/results"))
    assert [c["Name"] for c in data["ColumnInfo"]] == ["symbol", "close"]
    assert len(data["Rows"]) == expected.row_count


def test_failed_query_has_no_results(client: TestClient) -> None:
    response = client.post("/api/queries", json={"sql": "SELECT FROM market.quotes"})
    assert response.status_code == 400
    assert response.json()["error"].startswith("SYNTAX_ERROR: line 1:")
    failed = _ok(client.get("/api/queries?limit=1"))[0]
    assert failed["Status"]["State"] == "FAILED"
    missing = client.get(f"/api/queries/{failed['QueryExecutionId']}/results")
    assert missing.status_code == 400
    assert "has no results" in missing.json()["error"]


# --- DDL / UTILITY results are <id>.txt ----------------------------------------------------------


def test_result_file_names_follow_the_statement_type() -> None:
    assert result_key("results", "q", "DML") == "results/q.csv"
    assert result_key("results", "q", "UTILITY") == "results/q.txt"
    assert result_key("results/", "q", "DDL") == "results/q.txt"
    execution = QueryExecution.new("SELECT 1", dialect="duckdb", workgroup="primary")
    assert stored_result_key("results", execution).endswith(f"{execution.query_id}.csv")


def test_txt_results_have_no_header_and_read_back_unchanged(web_settings: Settings) -> None:
    result = QueryResult(
        columns=["name", "note", "n"],
        types=["VARCHAR", "VARCHAR", "BIGINT"],
        rows=[("a\tb", "line 1\nline 2", 1), ("back\\slash", None, None), ("", "\\N", 3)],
    )
    text = txt_text(result)
    assert text.count("\n") == 3  # one line per row, no header
    assert not text.startswith("name")
    store = open_store(web_settings)
    query_id = f"txt-{uuid.uuid4()}"
    key = write_results(store, "results", query_id, result, statement_type="UTILITY")
    assert key == f"results/{query_id}.txt"
    assert store.exists(key + ".metadata")
    infos, rows = read_results(store, key)
    assert [i["Name"] for i in infos] == ["name", "note", "n"]
    assert rows == [["a\tb", "line 1\nline 2", "1"], ["back\\slash", None, None], ["", "\\N", "3"]]
    assert result_csv(store, key).decode().splitlines()[:2] == [
        '"name","note","n"',
        '"a\tb","line 1',
    ]


@pytest.fixture(scope="module")
def utility_execution(web_settings: Settings) -> QueryExecution:
    """A SUCCEEDED ``SHOW TABLES`` whose result was written as ``<id>.txt``."""
    with QuerySession(web_settings) as session:
        result = session.execute("SHOW TABLES")
    execution = QueryExecution.new("SHOW TABLES", dialect="duckdb", workgroup="primary")
    prefix = query_config(web_settings).results_prefix
    store = open_store(web_settings)
    key = write_results(store, prefix, execution.query_id, result, statement_type="UTILITY")
    execution.statement_type, execution.substatement_type = "UTILITY", "SHOW"
    execution.state = QueryState.SUCCEEDED
    execution.rows_returned = result.row_count
    execution.output_location = store.url_for(key)
    db = open_metadata(web_settings.metadata_url)
    try:
        record(db, execution)
    finally:
        db.dispose()
    assert execution.output_location.endswith(".txt")
    return execution


def test_api_serves_txt_results_as_json_and_csv(
    client: TestClient, utility_execution: QueryExecution
) -> None:
    query_id = utility_execution.query_id
    data = _ok(client.get(f"/api/queries/{query_id}/results?format=json"))
    names = [row["name"] for row in data["Rows"]]
    assert "time_series" in names
    assert len(names) == utility_execution.rows_returned

    response = client.get(f"/api/queries/{query_id}/results?format=csv")
    assert response.status_code == 200
    assert response.headers["content-disposition"] == f'attachment; filename="{query_id}.csv"'
    lines = response.text.splitlines()
    assert lines[0] == '"name"'
    assert lines[1:] == [f'"{name}"' for name in names]


def test_cli_results_reads_txt_results(
    web_settings: Settings, utility_execution: QueryExecution
) -> None:
    cli = typer.Typer()

    @cli.callback()
    def main() -> None:
        """The test's CLI: the query commands only."""

    register(cli)
    project = str(web_settings.project_dir)
    query_id = utility_execution.query_id
    as_json = CliRunner().invoke(
        cli, ["query", "results", query_id, "--format", "json", "--project", project]
    )
    assert as_json.exit_code == 0, as_json.output
    names = [row["name"] for row in json.loads(as_json.stdout)]
    assert "time_series" in names
    as_csv = CliRunner().invoke(cli, ["query", "results", query_id, "--project", project])
    assert as_csv.exit_code == 0, as_csv.output
    assert as_csv.stdout.splitlines() == ['"name"', *[f'"{name}"' for name in names]]


# --- named queries, workgroups -------------------------------------------------------------------


def test_named_queries_round_trip(client: TestClient, web_settings: Settings) -> None:
    name = f"api_test_{uuid.uuid4().hex[:8]}"
    sql = "SELECT symbol FROM market.quotes WHERE symbol = $symbol"
    saved = _ok(client.post("/api/named-queries", json={"name": name, "sql": sql}), 201)
    assert saved == {"name": name, "sql": sql + "\n"}
    assert (web_settings.project_dir / "queries" / f"{name}.sql").read_text() == sql + "\n"
    assert {"name": name, "sql": sql + "\n"} in _ok(client.get("/api/named-queries"))
    assert _ok(client.get(f"/api/named-queries/{name}"))["sql"] == sql + "\n"

    again = client.post("/api/named-queries", json={"name": name, "sql": "SELECT 2"})
    assert again.status_code == 409
    assert "overwrite" in again.json()["error"]
    body = {"name": name, "sql": "SELECT 2", "overwrite": True}
    assert _ok(client.post("/api/named-queries", json=body), 201)["sql"] == "SELECT 2\n"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"name": "../escape", "sql": "SELECT 1"}, 400),
        ({"name": "x.sql", "sql": "SELECT 1"}, 400),
        ({"name": "blank", "sql": "   "}, 400),
        ({"name": "", "sql": "SELECT 1"}, 422),
        ({"name": "extra", "sql": "SELECT 1", "path": "/tmp/x"}, 422),
    ],
)
def test_named_query_input_is_checked(
    client: TestClient, body: dict[str, Any], status: int
) -> None:
    response = client.post("/api/named-queries", json=body)
    assert response.status_code == status, response.text
    assert "error" in response.json()


def test_named_query_posts_must_be_json(client: TestClient) -> None:
    response = client.post("/api/named-queries", data={"name": "form", "sql": "SELECT 1"})
    assert response.status_code == 415
    assert client.get("/api/named-queries/no_such_query").status_code == 404


def test_workgroups(client: TestClient) -> None:
    data = _ok(client.get("/api/queries/workgroups"))
    assert data["default"] == "primary"
    assert "primary" in [g["name"] for g in data["workgroups"]]
