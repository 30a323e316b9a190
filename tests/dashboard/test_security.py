"""What an outside security campaign found in `dataflow serve`, each kept fixed.

Log paths from user input, DNS rebinding (Host), weak tokens, and CTAS into the crawler's
``raw`` database.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from collections.abc import Iterator

import pytest
from starlette.exceptions import StarletteDeprecationWarning

from dataflow.config import Settings
from dataflow.dashboard import create_app
from dataflow.dashboard.hosts import LOOPBACK_HOSTS
from dataflow.query.execution import QueryRunner
from dataflow.query.history import QueryState, list_executions

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient


@pytest.fixture
def client(web_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(web_settings)) as test_client:
        yield test_client


@pytest.fixture
def loopback_client(web_settings: Settings) -> Iterator[TestClient]:
    app = create_app(web_settings, allowed_hosts={*LOOPBACK_HOSTS, "dataflow.internal"})
    with TestClient(app, base_url="http://127.0.0.1:8080") as test_client:
        yield test_client


# --- /api/logs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "run",
    ["../../../../etc/passwd", "/etc/passwd", "..", "a/b", "x\\y", "%2e%2e", "r*", "", " r"],
)
def test_logs_refuse_a_run_that_is_not_a_run_id(client: TestClient, run: str) -> None:
    answer = client.get("/api/logs", params={"run": run})
    assert answer.status_code == 400, answer.text
    assert "is not a run id" in answer.json()["error"]


def test_logs_of_a_real_run_still_read(client: TestClient, web_settings: Settings) -> None:
    runs = client.get("/api/runs").json()
    run_id = runs[0]["run_id"] if isinstance(runs, list) else runs["runs"][0]["run_id"]
    answer = client.get("/api/logs", params={"run": run_id[:12]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["rows"], answer.text


# --- Host (DNS rebinding) -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["127.0.0.1:8080", "localhost:8080", "[::1]:8080", "LOCALHOST", "dataflow.internal"]
)
def test_a_loopback_server_answers_its_own_names(loopback_client: TestClient, host: str) -> None:
    assert loopback_client.get("/healthz", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize("host", ["evil.example:8080", "127.0.0.1.evil.example", "", "10.0.0.1"])
def test_a_loopback_server_refuses_other_hosts(loopback_client: TestClient, host: str) -> None:
    for path in ("/healthz", "/api/runs", "/sql", "/openapi.json"):
        answer = loopback_client.get(path, headers={"Host": host})
        assert answer.status_code == 400, answer.text
        assert "is not served here" in answer.json()["error"]


def test_serve_on_loopback_checks_the_host(web_settings: Settings) -> None:
    from tests.dashboard.test_serve import _start, _stop

    served = _start(web_settings.project_dir, "--allow-host", "dataflow.internal")
    try:
        import httpx

        with httpx.Client(base_url=served.url, timeout=10) as http:
            assert http.get("/healthz").status_code == 200
            rebound = http.get("/api/runs", headers={"Host": "attacker.example:8080"})
            assert rebound.status_code == 400, rebound.text
            named = http.get("/healthz", headers={"Host": "dataflow.internal"})
            assert named.status_code == 200
    finally:
        _stop(served)


# --- weak tokens ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        ("s3cret", "it has 6 characters, fewer than 16"),
        ("aaaaaaaaaaaaaaaaaaaaaaaa", "too predictable"),
        ("passwordpassword", "too predictable"),
    ],
)
def test_serve_refuses_a_weak_token(web_settings: Settings, token: str, problem: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAFLOW")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dataflow",
            "serve",
            "--port",
            "0",
            "--project",
            str(web_settings.project_dir),
        ],
        capture_output=True,
        check=False,
        text=True,
        env={**env, "DATAFLOW_TOKEN": token},
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    message = done.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "the token is too weak" in message
    assert problem in message
    assert "secrets.token_urlsafe" in message
    assert token not in message


# --- CTAS into raw --------------------------------------------------------------------------------


def test_ctas_cannot_create_tables_in_raw(client: TestClient, web_settings: Settings) -> None:
    for sql in (
        "CREATE TABLE raw.planted AS SELECT 1 AS x",
        'CREATE TABLE "raw"."planted" AS SELECT 1 AS x',
        "CREATE TABLE awsdatacatalog.raw.planted AS SELECT 1 AS x",
    ):
        answer = client.post("/api/queries", json={"sql": sql, "dialect": "athena"})
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"].startswith("PERMISSION_DENIED: ")
        assert "the raw database holds the crawler's tables" in answer.json()["error"]
    tables = client.get("/api/catalog/databases/raw/tables")
    assert "planted" not in tables.text
    with QueryRunner(web_settings) as runner:
        last = list_executions(runner.db, limit=1)[0]
    assert last.state is QueryState.FAILED
    assert last.error_type == "PERMISSION_DENIED"


# --- names that answered 500 ----------------------------------------------------------------------


@pytest.mark.parametrize("name", [" ", "%20", "%09", "%09x", "x%00", "%0A", "%20quotes", "x" * 300])
@pytest.mark.parametrize(
    "path",
    [
        "/api/catalog/tables/{n}/quotes",
        "/api/catalog/tables/market/{n}",
        "/api/catalog/tables/{n}/{n}/versions",
        "/api/catalog/tables/market/{n}/partitions",
        "/api/catalog/tables/{n}/quotes/snapshots",
        "/api/catalog/tables/market/{n}/sample",
        "/api/catalog/tables?database={n}",
    ],
)
def test_catalog_names_no_catalog_can_hold_are_400(
    client: TestClient, path: str, name: str
) -> None:
    answer = client.get(path.format(n=name))
    assert answer.status_code == 400, answer.text
    assert "is not a" in answer.json()["error"]


def test_the_schema_documents_the_error_answers(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    stop = schema["paths"]["/api/queries/{query_id}/stop"]["post"]["responses"]
    assert {"200", "400", "404", "415", "422"} <= set(stop)
    assert stop["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
