"""`dataflow dq check / results / history` as a user runs them, on files and on a real table."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
import typer
from typer.testing import CliRunner

from dataflow.cli import dq
from dataflow.config import load_settings
from dataflow.pipeline import RunOptions, run_pipeline
from dataflow.sources.twelvedata.ingest import IngestStage
from dataflow.transform import TransformStage

root = typer.Typer()
root.command("version")(lambda: None)  # a second command keeps "dq" a sub-command
dq.register(root)

RULES = """Rules = [
    RowCount = 4,
    IsComplete "id",
    ColumnValues "price" > 0 labels=["kind"="range"],
    ColumnValues "sym" in ["A", "B"]
]
"""


def cli(*args: str) -> Any:
    return CliRunner().invoke(root, list(args), env={"COLUMNS": "200"})


@pytest.fixture
def dqe_files(tmp_path: Path) -> dict[str, Path]:
    """The same four rows as CSV, Parquet and JSON, and a ruleset."""
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE t AS SELECT * FROM (VALUES (1, 'A', 10.5), (2, 'B', 11.0), (3, 'A', -1.0),"
        " (4, 'C', 12.0)) v(id, sym, price)"
    )
    paths = {
        "csv": tmp_path / "t.csv",
        "parquet": tmp_path / "t.parquet",
        "json": tmp_path / "t.json",
    }
    con.execute(f"COPY t TO '{paths['csv']}' (HEADER)")
    con.execute(f"COPY t TO '{paths['parquet']}' (FORMAT parquet)")
    con.execute(f"COPY t TO '{paths['json']}' (FORMAT json)")
    paths["rules"] = tmp_path / "prices.dqdl"
    paths["rules"].write_text(RULES)
    return paths


@pytest.mark.parametrize("kind", ["csv", "parquet", "json"])
def test_check_a_file_without_a_project(dqe_files: dict[str, Path], kind: str) -> None:
    result = cli(
        "dq", "check", str(dqe_files["rules"]), "--data", str(dqe_files[kind]), "--format", "json"
    )
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert data["Score"] == 0.5
    assert [r["Name"] for r in data["RuleResults"]] == ["Rule_0", "Rule_1", "Rule_2", "Rule_3"]
    assert [r["Result"] for r in data["RuleResults"]] == ["PASS", "PASS", "FAIL", "FAIL"]
    third = data["RuleResults"][2]
    assert third["Description"] == 'ColumnValues "price" > 0 labels=["kind"="range"]'
    assert third["EvaluationMessage"] == "75.00 % of rows passed the threshold"
    assert third["EvaluatedMetrics"]["Column.price.ColumnValues.Compliance"] == 0.75
    assert third["Labels"] == {"kind": "range"}
    assert data["AggregatedMetrics"]["TotalRulesProcessed"] == 4
    assert data["AggregatedMetrics"]["TotalRowsFailed"] == 2


def test_exit_0_when_every_rule_passes_and_a_table_for_people(
    dqe_files: dict[str, Path], tmp_path: Path
) -> None:
    rules = tmp_path / "ok.dqdl"
    rules.write_text('Rules = [ RowCount > 0, IsComplete "sym" ]')
    result = cli("dq", "check", str(rules), "--data", str(dqe_files["csv"]))
    assert result.exit_code == 0, result.output
    assert "score 1.00" in result.stdout
    assert "Rule_1" in result.stdout


def test_row_level_output_is_parquet_with_glue_columns(
    dqe_files: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "rows" / "outcomes.parquet"
    result = cli(
        "dq",
        "check",
        str(dqe_files["rules"]),
        "--data",
        str(dqe_files["parquet"]),
        "--row-level",
        str(out),
    )
    assert result.exit_code == 1, result.output
    rows = duckdb.sql(
        f"SELECT id, DataQualityRulesFail, DataQualityRulesSkip, DataQualityEvaluationResult "
        f"FROM '{out}' ORDER BY id"
    ).fetchall()
    assert [r[3] for r in rows] == ["Passed", "Passed", "Failed", "Failed"]
    assert rows[2][1] == ['ColumnValues "price" > 0 labels=["kind"="range"]']
    assert rows[0][2] == ["RowCount = 4"]


def test_references_from_files(dqe_files: dict[str, Path], tmp_path: Path) -> None:
    rules = tmp_path / "ref.dqdl"
    rules.write_text('Rules = [ RowCountMatch "other" = 1.0, SchemaMatch "other" = 1.0 ]')
    result = cli(
        "dq",
        "check",
        str(rules),
        "--data",
        str(dqe_files["csv"]),
        "--reference",
        f"other={dqe_files['csv']}",
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output


def test_bad_input_exits_2(dqe_files: dict[str, Path], tmp_path: Path) -> None:
    broken = tmp_path / "broken.dqdl"
    broken.write_text("Rules = [ RowCount > ]")
    assert cli("dq", "check", str(broken), "--data", str(dqe_files["csv"])).exit_code == 2
    missing = cli("dq", "check", str(dqe_files["rules"]), "--data", str(tmp_path / "no.csv"))
    assert missing.exit_code == 2
    assert "no file" in missing.stderr
    neither = cli("dq", "check", str(dqe_files["rules"]))
    assert neither.exit_code == 2
    bad_ref = cli(
        "dq",
        "check",
        str(dqe_files["rules"]),
        "--data",
        str(dqe_files["csv"]),
        "--reference",
        "nothing",
    )
    assert bad_ref.exit_code == 2


@pytest.fixture(scope="module")
def dqe_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with a real (offline) pipeline run of the time series endpoint."""
    project = tmp_path_factory.mktemp("dq-cli") / "project"
    today = dt.datetime.now(dt.UTC).date()
    settings = load_settings(
        project,
        overrides={
            "sources.twelvedata.history_start": (today - dt.timedelta(days=5)).isoformat(),
            "sources.twelvedata.intraday_history_days": 1,
        },
        env={},
    )
    # Ingest and transform only: the pipeline's quality stage would record evaluations of its own.
    stages = [IngestStage(), TransformStage()]
    result = run_pipeline(settings, RunOptions(endpoints=["time_series"]), stages=stages)
    assert result.status == "succeeded", result.results
    return project


def test_check_a_catalog_table_records_history(dqe_project: Path, tmp_path: Path) -> None:
    rules = tmp_path / "time_series.dqdl"
    rules.write_text(
        "Rules = [\n"
        "  RowCount > 0,\n"
        '  IsComplete "close",\n'
        '  ColumnValues "high" >= 0,\n'
        "  RowCount >= last()\n"
        "]\n"
    )
    args = ["--table", "market.time_series", "--project", str(dqe_project), "--format", "json"]
    first = cli("dq", "check", str(rules), *args)
    assert first.exit_code == 0, first.output
    data = json.loads(first.stdout)
    rows = data["RuleResults"][0]["EvaluatedMetrics"]["Dataset.*.RowCount"]
    assert rows > 0
    second = cli("dq", "check", str(rules), *args)
    assert second.exit_code == 0, second.output

    history = cli(
        "dq", "history", "market.time_series", "--project", str(dqe_project), "--format", "json"
    )
    assert history.exit_code == 0, history.output
    entries = json.loads(history.stdout)
    assert len(entries) == 2
    assert entries[0]["RulesetName"] == "time_series"
    assert entries[0]["SnapshotId"] is not None
    assert entries[0]["Rows"] == rows

    results = cli(
        "dq",
        "results",
        "--table",
        "market.time_series",
        "--project",
        str(dqe_project),
        "--format",
        "json",
    )
    assert results.exit_code == 0, results.output
    recorded = json.loads(results.stdout)
    assert recorded[0]["RuleResults"][1]["Description"] == 'IsComplete "close"'
    people = cli("dq", "history", "market.time_series", "--project", str(dqe_project))
    assert people.exit_code == 0
    assert "time_series" in people.stdout


def test_unknown_table_exits_2(dqe_project: Path, tmp_path: Path) -> None:
    rules = tmp_path / "r.dqdl"
    rules.write_text("Rules = [ RowCount > 0 ]")
    result = cli("dq", "check", str(rules), "--table", "market.nope", "--project", str(dqe_project))
    assert result.exit_code == 2
    assert "no table market.nope" in result.stderr
