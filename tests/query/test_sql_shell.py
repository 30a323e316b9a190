"""`dataflow sql`: statements from stdin, meta commands, history, and name completion."""

from __future__ import annotations

import datetime as dt
import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from rich.console import Console

from dataflow.catalog.iceberg import create_table, open_catalog
from dataflow.config import Settings, load_settings
from dataflow.metadata import open_metadata
from dataflow.metadata.db import MetadataDB
from dataflow.query import QueryRunner, QueryState
from dataflow.query.history import list_executions
from dataflow.query.shell import CatalogNames, SqlShell, complete, history_path, split_statements

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def qb_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A project whose catalog holds market.qb_bars (3 rows) and market.qb_other."""
    settings = load_settings(tmp_path_factory.mktemp("sqlshell") / "project", env={})
    catalog = open_catalog(settings)
    bars = pa.table(
        {
            "symbol": ["AAPL", "MSFT", "AAPL"],
            "ts": pa.array(
                [dt.datetime(2024, 5, d, tzinfo=dt.UTC) for d in (1, 1, 2)],
                pa.timestamp("us", tz="UTC"),
            ),
            "close": [10.5, 20.0, 11.0],
        }
    )
    create_table(catalog, "market", "qb_bars", bars.schema).append(bars)
    other = pa.table({"code": ["x"], "amount": [1]})
    create_table(catalog, "market", "qb_other", other.schema).append(other)
    return settings


@pytest.fixture
def qb_db(qb_settings: Settings) -> Iterator[MetadataDB]:
    db = open_metadata(qb_settings.metadata_url)
    yield db
    db.dispose()


@pytest.fixture
def qb_names(qb_settings: Settings, qb_db: MetadataDB) -> CatalogNames:
    return CatalogNames.load(qb_settings, qb_db, "market")


def _shell(settings: Settings, script: str) -> tuple[int, str]:
    """Run the shell in-process over ``script``; (failures, printed text)."""
    out = io.StringIO()
    with QueryRunner(settings) as runner:
        shell = SqlShell(runner, Console(file=out, width=200, color_system=None))
        failures = shell.run_lines(io.StringIO(script))
    return failures, out.getvalue()


def _sql_process(settings: Settings, script: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "dataflow", "sql", "-p", str(settings.project_dir)]
    return subprocess.run(
        command, input=script, capture_output=True, text=True, cwd=REPO, timeout=60, check=False
    )


# --- the command, stdin not a terminal -----------------------------------------------------------


def test_statements_from_stdin_print_tables_and_land_in_history(
    qb_settings: Settings, qb_db: MetadataDB
) -> None:
    before = {e.query_id for e in list_executions(qb_db, limit=1000)}
    script = (
        "SELECT count(*) AS qb_n FROM market.qb_bars;\n"
        "SELECT symbol, max(close) AS top\n"
        "  FROM qb_bars\n"
        "  GROUP BY symbol ORDER BY symbol;\n"
    )

    done = _sql_process(qb_settings, script)

    assert done.returncode == 0, done.stderr
    assert "qb_n" in done.stdout
    assert "│ 3 " in done.stdout
    assert "AAPL" in done.stdout
    assert "11.0" in done.stdout
    assert "MSFT" in done.stdout
    new = [e for e in list_executions(qb_db, limit=1000) if e.query_id not in before]
    assert sorted(" ".join(e.query.split()) for e in new) == [
        "SELECT count(*) AS qb_n FROM market.qb_bars",
        "SELECT symbol, max(close) AS top FROM qb_bars GROUP BY symbol ORDER BY symbol",
    ]
    assert {e.state for e in new} == {QueryState.SUCCEEDED}
    assert all(e.query_id in done.stdout for e in new)


def test_a_failed_statement_is_reported_the_next_runs_and_the_exit_status_is_1(
    qb_settings: Settings,
) -> None:
    done = _sql_process(qb_settings, "SELECT nope FROM market.qb_bars;\nSELECT 41 + 1 AS answer;")

    assert done.returncode == 1
    assert "COLUMN_NOT_FOUND" in done.stdout
    assert "answer" in done.stdout
    assert "42" in done.stdout


def test_echo_without_semicolon_runs_the_statement(qb_settings: Settings) -> None:
    done = _sql_process(qb_settings, "SELECT 'qb' || 'echo' AS word\n")

    assert done.returncode == 0, done.stderr
    assert "qbecho" in done.stdout


# --- meta commands and statements, in-process ----------------------------------------------------


def test_meta_commands_list_tables_and_columns(qb_settings: Settings) -> None:
    failures, text = _shell(qb_settings, "\\d\n\\d market.qb_bars\n\\d qb_missing\n")

    assert failures == 1  # the missing table
    assert "market.qb_bars" in text
    assert "market.qb_other" in text
    assert "iceberg" in text
    assert "close" in text
    assert "double" in text
    assert "timestamp" in text
    assert "qb_missing" in text


def test_dialect_switch_translates_athena_sql(qb_settings: Settings) -> None:
    script = "\\dialect athena\nSELECT date_add('day', 1, DATE '2024-01-31') AS d;\n\\dialect\n"

    failures, text = _shell(qb_settings, script)

    assert failures == 0, text
    assert "2024-02-01" in text
    assert text.count("dialect: athena") == 2


def test_unknown_dialect_and_meta_command_are_errors(qb_settings: Settings) -> None:
    failures, text = _shell(qb_settings, "\\dialect cobol\n\\frobnicate\n")

    assert failures == 2
    assert "unknown dialect 'cobol'" in text
    assert "unknown command \\frobnicate" in text


def test_two_statements_on_one_line_and_quit_stops_reading(qb_settings: Settings) -> None:
    failures, text = _shell(
        qb_settings, "SELECT 'a;b' AS first; SELECT 2 AS second;\n\\q\nSELECT 3 AS never;\n"
    )

    assert failures == 0
    assert "a;b" in text
    assert "second" in text
    assert "never" not in text


def test_split_statements_ignores_semicolons_in_quotes_and_comments() -> None:
    text = "SELECT ';' AS \"x;y\" -- not; here\n; /* ; */ SELECT 2;\nSELECT 3"

    statements, rest = split_statements(text)

    assert statements == ["SELECT ';' AS \"x;y\" -- not; here", "/* ; */ SELECT 2"]
    assert rest == "SELECT 3"


def test_history_file_is_in_the_state_folder(qb_settings: Settings) -> None:
    assert history_path(qb_settings) == qb_settings.state_dir / ".dataflow_sql_history"


# --- completion ----------------------------------------------------------------------------------


def test_completes_qualified_table_names(qb_names: CatalogNames) -> None:
    assert complete(qb_names, "market.qb", "SELECT * FROM market.qb") == [
        "market.qb_bars",
        "market.qb_other",
    ]
    assert complete(qb_names, "market.qb_b", "SELECT * FROM market.qb_b") == ["market.qb_bars"]
    assert "market." in complete(qb_names, "mar", "SELECT * FROM mar")


def test_completes_unqualified_tables_of_the_default_database(qb_names: CatalogNames) -> None:
    assert complete(qb_names, "qb_o", "SELECT * FROM qb_o") == ["qb_other"]


def test_completes_columns_of_the_tables_in_the_statement(qb_names: CatalogNames) -> None:
    line = "SELECT cl FROM market.qb_bars WHERE "
    assert complete(qb_names, "cl", line) == ["close"]
    # only the named table's columns: qb_other's "code" is not offered
    offered = complete(qb_names, "c", "SELECT c FROM qb_bars")
    assert "close" in offered
    assert "code" not in offered
    assert {"close", "code"} <= set(complete(qb_names, "c", "SELECT c"))  # no table yet: all
    assert complete(qb_names, "b.sy", "SELECT b.sy FROM market.qb_bars b") == ["b.symbol"]


def test_completes_keywords_in_the_case_typed(qb_names: CatalogNames) -> None:
    assert "select" in complete(qb_names, "sel", "sel")
    assert "SELECT" in complete(qb_names, "SEL", "SEL")


def test_completes_meta_commands_tables_and_dialects(qb_names: CatalogNames) -> None:
    assert complete(qb_names, "\\d", "\\d") == ["\\d", "\\dialect"]
    assert complete(qb_names, "market.qb_o", "\\d market.qb_o") == ["market.qb_other"]
    assert complete(qb_names, "at", "\\dialect at") == ["athena"]


def test_shell_completion_uses_earlier_lines_of_the_statement(qb_settings: Settings) -> None:
    with QueryRunner(qb_settings) as runner:
        shell = SqlShell(runner, Console(file=io.StringIO()))
        shell.feed("SELECT *")
        shell.feed("FROM market.qb_other")
        assert shell.completions("am", "WHERE am") == ["amount"]
        shell.reset()
        assert shell.completions("am", "WHERE am") == ["amount"]  # no table named: all columns
        assert shell.completions("sym", "WHERE sym") == ["symbol"]
