"""`dataflow dq recommend`: a starter ruleset that parses and passes on the data it came from."""

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
from dataflow.quality import check_ruleset, format_rule, parse_ruleset
from dataflow.quality.datasets import connect
from dataflow.quality.recommend import (
    ColumnProfile,
    TableProfile,
    profile_dataset,
    recommend,
    recommend_dataset,
    recommend_rules,
)

root = typer.Typer()
root.command("version")(lambda: None)  # a second command keeps "dq" a sub-command
dq.register(root)

# Nulls, empty and whitespace strings, quotes and backslashes, negatives, a constant column,
# a timestamp, an id key: the awkward cases of a profile.
ROWS_SQL = """
SELECT * FROM (VALUES
    (1, 'AAPL', 'NYSE', 10.5, -3, TIMESTAMP '2024-06-03 14:30:00', 'say "hi"', '12', 'x'),
    (2, 'MSFT', NULL, 11.25, 0, TIMESTAMP '2024-06-03 15:30:00', 'a\\b', '-7', 'x'),
    (3, 'AAPL', '', NULL, 7, TIMESTAMP '2024-06-04 14:30:00', '  ', '0', 'x'),
    (4, 'SPY', 'ARCA', 0.0, 2, TIMESTAMP '2024-06-04 15:30:00', 'plain', '41', 'x'),
    (5, 'MSFT', 'NYSE', 99.0, 5, TIMESTAMP '2024-06-05 09:00:00', NULL, '3', 'x')
) v(id, symbol, venue, price, delta, ts, note, code, flag)
"""


def cli(*args: str) -> Any:
    return CliRunner().invoke(root, list(args), env={"COLUMNS": "200"})


@pytest.fixture
def rec_files(tmp_path: Path) -> dict[str, Path]:
    """The same rows as CSV, Parquet and JSON."""
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t AS {ROWS_SQL}")
    paths = {kind: tmp_path / f"rows.{kind}" for kind in ("csv", "parquet", "json")}
    con.execute(f"COPY t TO '{paths['csv']}' (HEADER)")
    con.execute(f"COPY t TO '{paths['parquet']}' (FORMAT parquet)")
    con.execute(f"COPY t TO '{paths['json']}' (FORMAT json)")
    return paths


def rule_texts(text: str) -> list[str]:
    return [format_rule(rule) for rule in parse_ruleset(text).rules]


@pytest.mark.parametrize("kind", ["csv", "parquet", "json"])
def test_recommended_ruleset_passes_on_the_file_it_came_from(
    rec_files: dict[str, Path], tmp_path: Path, kind: str
) -> None:
    out = tmp_path / "rows.dqdl"
    result = cli("dq", "recommend", "--data", str(rec_files[kind]), "--output", str(out))
    assert result.exit_code == 0, result.output
    assert "left out" not in result.stderr
    outcome = check_ruleset(out, data=rec_files[kind])
    failed = [(r.description, r.message) for r in outcome.result.rule_results if r.result != "PASS"]
    assert failed == []
    texts = rule_texts(out.read_text())
    assert texts[0] == "RowCount between 2 and 10"  # Glue's bounds: n/2 and 2n
    assert 'IsPrimaryKey "id"' in texts
    assert 'ColumnValues "symbol" in ["AAPL", "MSFT", "SPY"]' in texts
    assert 'ColumnLength "flag" = 1' in texts
    assert 'ColumnValues "ts" >= "2024-06-03"' in texts
    assert len(outcome.result.rule_results) == len(texts) >= 20


def test_rules_follow_the_profile(rec_files: dict[str, Path]) -> None:
    texts = rule_texts(recommend_dataset(data=rec_files["parquet"]).text)
    # NULLs: a completeness bound instead of IsComplete, NULL in the value set, a where clause
    # on ranges (ColumnValues fails NULL rows).
    assert 'Completeness "price" >= 0.44' in texts
    assert 'ColumnValues "venue" in ["", "ARCA", "NYSE", NULL]' in texts
    assert 'IsComplete "symbol"' in texts
    assert 'IsPrimaryKey "ts"' in texts
    assert not any(t.startswith('IsPrimaryKey "symbol"') for t in texts)  # ts alone is a key
    assert 'ColumnValues "price" >= 0 where "price IS NOT NULL"' in texts
    assert 'ColumnValues "price" <= 109.0 where "price IS NOT NULL"' in texts
    # A range that straddles 0 widened by 10% of its span on each side (between is exclusive).
    assert 'ColumnValues "delta" between -4 and 8' in texts
    # Quotes and backslashes survive printing; whitespace-only strings are values too.
    assert 'ColumnValues "note" in ["  ", "a\\b", "plain", "say \\"hi\\"", NULL]' in texts
    assert 'ColumnDataType "code" = "INTEGER"' in texts
    assert 'IsComplete "flag"' in texts
    assert not any('IsPrimaryKey "flag"' in t for t in texts)


def test_recommended_ruleset_catches_changed_data(
    rec_files: dict[str, Path], tmp_path: Path
) -> None:
    rules = tmp_path / "rows.dqdl"
    rules.write_text(recommend_dataset(data=rec_files["parquet"]).text)
    changed = tmp_path / "changed.parquet"
    duckdb.execute(
        f"COPY (SELECT * FROM '{rec_files['parquet']}' UNION ALL SELECT 1, 'TSLA', 'NYSE', "
        f"-5.0, 1, TIMESTAMP '2020-01-01', NULL, 'n/a', 'x') TO '{changed}' (FORMAT parquet)"
    )
    outcome = check_ruleset(rules, data=changed)
    failed = {r.description for r in outcome.result.rule_results if r.result == "FAIL"}
    assert {
        'IsPrimaryKey "id"',
        'ColumnValues "symbol" in ["AAPL", "MSFT", "SPY"]',
        'ColumnValues "price" >= 0 where "price IS NOT NULL"',
        'ColumnValues "ts" >= "2024-06-03"',
        'ColumnDataType "code" = "INTEGER"',
    } <= failed


def test_row_count_bounds_and_an_empty_dataset() -> None:
    three = TableProfile(3, [ColumnProfile("c", "BIGINT", "integer", 3, 3, 0, 2)])
    assert [format_rule(r) for r in recommend_rules(three).rules] == [
        "RowCount between 1 and 6",  # as Glue recommended for a 3-row table
        'IsComplete "c"',
        'IsPrimaryKey "c"',
        'ColumnValues "c" >= 0',
        'ColumnValues "c" <= 3',
    ]
    con = connect()
    con.execute("CREATE VIEW \"primary\" AS SELECT 1 AS x, 'a' AS s WHERE false")
    empty = recommend(con)
    assert [format_rule(r) for r in empty.ruleset.rules] == ["RowCount = 0"]
    assert empty.dropped == []


def test_profile_is_one_scan_with_statistics(rec_files: dict[str, Path]) -> None:
    con = connect()
    con.execute(f"CREATE VIEW \"primary\" AS SELECT * FROM '{rec_files['parquet']}'")
    profile = profile_dataset(con)
    price = next(c for c in profile.columns if c.name == "price")
    assert (profile.rows, price.non_null, price.minimum, price.maximum) == (5, 4, 0.0, 99.0)
    assert price.mean == pytest.approx(30.1875)
    found = recommend(con, statistics=True)
    texts = [format_rule(r) for r in found.ruleset.rules]
    assert 'Mean "price" between 27.1 and 33.3' in texts
    assert any(t.startswith('StandardDeviation "price" between') for t in texts)
    assert found.dropped == []


def test_errors_exit_2(rec_files: dict[str, Path], tmp_path: Path) -> None:
    neither = cli("dq", "recommend")
    assert neither.exit_code == 2
    missing = cli("dq", "recommend", "--data", str(tmp_path / "none.csv"))
    assert missing.exit_code == 2
    assert "no file" in missing.stderr


@pytest.fixture(scope="module")
def rec_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with a real (offline) pipeline run of the time series endpoint."""
    project = tmp_path_factory.mktemp("dq-recommend") / "project"
    today = dt.datetime.now(dt.UTC).date()
    settings = load_settings(
        project,
        overrides={
            "sources.twelvedata.history_start": (today - dt.timedelta(days=5)).isoformat(),
            "sources.twelvedata.intraday_history_days": 1,
        },
        env={},
    )
    result = run_pipeline(settings, RunOptions(endpoints=["time_series"]))
    assert result.status == "succeeded", result.results
    return project


def test_recommend_a_catalog_table_then_check_it(rec_project: Path, tmp_path: Path) -> None:
    args = ["--table", "market.time_series", "--project", str(rec_project)]
    printed = cli("dq", "recommend", *args, "--statistics")
    assert printed.exit_code == 0, printed.output
    assert printed.stdout.startswith("# Recommended by `dataflow dq recommend`")
    texts = rule_texts(printed.stdout)
    assert 'IsPrimaryKey "symbol" "interval" "ts"' in texts  # the table's composite key
    assert 'IsComplete "close"' in texts
    assert not any('"_run_id" in' in t for t in texts)  # lineage columns change every run
    rules = tmp_path / "time_series.dqdl"
    rules.write_text(printed.stdout)
    checked = cli("dq", "check", str(rules), *args, "--format", "json")
    assert checked.exit_code == 0, checked.output
    data = json.loads(checked.stdout)
    assert data["Score"] == 1.0
    assert len(data["RuleResults"]) == len(texts)
