"""`dataflow dq parse` as a user runs it: a summary for a valid ruleset, exit 2 for a bad one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from dataflow.cli import dq
from dataflow.quality.dqdl import parse_ruleset, to_data

# dq is not yet registered in dataflow/cli/app.py: mount it on a root of its own.
root = typer.Typer()
root.command("version")(lambda: None)  # a second command keeps "dq" a sub-command
dq.register(root)


def cli(*args: str) -> Any:
    return CliRunner().invoke(root, list(args), catch_exceptions=False)


@pytest.fixture
def dq_ruleset(tmp_path: Path) -> Path:
    path = tmp_path / "prices.dqdl"
    path.write_text(
        "# OHLC sanity\n"
        "Rules = [\n"
        '    IsComplete "close",\n'
        '    (ColumnValues "high" >= 0) and (ColumnValues "low" >= 0),\n'
        '    ColumnValues "volume" >= 0 with threshold > 0.99,\n'
        "    RowCount > avg(last(5)) * 0.5\n"
        "]\n"
        'Analyzers = [ AllStatistics "close", RowCount ]\n'
    )
    return path


@pytest.fixture
def dq_broken(tmp_path: Path) -> Path:
    path = tmp_path / "broken.dqdl"
    path.write_text('Rules = [\n    IsComplete "close",\n    ColumnCount > 3 where "x = 1"\n]\n')
    return path


def test_parse_prints_a_summary_of_a_valid_ruleset(dq_ruleset: Path) -> None:
    result = cli("dq", "parse", str(dq_ruleset))
    assert result.exit_code == 0, result.output
    assert "prices.dqdl: 4 rules, 2 analyzers, 4 rule types" in result.stdout
    for name in ("AllStatistics", "ColumnValues", "IsComplete", "RowCount"):
        assert name in result.stdout


def test_parse_json_is_the_tree_as_plain_data(dq_ruleset: Path) -> None:
    result = cli("dq", "parse", str(dq_ruleset), "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data == to_data(parse_ruleset(dq_ruleset.read_text()))
    assert [r["node"] for r in data["rules"]] == ["Rule", "CompositeRule", "Rule", "Rule"]


def test_summary_counts_rule_types_inside_composites(dq_ruleset: Path) -> None:
    counts = dq.summarize(parse_ruleset(dq_ruleset.read_text()))
    assert counts == {
        "AllStatistics": (0, 1),
        "ColumnValues": (3, 0),
        "IsComplete": (1, 0),
        "RowCount": (1, 1),
    }


def test_parse_error_is_one_line_with_position_and_exit_2(dq_broken: Path) -> None:
    result = cli("dq", "parse", str(dq_broken))
    assert result.exit_code == 2
    assert result.stderr == (
        "error: Parsing Error: Where clause is not supported for rule type: ColumnCount "
        '(line 3, column 21, at "where")\n'
    )
    assert result.stdout == ""


def test_missing_file_exits_2(tmp_path: Path) -> None:
    result = cli("dq", "parse", str(tmp_path / "nope.dqdl"))
    assert result.exit_code == 2
    assert "cannot read ruleset" in result.stderr
    assert "nope.dqdl" in result.stderr
