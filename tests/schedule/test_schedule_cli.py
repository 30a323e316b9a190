"""`dataflow schedule next | list | status` and the daemon's argument checks."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from dataflow.cli.schedule import register
from dataflow.schedule.scheduler import Scheduler

from .conftest import T0, FakeClock, ScriptedRunner, make_settings


@pytest.fixture
def sch_cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """Test application."""

    register(app)
    return app


def invoke(app: typer.Typer, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["schedule", *args], env={"COLUMNS": "200"})
    return result.exit_code, result.stdout, result.stderr


def test_next_json_across_dst(sch_cli: typer.Typer) -> None:
    code, out, err = invoke(
        sch_cli,
        "next",
        "cron(0/15 13-21 ? * MON-FRI *)",
        "--tz",
        "America/New_York",
        "--after",
        "2024-03-08T21:40:00",  # no offset: read in --tz
        "--count",
        "3",
        "--format",
        "json",
    )
    assert code == 0, err
    assert json.loads(out) == [
        "2024-03-08T21:45:00-05:00",
        "2024-03-11T13:00:00-04:00",
        "2024-03-11T13:15:00-04:00",
    ]


def test_next_after_with_offset_and_table(sch_cli: typer.Typer) -> None:
    code, out, err = invoke(
        sch_cli,
        "next",
        "rate(1 day)",
        "--tz",
        "Europe/Paris",
        "--after",
        "2024-03-30T10:00:00Z",
        "-n",
        "2",
    )
    assert code == 0, err
    # 24 h of elapsed time from 11:00 CET: 12:00 CEST on the wall clock after spring forward.
    assert "2024-03-31T12:00:00+02:00" in out
    assert "2024-03-31 10:00 UTC" in out
    assert "2024-04-01T12:00:00+02:00" in out


def test_next_default_after_is_now(sch_cli: typer.Typer) -> None:
    before = dt.datetime.now(dt.UTC)
    code, out, _ = invoke(sch_cli, "next", "cron(* * * * ? *)", "--count", "1", "--format", "json")
    assert code == 0
    [first] = json.loads(out)
    fire = dt.datetime.fromisoformat(first)
    assert before < fire <= before + dt.timedelta(minutes=1, seconds=5)


def test_next_one_time_in_the_past_prints_nothing(sch_cli: typer.Typer) -> None:
    code, out, _ = invoke(sch_cli, "next", "at(2020-01-01T00:00:00)", "--format", "json")
    assert code == 0
    assert json.loads(out) == []
    code, out, _ = invoke(sch_cli, "next", "at(2020-01-01T00:00:00)")
    assert code == 0
    assert "does not fire" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["cron(0 12 * * * *)"],
            "error: cron(0 12 * * * *): you cannot use * in both the Day-of-month and "
            "Day-of-week fields; use ? in one of them\n",
        ),
        (
            ["rate(1 hours)"],
            "error: rate(1 hours): if the value is equal to 1, the unit must be singular; if the "
            "value is greater than 1, the unit must be plural (rate(1 hours) and rate(5 hour) are "
            "not valid)\n",
        ),
        (
            ["rate(1 hour)", "--tz", "Mars/Olympus"],
            "error: unknown time zone 'Mars/Olympus': use an IANA name such as UTC or "
            "America/New_York\n",
        ),
        (
            ["rate(1 hour)", "--after", "yesterday"],
            "error: --after 'yesterday': not an ISO-8601 time; "
            "use e.g. 2024-03-10T00:00:00-05:00\n",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    sch_cli: typer.Typer, args: list[str], message: str
) -> None:
    code, out, err = invoke(sch_cli, "next", *args)
    assert (code, out, err) == (2, "", message)


def test_list_jobs(sch_cli: typer.Typer, sch_project: Path) -> None:
    make_settings(
        sch_project,
        [
            {"name": "far", "schedule": "cron(0 6 1 JAN ? 2150)", "timezone": "Asia/Tokyo"},
            {"name": "new-rate", "schedule": "rate(5 minutes)", "command": ["ingest"]},
            {"name": "done", "schedule": "at(2020-01-01T00:00:00)"},
            {"name": "off", "schedule": "rate(1 day)", "enabled": False},
        ],
    )
    code, out, err = invoke(sch_cli, "list", "--project", str(sch_project), "--format", "json")
    assert code == 0, err
    jobs = {j["name"]: j for j in json.loads(out)}
    assert jobs["far"]["next_fire"] == "2150-01-01T06:00:00+09:00"
    assert jobs["far"]["command"] == ["run"]
    assert jobs["far"]["timezone"] == "Asia/Tokyo"
    assert (jobs["new-rate"]["next_fire"], jobs["new-rate"]["note"]) == (
        None,
        "when the scheduler starts",
    )
    assert (jobs["done"]["next_fire"], jobs["done"]["note"]) == (None, "no more fires")
    assert (jobs["off"]["enabled"], jobs["off"]["note"]) == (False, "disabled")

    code, out, _ = invoke(sch_cli, "list", "--project", str(sch_project))
    assert code == 0
    assert "2150-01-01T06:00:00+09:00" in out
    assert "disabled" in out


def test_list_rejects_a_bad_job_expression(sch_cli: typer.Typer, sch_project: Path) -> None:
    config = {"schedule": {"jobs": [{"name": "bad", "schedule": "cron(0 12 1 * MON *)"}]}}
    (sch_project / "dataflow.yaml").write_text(yaml.safe_dump(config))
    code, _, err = invoke(sch_cli, "list", "--project", str(sch_project))
    assert code == 2
    assert "schedule.jobs.0.schedule: 'cron(0 12 1 * MON *)' is invalid" in err
    assert "cron(0 12 1 * MON *): you cannot specify both" in err
    assert err.count("\n") == 1


def test_status_after_runs(sch_cli: typer.Typer, sch_project: Path) -> None:
    settings = make_settings(
        sch_project,
        [
            {"name": "ok", "schedule": "rate(1 minute)"},
            {
                "name": "bad",
                "schedule": "cron(1 * * * ? *)",
                "retry": {"maximum_retry_attempts": 1},
            },
        ],
    )
    clock = FakeClock(T0)
    runner = ScriptedRunner(clock, plan={"bad": [(1.0, 1)]})
    scheduler = Scheduler(
        settings, clock=clock, sleep=clock.sleep, runner=runner, rng=random.Random(1)
    )
    scheduler.run(until=T0 + dt.timedelta(minutes=5))

    code, out, err = invoke(sch_cli, "status", "--project", str(sch_project), "--format", "json")
    assert code == 0, err
    status = json.loads(out)
    assert status["running"] == []
    assert {f["job"] for f in status["fires"]} == {"ok", "bad"}
    [dead] = status["dead_letters"]
    assert (dead["job"], dead["attempts"], dead["payload"]["reason"]) == (
        "bad",
        2,
        "MaximumRetryAttempts (1) exhausted",
    )
    assert dead["scheduled_at"].startswith("2024-06-03 12:01:00")

    code, out, _ = invoke(sch_cli, "status", "--project", str(sch_project), "-n", "3")
    assert code == 0
    assert "Latest fires" in out
    assert "Dead letters" in out
    assert "bad failed on purpose" in out


def test_status_of_a_new_project(sch_cli: typer.Typer, sch_project: Path) -> None:
    code, out, _ = invoke(sch_cli, "status", "--project", str(sch_project))
    assert code == 0
    assert "No fires yet" in out


def test_daemon_without_jobs_is_bad_configuration(sch_cli: typer.Typer, sch_project: Path) -> None:
    make_settings(sch_project, [{"name": "off", "schedule": "rate(1 day)", "enabled": False}])
    code, _, err = invoke(sch_cli, "--project", str(sch_project))
    assert code == 2
    assert "no enabled jobs in schedule.jobs" in err
    assert err.count("\n") == 1


def test_the_next_commands_in_the_guide_run(sch_cli: typer.Typer) -> None:
    """Every `dataflow schedule next` in docs/scheduling.md runs; shown output is what it prints."""
    import shlex

    guide = Path(__file__).parents[2] / "docs" / "scheduling.md"
    lines = guide.read_text().splitlines()
    checked = 0
    for index, line in enumerate(lines):
        if not line.strip().startswith("$ dataflow schedule next"):
            continue
        command = line.strip()[2:]
        follow = index + 1
        while command.endswith("\\"):
            command = command[:-1] + lines[follow].strip()
            follow += 1
        shown = []
        while (
            follow < len(lines) and lines[follow].startswith("    ") and "$ " not in lines[follow]
        ):
            shown.append(lines[follow][4:])
            follow += 1
        args = shlex.split(command)[2:]  # drop `dataflow schedule`
        code, out, err = invoke(sch_cli, *args)
        if shown and shown[0].startswith("error:"):
            assert (code, err.rstrip("\n")) == (2, "\n".join(shown)), command
        else:
            assert code == 0, (command, err)
            if shown:
                assert out.rstrip("\n") == "\n".join(shown), command
        checked += 1
    assert checked >= 4
