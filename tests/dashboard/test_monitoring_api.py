"""The monitoring routes the Monitoring page adds: an alarm's history and log search, against
the alarm store and the JSON log files read directly (over ``web_settings``)."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.exceptions import StarletteDeprecationWarning

from dataflow.config import Settings
from dataflow.dashboard import create_app
from dataflow.metadata import RunStore, open_metadata
from dataflow.monitor.alarm_store import AlarmStore

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def client(web_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(web_settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def records(web_settings: Settings) -> list[dict[str, Any]]:
    """Every log record of the project, oldest first, read from the files."""
    found = []
    for path in sorted((web_settings.state_dir / "logs").glob("*/*.jsonl")):
        found += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert found
    return sorted(found, key=lambda r: r["ts"])


def _ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, f"{response.status_code}: {response.text}"
    return response.json()


def test_alarm_history_is_the_stored_history(client: TestClient, web_settings: Settings) -> None:
    db = open_metadata(web_settings.metadata_url)
    try:
        stored = AlarmStore(db).history("dataflow-run-failed")
    finally:
        db.dispose()
    items = _ok(client.get("/api/alarms/dataflow-run-failed/history"))
    assert [(i["type"], i["summary"]) for i in items] == [(s.item_type, s.summary) for s in stored]
    (created,) = [i for i in items if i["type"] == "ConfigurationUpdate"]
    assert created["summary"] == 'Alarm "dataflow-run-failed" created'
    (change,) = [i for i in items if i["type"] == "StateUpdate"]
    assert (change["old_state"], change["new_state"]) == ("INSUFFICIENT_DATA", "OK")
    assert change["summary"] == "Alarm updated from INSUFFICIENT_DATA to OK"
    assert change["data"]["newState"]["stateReason"].startswith("Threshold Crossed")
    only = _ok(client.get("/api/alarms/dataflow-run-failed/history?type=StateUpdate"))
    assert only == [change]


def test_alarm_history_errors(client: TestClient) -> None:
    # Configured but never changed state: no history yet, not an error.
    assert _ok(client.get("/api/alarms/dataflow-slow-run/history?type=StateUpdate")) == []
    missing = client.get("/api/alarms/no-such-alarm/history")
    assert missing.status_code == 404
    assert "no alarm 'no-such-alarm'" in missing.json()["error"]
    bad = client.get("/api/alarms/dataflow-run-failed/history?type=Nope")
    assert bad.status_code == 400
    assert "StateUpdate" in bad.json()["error"]


def test_logs_without_a_query_are_the_newest_records_first(
    client: TestClient, records: list[dict[str, Any]]
) -> None:
    answer = _ok(client.get("/api/logs?limit=5"))
    assert answer["records_scanned"] == len(records)
    assert answer["files"] == 1
    newest = list(reversed(records))[:5]
    assert [(r["ts"], r["message"]) for r in answer["rows"]] == [
        (r["ts"], r["message"]) for r in newest
    ]
    assert {"ts", "level", "message", "run_id", "stage"} <= set(answer["columns"])


def test_message_filter_finds_a_known_message(
    client: TestClient, records: list[dict[str, Any]], web_settings: Settings
) -> None:
    db = open_metadata(web_settings.metadata_url)
    try:
        (run,) = RunStore(db).list()
    finally:
        db.dispose()
    text = f"run {run.run_id} started"
    answer = _ok(client.get("/api/logs", params={"filter": text}))
    (row,) = answer["rows"]
    assert row["message"].startswith(text)
    assert (row["run_id"], row["stage"], row["level"]) == (run.run_id, "pipeline", "INFO")
    # Quotes and backslashes are text to find, not query syntax.
    assert _ok(client.get("/api/logs", params={"filter": 'x" or "1'}))["rows"] == []

    warnings_only = _ok(client.get("/api/logs", params={"filter": "published", "level": "ERROR"}))
    assert warnings_only["rows"] == []
    published = [r for r in records if "published" in r["message"]]
    answer = _ok(client.get("/api/logs", params={"filter": "published", "limit": 1000}))
    assert len(answer["rows"]) == len(published) > 0


def test_logs_insights_query(client: TestClient, records: list[dict[str, Any]]) -> None:
    query = "stats count(*) as n by level | sort level"
    answer = _ok(client.get("/api/logs", params={"query": query}))
    counts: dict[str, int] = {}
    for record in records:
        counts[record["level"]] = counts.get(record["level"], 0) + 1
    assert answer["columns"] == ["level", "n"]
    assert {r["level"]: r["n"] for r in answer["rows"]} == counts
    stage = _ok(client.get("/api/logs", params={"query": "stats count(*) as n", "stage": "ingest"}))
    assert stage["rows"] == [{"n": sum(r["stage"] == "ingest" for r in records)}]
    combined = _ok(
        client.get("/api/logs", params={"filter": "published", "query": "stats count(*) as n"})
    )
    assert combined["rows"] == [{"n": sum("published" in r["message"] for r in records)}]


def test_log_search_errors(client: TestClient) -> None:
    bad = client.get("/api/logs", params={"query": "filter level =="})
    assert bad.status_code == 400
    assert client.get("/api/logs", params={"level": "LOUD"}).status_code == 400
    assert client.get("/api/logs", params={"since": "yesterday"}).status_code == 400
    assert client.get("/api/logs?limit=0").status_code == 422
