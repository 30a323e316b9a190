"""`dataflow query` through the command line: table, CSV and JSON output, errors."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from dataflow.cli.query import register
from dataflow.config import load_settings
from dataflow.pipeline import RunOptions, run_pipeline


@pytest.fixture(scope="module")
def q_cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """Test application."""

    register(app)
    return app


@pytest.fixture(scope="module")
def q_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One project with a real run of the time series and quote endpoints."""
    project = tmp_path_factory.mktemp("query-cli") / "project"
    today = dt.datetime.now(dt.UTC).date()
    settings = load_settings(
        project,
        overrides={
            "sources.twelvedata.history_start": (today - dt.timedelta(days=10)).isoformat(),
            "sources.twelvedata.intraday_history_days": 2,
        },
        env={},
    )
    result = run_pipeline(settings, RunOptions(endpoints=["time_series", "quote"]))
    assert result.status == "succeeded", result.results
    return project


def query(app: typer.Typer, project: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        app, ["query", *args, "--project", str(project)], env={"COLUMNS": "200"}
    )
    return result.exit_code, result.stdout, result.stderr


def test_json_is_an_array_of_row_objects(q_cli: typer.Typer, q_project: Path) -> None:
    sql = "SELECT symbol, ts, close FROM market.time_series ORDER BY ts, symbol LIMIT 5"
    code, out, err = query(q_cli, q_project, sql, "--format", "json")

    assert code == 0, err
    rows = json.loads(out)
    assert len(rows) == 5
    assert set(rows[0]) == {"symbol", "ts", "close"}
    assert dt.datetime.fromisoformat(rows[0]["ts"]).utcoffset() == dt.timedelta(0)
    assert isinstance(rows[0]["close"], float)


def test_csv_has_a_header_then_the_rows(q_cli: typer.Typer, q_project: Path) -> None:
    code, out, err = query(
        q_cli, q_project, "SELECT ingest_date, endpoint FROM raw.quote", "--format", "csv"
    )

    assert code == 0, err
    header, *rows = list(csv.reader(io.StringIO(out)))
    assert header == ["ingest_date", "endpoint"]
    assert rows
    assert all(endpoint == "quote" for _, endpoint in rows)


def test_table_shows_the_first_rows_and_a_count(q_cli: typer.Typer, q_project: Path) -> None:
    code, out, err = query(
        q_cli, q_project, "SELECT symbol FROM time_series ORDER BY symbol", "--limit", "2"
    )

    assert code == 0, err
    assert "symbol" in out
    assert "first 2 of " in out


def test_sql_from_a_file(q_cli: typer.Typer, q_project: Path, tmp_path: Path) -> None:
    file = tmp_path / "count.sql"
    file.write_text("SELECT count(*) AS n FROM market.quotes;\n")

    code, out, err = query(q_cli, q_project, "-f", str(file), "--format", "json")

    assert code == 0, err
    assert json.loads(out)[0]["n"] > 0


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["SELECT * FROM market.nope"],
            "error: TABLE_NOT_FOUND: line 1:15: Table 'awsdatacatalog.market.nope' does not exist",
        ),
        (
            ["SELECT *\nFROM raw.nope", "--format", "json"],
            "error: TABLE_NOT_FOUND: line 2:6: Table 'awsdatacatalog.raw.nope' does not exist",
        ),
        (
            ["COPY (SELECT 1) TO 'x.csv'"],
            "error: NOT_SUPPORTED: line 1:1: COPY statements are not allowed",
        ),
        (["SELEC 1"], "error: SYNTAX_ERROR: line 1:1: syntax error at or near"),
        (
            ["SELECT nope FROM market.quotes", "--dialect", "athena"],
            "error: COLUMN_NOT_FOUND: line 1:8: Column 'nope' cannot be resolved",
        ),
        ([], "error: give the SQL"),
    ],
)
def test_errors_are_one_line_and_exit_2(
    q_cli: typer.Typer, q_project: Path, args: list[str], expected: str
) -> None:
    code, out, err = query(q_cli, q_project, *args)

    assert code == 2, out
    assert err.startswith(expected), err
    assert err.count("\n") == 1
    assert out == ""


def test_history_show_and_results_of_a_query(q_cli: typer.Typer, q_project: Path) -> None:
    code, out, err = query(
        q_cli,
        q_project,
        "SELECT symbol, 7 / 2 AS half FROM quotes ORDER BY 1 LIMIT 2",
        "--dialect",
        "athena",
        "--format",
        "csv",
    )
    assert code == 0, err
    assert out.splitlines()[1].endswith(",3")

    code, out, err = query(q_cli, q_project, "history", "--format", "json")
    assert code == 0, err
    latest = json.loads(out)[0]
    query_id = latest["QueryExecutionId"]
    assert latest["Status"]["State"] == "SUCCEEDED"
    assert latest["Statistics"]["DataScannedInBytes"] > 0

    code, out, err = query(q_cli, q_project, "show", query_id[:8], "--format", "json")
    assert code == 0, err
    assert json.loads(out)["Statistics"]["RowsReturned"] == 2

    code, out, err = query(q_cli, q_project, "results", query_id)
    assert code == 0, err
    assert out.splitlines()[0] == '"symbol","half"'
    code, out, err = query(q_cli, q_project, "results", query_id, "--format", "json")
    assert code == 0, err
    assert [row["half"] for row in json.loads(out)] == [3, 3]

    code, out, err = query(q_cli, q_project, "show", "no-such-id")
    assert code == 2
    assert err.startswith("error: no query execution with id 'no-such-id'")


def test_save_and_run_a_named_query_with_params(
    q_cli: typer.Typer, q_project: Path, tmp_path: Path
) -> None:
    file = tmp_path / "one.sql"
    file.write_text("SELECT symbol FROM quotes WHERE symbol = $sym\n")

    code, out, err = query(q_cli, q_project, "save", "qs_one", "-f", str(file))
    assert code == 0, err
    assert (q_project / "queries" / "qs_one.sql").is_file()
    code, out, err = query(q_cli, q_project, "list", "--format", "json")
    assert "qs_one" in {item["name"] for item in json.loads(out)}

    code, out, err = query(
        q_cli, q_project, "run", "qs_one", "--param", "sym=AAPL", "--format", "json"
    )
    assert code == 0, err
    assert json.loads(out) == [{"symbol": "AAPL"}]
    code, out, err = query(q_cli, q_project, "run", "qs_nope")
    assert code == 2
    assert "no named query 'qs_nope'" in err


def test_dry_run_prints_the_plan_without_running(q_cli: typer.Typer, q_project: Path) -> None:
    code, out, err = query(
        q_cli,
        q_project,
        "SELECT * FROM time_series WHERE interval = '1h'",
        "--dry-run",
        "--format",
        "json",
    )
    assert code == 0, err
    plan = json.loads(out)
    (table,) = plan["tables"]
    assert table["files"] < table["total_files"]
    assert plan["cost_usd"] > 0

    code, out, err = query(q_cli, q_project, "SELECT 1", "--dry-run")
    assert code == 0, err
    assert "Athena cost $" in out


@pytest.mark.parametrize("fmt", ["parquet", "csv", "json"])
def test_output_writes_the_rows_to_a_file(
    q_cli: typer.Typer, q_project: Path, tmp_path: Path, fmt: str
) -> None:
    import pyarrow.parquet as pq

    target = tmp_path / f"out.{fmt}"
    sql = "SELECT symbol, ts, close FROM market.time_series ORDER BY ts, symbol LIMIT 7"
    code, out, err = query(q_cli, q_project, sql, "--format", fmt, "--output", str(target))
    assert code == 0, err
    assert out == ""
    assert "7 row(s) written to" in err
    if fmt == "parquet":
        table = pq.read_table(target)
        assert table.column_names == ["symbol", "ts", "close"]
        assert table.num_rows == 7
        assert str(table.schema.field("ts").type) == "timestamp[us, tz=UTC]"
    elif fmt == "json":
        assert len(json.loads(target.read_text())) == 7
    else:
        assert len(target.read_text().splitlines()) == 8


def test_parquet_needs_an_output_file(q_cli: typer.Typer, q_project: Path) -> None:
    code, _, err = query(q_cli, q_project, "SELECT 1", "--format", "parquet")
    assert code == 2
    assert "add --output FILE.parquet" in err
