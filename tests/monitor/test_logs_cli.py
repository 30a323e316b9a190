"""`dataflow logs` over the logs of a real pipeline run (offline, built-in simulator)."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from dataflow.cli import logs as logs_cli
from dataflow.config import load_settings
from dataflow.monitor.logs import read_logs
from dataflow.pipeline import RunOptions, run_pipeline

# Our own app with only `logs`, so the test does not depend on (or change) the real app's list.
app = typer.Typer()


@app.callback()
def _root() -> None:
    """Keeps `logs` a subcommand."""


logs_cli.register(app)


@dataclass(frozen=True)
class LgRun:
    project: Path
    run_id: str
    records: list[dict[str, Any]]


@pytest.fixture(scope="module")
def lg_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LgRun]:
    """One pipeline run's project; its records read back with read_logs as the oracle."""
    logger = logging.getLogger("dataflow")
    handlers, level = list(logger.handlers), logger.level
    project = tmp_path_factory.mktemp("lg-project")
    settings = load_settings(project, env={})
    result = run_pipeline(settings, RunOptions(endpoints=["quote", "stocks"]))
    records = list(read_logs(settings.state_dir / "logs"))
    yield LgRun(project, result.run.run_id, records)
    for handler in logger.handlers:
        if handler not in handlers:
            logger.removeHandler(handler)
            handler.close()
    logger.setLevel(level)


def lg_cli(run: LgRun, *args: str) -> Any:
    return CliRunner().invoke(app, ["logs", "--project", str(run.project), *args])


def lg_json(run: LgRun, *args: str) -> Any:
    result = lg_cli(run, *args, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_the_run_wrote_records_in_every_stage(lg_run: LgRun) -> None:
    stages = {r["stage"] for r in lg_run.records}
    assert {"pipeline", "ingest", "transform"} <= stages
    assert all(r["run_id"] == lg_run.run_id for r in lg_run.records)


def test_plain_logs_prints_recent_records_newest_last(lg_run: LgRun) -> None:
    result = lg_cli(lg_run)
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == len(lg_run.records)
    assert "started" in lines[0]
    assert "INFO" in lines[0]
    assert "pipeline" in lines[0]
    assert lines[-1].endswith(f"run {lg_run.run_id} succeeded")


def test_plain_logs_as_json_are_the_records(lg_run: LgRun) -> None:
    assert lg_json(lg_run) == lg_run.records
    assert lg_json(lg_run, "--limit", "2") == lg_run.records[-2:]


def test_run_stage_and_level_options(lg_run: LgRun) -> None:
    transform = lg_json(lg_run, "--stage", "transform")
    assert transform == [r for r in lg_run.records if r["stage"] == "transform"]
    assert lg_json(lg_run, "--run", lg_run.run_id[:10]) == lg_run.records
    assert lg_json(lg_run, "--run", "19990101") == []
    # --level is "this level and above": DEBUG keeps INFO, WARNING drops it.
    assert lg_json(lg_run, "--level", "debug") == lg_run.records
    warned = lg_json(lg_run, "--level", "WARNING")
    assert warned == [r for r in lg_run.records if r["level"] in ("WARNING", "ERROR", "CRITICAL")]


def test_since(lg_run: LgRun) -> None:
    assert lg_json(lg_run, "--since", "1h") == lg_run.records
    assert lg_json(lg_run, "--since", "2999-01-01") == []
    last = lg_run.records[-1]["ts"]
    assert lg_json(lg_run, "--since", last) == [r for r in lg_run.records if r["ts"] >= last]


def test_stats_by_stage_agrees_with_the_records(lg_run: LgRun) -> None:
    rows = lg_json(lg_run, "--query", "stats count(*) as n by stage")
    assert {r["stage"]: r["n"] for r in rows} == Counter(r["stage"] for r in lg_run.records)


def test_filter_regex_and_auto_fields(lg_run: LgRun) -> None:
    rows = lg_json(
        lg_run,
        "--query",
        "filter @message like /(?i)SUCCEEDED$/ | fields @logStream, @log, @timestamp",
    )
    assert rows == [
        {"@logStream": lg_run.run_id, "@log": "dataflow", "@timestamp": lg_run.records[-1]["ts"]}
    ]


def test_parse_and_stats_over_transform_messages(lg_run: LgRun) -> None:
    query = (
        'parse @message "table *: *" as tbl, outcome | filter ispresent(tbl) '
        "| stats count(*) as tables by outcome = 'no new raw files' as idle"
    )
    rows = lg_json(lg_run, "--query", query)
    messages = [r["message"] for r in lg_run.records if r["message"].startswith("table ")]
    idle = sum(m.endswith(": no new raw files") for m in messages)
    assert {r["idle"]: r["tables"] for r in rows} == {True: idle, False: len(messages) - idle}


def test_query_as_a_table_with_a_summary(lg_run: LgRun) -> None:
    result = lg_cli(lg_run, "--query", "stats count(*) as n by bin(1h), level | sort n desc")
    assert result.exit_code == 0, result.output
    assert "bin(1h)" in result.stdout
    assert "level" in result.stdout
    assert f"{len(lg_run.records)} record(s) scanned in 1 file(s)" in result.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--query", "fields @message | grep x"], "query error at line 1, column 19: unknown "
         "command 'grep'; supported commands: dedup, display, fields, filter, limit, parse, "
         "sort, stats"),
        (["--query", "stats median(x)"], "line 1, column 7: unknown function 'median'"),
        (["--since", "last week"], "--since 'last week'"),
        (["--level", "LOUD"], "--level 'LOUD'"),
    ],
)  # fmt: skip
def test_bad_input_exits_2_with_one_line(lg_run: LgRun, args: list[str], expected: str) -> None:
    result = lg_cli(lg_run, *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1
    assert expected in result.stderr
