"""Freshness against the schedule: the window the built-in rulesets' freshness rule uses.

Known dates (US market, NYSE holidays): 2026-11-19 is a Thursday far from any holiday within a
week (a plain weekend: Friday 00:00 UTC to Monday's 14:30 UTC open = 86.5 h); Labor Day 2026 is
Monday 2026-09-07 (Friday 00:00 UTC to Tuesday's 13:30 UTC open, daylight time = 109.5 h).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from dataflow.cli import dq
from dataflow.config import JobSpec, load_settings
from dataflow.quality.dqdl import parse_ruleset
from dataflow.quality.freshness import (
    DEFAULT_RUN_GAP,
    data_lag,
    freshness_window,
    ruleset_text,
    schedule_gap,
)
from dataflow.quality.policy import BUILTIN_RULESETS

PLAIN = dt.datetime(2026, 11, 19, 12, tzinfo=dt.UTC)
LABOR_DAY_WEEK = dt.datetime(2026, 9, 9, 12, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)


def _job(name: str, schedule: str, **extra: object) -> JobSpec:
    return JobSpec.model_validate({"name": name, "schedule": schedule, **extra})


def test_data_lag_is_the_longest_closure_around_now() -> None:
    assert data_lag(PLAIN) == 86.5 * H
    assert data_lag(LABOR_DAY_WEEK) == 109.5 * H
    # Two weeks after Labor Day the long weekend is out of the horizon again.
    assert data_lag(LABOR_DAY_WEEK + dt.timedelta(days=9)) == 85.5 * H  # daylight time


@pytest.mark.parametrize(
    ("jobs", "gap"),
    [
        pytest.param([_job("h", "rate(1 hour)")], H, id="hourly"),
        pytest.param([_job("d", "cron(0 22 ? * MON-FRI *)")], 72 * H, id="weekdays"),
        pytest.param([_job("w", "cron(0 6 ? * MON *)")], 168 * H, id="weekly"),
        pytest.param(
            [_job("d", "cron(0 22 ? * MON-FRI *)"), _job("s", "cron(0 12 ? * SAT *)")],
            58 * H,
            id="merged",
        ),
        pytest.param(
            [_job("d", "rate(1 day)"), _job("q", "rate(5 minutes)", command=["ingest"])],
            5 * dt.timedelta(minutes=1),
            id="ingest-counts",
        ),
        pytest.param(
            [
                _job("t", "rate(5 minutes)", command=["transform"]),
                _job("off", "rate(1 minute)", enabled=False),
                _job("d", "rate(2 days)"),
            ],
            48 * H,
            id="only-data-jobs",
        ),
        pytest.param([_job("once", "at(2026-11-20T10:00:00)")], None, id="one-time"),
        pytest.param([_job("ended", "rate(1 hour)", end_date="2026-11-19T14:30:00")], H, id="ends"),
        pytest.param(
            [_job("ended", "rate(1 hour)", end_date="2026-11-19T12:30:00")], None, id="ended"
        ),
        pytest.param([], None, id="none"),
    ],
)
def test_schedule_gap(jobs: list[JobSpec], gap: dt.timedelta | None) -> None:
    assert schedule_gap(jobs, now=PLAIN) == gap


def test_window_adds_the_gap_and_the_lag_with_a_default_gap_without_a_schedule() -> None:
    weekdays = freshness_window([_job("d", "cron(0 22 ? * MON-FRI *)")], now=LABOR_DAY_WEEK)
    assert (weekdays.gap, weekdays.lag, weekdays.scheduled) == (72 * H, 109.5 * H, True)
    assert (weekdays.hours, weekdays.days) == (182, 8)
    unscheduled = freshness_window([], now=PLAIN)
    assert (unscheduled.gap, unscheduled.scheduled) == (DEFAULT_RUN_GAP, False)
    assert unscheduled.hours == 111  # 24 h + 86.5 h, rounded up


def _freshness_rule(text: str) -> str:
    (line,) = [line for line in text.splitlines() if "dataflow:freshness-window" in line]
    return line


def test_builtin_rulesets_get_the_window_of_the_project_schedule(tmp_path: Path) -> None:
    config = {"schedule": {"jobs": [{"name": "hourly", "schedule": "rate(1 hour)"}]}}
    (tmp_path / "dataflow.yaml").write_text(yaml.safe_dump(config))
    settings = load_settings(tmp_path, env={})

    text = ruleset_text(BUILTIN_RULESETS / "quotes.dqdl", settings, now=PLAIN)

    assert (
        _freshness_rule(text)
        .strip()
        .endswith('/ 3600.0 from primary" <= 88, # dataflow:freshness-window-hours')
    )  # 1 h + 86.5 h
    parse_ruleset(text)
    eod = ruleset_text(BUILTIN_RULESETS / "eod.dqdl", settings, now=LABOR_DAY_WEEK)
    assert "<= 5, # dataflow:freshness-window-days" in _freshness_rule(eod)  # 110.5 h
    assert ruleset_text(BUILTIN_RULESETS / "quotes.dqdl", None, now=PLAIN).count("<= 111,") == 1


def test_every_builtin_freshness_rule_is_rewritten() -> None:
    for path in sorted(BUILTIN_RULESETS.glob("*.dqdl")):
        shipped = path.read_text()
        text = ruleset_text(path, None, now=LABOR_DAY_WEEK)
        for line in shipped.splitlines():
            if "dataflow:freshness-window" in line:
                assert line not in text, f"{path.name}: not rewritten"
        parse_ruleset(text)


def test_a_project_copy_is_evaluated_as_written(tmp_path: Path) -> None:
    copy = tmp_path / "quality" / "quotes.dqdl"
    copy.parent.mkdir()
    copy.write_text((BUILTIN_RULESETS / "quotes.dqdl").read_text())

    assert ruleset_text(copy, None, now=PLAIN) == copy.read_text()


def test_dq_check_shows_the_effective_rule(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    config = {"schedule": {"jobs": [{"name": "d", "schedule": "cron(0 22 ? * MON-FRI *)"}]}}
    (project / "dataflow.yaml").write_text(yaml.safe_dump(config))
    now = dt.datetime.now(dt.UTC)
    fresh = (now - dt.timedelta(hours=2)).strftime("%Y-%m-%d %H:%M:%S")
    data = tmp_path / "prices.csv"
    data.write_text(f"symbol,ts,price\nAAPL,{fresh},190.5\nMSFT,{fresh},410.0\n")
    root = typer.Typer()
    root.command("version")(lambda: None)
    dq.register(root)
    expected = {freshness_window([_job("d", "cron(0 22 ? * MON-FRI *)")], now=t).hours
                for t in (now, dt.datetime.now(dt.UTC))}  # fmt: skip

    options = ["--project", str(project), "--format", "json"]
    got = CliRunner().invoke(
        root,
        ["dq", "check", str(BUILTIN_RULESETS / "prices.dqdl"), "--data", str(data), *options],
    )

    assert got.exit_code == 0, got.output
    rules = json.loads(got.stdout)["RuleResults"]
    (freshness,) = [r for r in rules if "3600.0" in r["Description"]]
    found = re.search(r"<= (\d+)$", freshness["Description"])
    assert found is not None, freshness["Description"]
    assert int(found.group(1)) in expected
    assert int(found.group(1)) != 96  # 72 h between Friday's and Monday's runs + the lag
    assert freshness["Result"] == "PASS"
