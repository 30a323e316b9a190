"""`dataflow metrics` and `dataflow alarms` as a user runs them: round trips and bad input."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from dataflow.cli import monitor

# app.py is the lead's; these tests mount the two groups on an app of their own.
app = typer.Typer()
monitor.register(app)


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def mon_project(tmp_path: Path) -> Path:
    project = tmp_path / "p"
    project.mkdir()
    marker = tmp_path / "fired.json"
    script = f"import sys; open({str(marker)!r}, 'a').write(sys.stdin.read() + '\\n')"
    config = {
        "name": "demo",
        "alarms": [
            {
                "name": "api-errors",
                "metric": {"namespace": "Dataflow/Ingest", "name": "Errors",
                           "dimensions": {"endpoint": "time_series"}},
                "statistic": "Sum",
                "period": 60,
                "evaluation_periods": 3,
                "datapoints_to_alarm": 2,
                "comparison_operator": "GreaterThanThreshold",
                "threshold": 0,
                "treat_missing_data": "notBreaching",
                "actions": [{"type": "command", "command": [sys.executable, "-c", script]},
                            {"type": "log"}],
            }
        ],
    }  # fmt: skip
    (project / "dataflow.yaml").write_text(yaml.safe_dump(config))
    return project


def _minute(offset: int) -> str:
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    return (now + dt.timedelta(minutes=offset, seconds=5)).isoformat()


def test_metrics_put_list_get_round_trip(mon_project: Path) -> None:
    p = str(mon_project)
    for offset, value in [(-10, 1), (-10, 3), (-9, 5), (-3, 7)]:
        put = cli("metrics", "put", "Rows", str(value), "--namespace", "Dataflow/Ingest",
                  "--dimension", "endpoint=quote", "--dimension", "pipeline=demo",
                  "--unit", "Count", "--timestamp", _minute(offset), "--project", p)  # fmt: skip
        assert put.exit_code == 0, put.output
    cli("metrics", "put", "Other", "1", "--project", p)

    listed = cli("metrics", "list", "--namespace", "Dataflow/Ingest", "--project", p,
                 "--format", "json")  # fmt: skip
    assert json.loads(listed.stdout) == [
        {"namespace": "Dataflow/Ingest", "name": "Rows",
         "dimensions": {"endpoint": "quote", "pipeline": "demo"}}
    ]  # fmt: skip

    got = cli("metrics", "get", "Rows", "--namespace", "Dataflow/Ingest",
              "--dimension", "pipeline=demo", "--dimension", "endpoint=quote",
              "--stat", "Sum", "--period", "60", "--start", "-1h", "--end", "now",
              "--project", p, "--format", "json")  # fmt: skip
    assert got.exit_code == 0, got.output
    body = json.loads(got.stdout)
    assert [d["value"] for d in body["datapoints"]] == [4.0, 5.0, 7.0]
    assert all(d["timestamp"].endswith(":00+00:00") for d in body["datapoints"])

    p99 = cli("metrics", "get", "Rows", "--namespace", "Dataflow/Ingest",
              "--dimension", "pipeline=demo", "--dimension", "endpoint=quote",
              "--stat", "p99", "--period", "1h", "--start", "-2h", "--project", p,
              "--format", "json")  # fmt: skip
    assert sum(d["value"] == 7.0 for d in json.loads(p99.stdout)["datapoints"]) == 1

    fewer = cli("metrics", "get", "Rows", "--namespace", "Dataflow/Ingest",
                "--dimension", "endpoint=quote", "--stat", "Sum", "--project", p,
                "--format", "json")  # fmt: skip
    assert json.loads(fewer.stdout)["datapoints"] == []  # another dimension set, another metric

    table = cli("metrics", "get", "Rows", "--namespace", "Dataflow/Ingest",
                "--dimension", "pipeline=demo", "--dimension", "endpoint=quote",
                "--stat", "SampleCount", "--period", "5m", "--project", p)  # fmt: skip
    assert table.exit_code == 0
    assert "SampleCount" in table.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["metrics", "put", "Rows", "1", "--dimension", "endpoint"], "use NAME=VALUE"),
        (["metrics", "put", "Rows", "1", "--unit", "Parsecs"], "unknown unit"),
        (["metrics", "put", "Rows", "1", "--timestamp", "-15d"], "two weeks ago"),
        (["metrics", "put", "Rows", "1", "--timestamp", "soon"], "ISO-8601"),
        (["metrics", "get", "Rows", "--stat", "Median"], "unknown statistic"),
        (["metrics", "get", "Rows", "--stat", "Sum", "--period", "5 minutes"], "not a duration"),
        (
            ["metrics", "get", "Rows", "--stat", "Sum", "--start", "-1h", "--end", "-2h"],
            "not after",
        ),
        (["alarms", "history", "api-errors", "--type", "Nope"], "--type"),
        (["alarms", "test", "nope"], "no alarm named 'nope'"),
        (["alarms", "test", "api-errors", "--state", "RED"], "unknown state"),
        (["alarms", "evaluate", "--at", "tomorrow"], "ISO-8601"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(mon_project: Path, args: list[str], message: str) -> None:
    result = cli(*args, "--project", str(mon_project))
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""


def test_alarms_list_evaluate_history_and_test(mon_project: Path, tmp_path: Path) -> None:
    p = str(mon_project)
    listed = cli("alarms", "list", "--project", p, "--format", "json")
    assert [(a["name"], a["state"], a["reason"]) for a in json.loads(listed.stdout)] == [
        ("api-errors", "INSUFFICIENT_DATA", "Unchecked: Initial alarm creation")
    ]

    quiet = cli("alarms", "evaluate", "--project", p, "--format", "json")
    assert [(r["state"], r["changed"]) for r in json.loads(quiet.stdout)] == [("OK", True)]

    at = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    for offset in (-3, -1):
        cli("metrics", "put", "Errors", "2", "--namespace", "Dataflow/Ingest",
            "--dimension", "endpoint=time_series", "--timestamp",
            (at + dt.timedelta(minutes=offset, seconds=1)).isoformat(), "--project", p)  # fmt: skip
    fired = cli("alarms", "evaluate", "--at", at.isoformat(), "--project", p, "--format", "json")
    (result,) = json.loads(fired.stdout)
    assert (result["state"], result["previous_state"], result["changed"]) == ("ALARM", "OK", True)
    assert result["reason"].startswith("Threshold Crossed: 2 out of the last 2 datapoints [2.0 (")
    assert result["reason"].endswith(
        ", and 1 missing datapoint was treated as [NonBreaching] "
        "(minimum 2 datapoints for OK -> ALARM transition)."
    )
    assert [a["ok"] for a in result["actions"]] == [True, True]
    marker = tmp_path / "fired.json"
    assert [json.loads(line)["NewStateValue"] for line in marker.read_text().splitlines()] == [
        "ALARM"
    ]

    again = cli("alarms", "evaluate", "--at", at.isoformat(), "--project", p, "--format", "json")
    assert json.loads(again.stdout)[0]["changed"] is False
    assert len(marker.read_text().splitlines()) == 1  # transitions only

    table = cli("alarms", "list", "--project", p)
    assert "api-errors" in table.stdout
    assert "ALARM" in table.stdout

    history = cli("alarms", "history", "api-errors", "--project", p, "--format", "json")
    kinds = [(h["item_type"], h["summary"]) for h in json.loads(history.stdout)]
    assert [k for k, _ in kinds] == [
        "Action", "Action", "StateUpdate", "StateUpdate", "ConfigurationUpdate"
    ]  # fmt: skip
    assert ("StateUpdate", "Alarm updated from OK to ALARM") in kinds
    assert ("ConfigurationUpdate", 'Alarm "api-errors" created') in kinds
    assert "Action" in cli("alarms", "history", "api-errors", "--project", p).stdout

    tested = cli("alarms", "test", "api-errors", "--project", p)
    assert tested.exit_code == 0, tested.output
    assert "ok" in tested.stdout
    lines = marker.read_text().splitlines()
    assert json.loads(lines[-1])["Test"] is True


def test_alarms_test_exits_1_when_an_action_fails(tmp_path: Path) -> None:
    project = tmp_path / "q"
    project.mkdir()
    (project / "dataflow.yaml").write_text(yaml.safe_dump({"alarms": [{
        "name": "x", "metric": {"namespace": "N", "name": "M"},
        "actions": [{"type": "command", "command": [sys.executable, "-c", "exit(4)"]}],
    }]}))  # fmt: skip
    result = cli("alarms", "test", "x", "--project", str(project), "--format", "json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)[0]["detail"] == "exit status 4"


def test_default_alarms_are_listed_for_a_new_project(tmp_path: Path) -> None:
    result = cli("alarms", "list", "--project", str(tmp_path), "--format", "json")
    names = [a["name"] for a in json.loads(result.stdout)]
    assert names[0] == "dataflow-run-failed"
    assert len(names) == 5
