"""`dataflow transform` as a user runs it: after an ingest, incrementally, and with bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from dataflow.cli.app import _register, app

_register()


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def ingested(tmp_path: Path) -> Path:
    project = tmp_path / "p"
    project.mkdir()
    (project / "dataflow.yaml").write_text(
        "sources:\n  twelvedata:\n"
        "    symbols: {stocks: [AAPL, MSFT], forex: [EUR/USD], crypto: [BTC/USD]}\n"
    )
    result = cli("ingest", "--project", str(project), "--no-progress", "--endpoints",
                 "time_series,quote,exchange_rate")  # fmt: skip
    assert result.exit_code == 0, result.output
    return project


def test_transform_builds_the_tables_then_reads_only_new_files(ingested: Path) -> None:
    first = cli("transform", "--project", str(ingested), "--format", "json")
    assert first.exit_code == 0, first.output
    tables = json.loads(first.stdout)["tables"]
    assert tables["time_series"]["rows_out"] > 500
    assert tables["quotes"]["rows_out"] == 4
    assert tables["fx_rates"]["rows_out"] == 2
    assert all(t["quarantined"] == 0 for t in tables.values())

    again = cli("transform", "--project", str(ingested), "--format", "json")
    assert all(t["files"] == 0 for t in json.loads(again.stdout)["tables"].values())

    counted = cli("query", "SELECT count(*) AS n, count(DISTINCT _raw_key) AS files FROM "
                  "time_series", "--project", str(ingested), "--format", "json")  # fmt: skip
    assert json.loads(counted.stdout) == [{"n": tables["time_series"]["rows_out"], "files": 1}]


def test_full_refresh_rebuilds_to_the_same_rows(ingested: Path) -> None:
    cli("transform", "--project", str(ingested), "--tables", "time_series")
    query = ("SELECT symbol, interval, count(*) AS n, round(sum(close), 4) AS s FROM time_series "
             "GROUP BY ALL ORDER BY ALL")  # fmt: skip
    before = cli("query", query, "--project", str(ingested), "--format", "json").stdout
    rebuilt = cli("transform", "--project", str(ingested), "--tables", "time_series",
                  "--full-refresh", "--format", "json")  # fmt: skip
    assert json.loads(rebuilt.stdout)["tables"]["time_series"]["files"] == 1
    after = cli("query", query, "--project", str(ingested), "--format", "json").stdout
    assert json.loads(after) == json.loads(before)


def test_unknown_table_is_a_one_line_error(ingested: Path) -> None:
    result = CliRunner().invoke(app, ["transform", "--project", str(ingested), "--tables",
                                      "time_serie"])  # fmt: skip
    assert result.exit_code == 2
    assert "did you mean time_series" in result.stderr
    assert result.stderr.count("\n") == 1
