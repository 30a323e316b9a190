"""`dataflow transform` as a user runs it: after an ingest, incrementally, and with bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from dataflow.catalog.iceberg import load_table, open_catalog
from dataflow.cli.app import _register, app
from dataflow.config import load_settings
from dataflow.quality.gate import APPROVED_BRANCH, AUDIT_BRANCH

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
    # Gated like `dataflow run`: audited, then published; no branch is left behind.
    assert json.loads(first.stdout)["gated"] is True
    assert json.loads(first.stdout)["publish"]["status"] == "succeeded"
    audited = json.loads(first.stdout)["quality"]["details"]["tables"]
    assert set(audited) == {name for name, t in tables.items() if t["commits"]}
    assert AUDIT_BRANCH not in _table(ingested, "time_series").metadata.refs

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
    # Sums of floats depend on the order DuckDB's threads add them in: compare them loosely.
    assert json.loads(after) == [
        {**row, "s": pytest.approx(row["s"], abs=1e-3)} for row in json.loads(before)
    ]


def test_unknown_table_is_a_one_line_error(ingested: Path) -> None:
    result = CliRunner().invoke(app, ["transform", "--project", str(ingested), "--tables",
                                      "time_serie"])  # fmt: skip
    assert result.exit_code == 2
    assert "did you mean time_series" in result.stderr
    assert result.stderr.count("\n") == 1


# Every row passes but MSFT's; with the fail policy the new data must not reach readers.
FAILING = """Metadata = { "Policy": "fail" }
Rules = [ ColumnValues "symbol" not in [ "MSFT" ], RowCount > 0 ]
"""


def _table(project: Path, name: str) -> Any:
    settings = load_settings(project, env={})
    table = load_table(open_catalog(settings), settings.catalog.namespace, name)
    assert table is not None
    return table


def test_a_fail_gate_keeps_the_transformed_rows_from_readers(ingested: Path) -> None:
    (ingested / "quality").mkdir()
    (ingested / "quality" / "time_series.dqdl").write_text(FAILING)

    gated = cli("transform", "--project", str(ingested), "--tables", "time_series",
                "--format", "json")  # fmt: skip

    assert gated.exit_code == 1, gated.output
    run = json.loads(gated.stdout)
    assert run["status"] == "failed"
    assert (run["quality"]["status"], run["publish"]["status"]) == ("partial", "failed")
    assert "time_series" in run["publish"]["message"]
    assert set(run["quality"]["details"]["tables"]) == {"time_series"}  # only what it wrote
    table = _table(ingested, "time_series")
    assert table.current_snapshot() is None  # main: nothing published
    held = table.scan(snapshot_id=table.metadata.refs[AUDIT_BRANCH].snapshot_id).to_arrow()
    assert "MSFT" in set(held.column("symbol").to_pylist())
    assert APPROVED_BRANCH not in table.metadata.refs

    # --no-gate: straight to main, no audit.
    ungated = cli("transform", "--project", str(ingested), "--tables", "time_series",
                  "--no-gate", "--format", "json")  # fmt: skip

    assert ungated.exit_code == 0, ungated.output
    run = json.loads(ungated.stdout)
    assert run["gated"] is False
    assert "quality" not in run
    assert "publish" not in run
    table = _table(ingested, "time_series")
    assert "MSFT" in set(table.scan().to_arrow().column("symbol").to_pylist())


def test_help_documents_no_gate() -> None:
    result = CliRunner().invoke(app, ["transform", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "--no-gate" in result.output
    assert "audit branch" in result.output
