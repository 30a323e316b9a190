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
    assert "first 2 row(s) shown" in out


def test_sql_from_a_file(q_cli: typer.Typer, q_project: Path, tmp_path: Path) -> None:
    file = tmp_path / "count.sql"
    file.write_text("SELECT count(*) AS n FROM market.quotes;\n")

    code, out, err = query(q_cli, q_project, "-f", str(file), "--format", "json")

    assert code == 0, err
    assert json.loads(out)[0]["n"] > 0


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["SELECT * FROM market.nope"], "error: no table market.nope"),
        (["SELECT * FROM raw.nope", "--format", "json"], "error: no table raw.nope"),
        (["COPY (SELECT 1) TO 'x.csv'"], "error: COPY statements are not allowed"),
        (["SELEC 1"], "error: Parser Error"),
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
