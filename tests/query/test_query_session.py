"""QuerySession: catalog tables as views, read-only statements, errors, results."""

from __future__ import annotations

import datetime as dt
import decimal
import io
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from dataflow.catalog.iceberg import create_table, open_catalog
from dataflow.config import Settings, load_settings
from dataflow.errors import ConfigError, NoSuchTableError
from dataflow.pipeline import RunOptions, run_pipeline
from dataflow.query import QueryResult, QuerySession

UTC_TZ = "TIMESTAMP WITH TIME ZONE"


@pytest.fixture(scope="module")
def q_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """One project with a real run (time series, quotes, stocks) and an empty Iceberg table."""
    today = dt.datetime.now(dt.UTC).date()
    settings = load_settings(
        tmp_path_factory.mktemp("query") / "project",
        overrides={
            "sources.twelvedata.history_start": (today - dt.timedelta(days=20)).isoformat(),
            "sources.twelvedata.intraday_history_days": 3,
        },
        env={},
    )
    result = run_pipeline(settings, RunOptions(endpoints=["time_series", "quote", "stocks"]))
    assert result.status == "succeeded", result.results
    schema = pa.schema([("symbol", pa.string()), ("ts", pa.timestamp("us", tz="UTC"))])
    create_table(open_catalog(settings), "market", "q_empty", schema)
    return settings


@pytest.fixture
def q_session(q_settings: Settings) -> Iterator[QuerySession]:
    with QuerySession(q_settings) as session:
        yield session


def test_iceberg_table_reads_the_current_snapshot_with_utc_timestamps(
    q_settings: Settings, q_session: QuerySession
) -> None:
    table = open_catalog(q_settings).load_table(("market", "time_series"))
    expected = table.scan().to_arrow().num_rows

    result = q_session.execute("SELECT count(*) AS n, min(ts) AS first FROM market.time_series")

    assert result.columns == ["n", "first"]
    assert result.types == ["BIGINT", UTC_TZ]
    ((n, first),) = result.rows
    assert n == expected > 0
    assert first.utcoffset() == dt.timedelta(0)


def test_unqualified_names_resolve_in_market(q_session: QuerySession) -> None:
    qualified = q_session.execute("SELECT count(*) FROM market.quotes").rows
    assert q_session.execute("SELECT count(*) FROM quotes").rows == qualified
    assert qualified[0][0] > 0


def test_external_table_has_its_partition_column_as_a_string(q_session: QuerySession) -> None:
    result = q_session.execute(
        "SELECT ingest_date, endpoint, count(*) AS n FROM raw.quote GROUP BY ALL"
    )

    assert result.columns == ["ingest_date", "endpoint", "n"]
    assert result.types[0] == "VARCHAR"
    ((ingest_date, endpoint, n),) = result.rows
    dt.date.fromisoformat(ingest_date)
    assert endpoint == "quote"
    assert n > 0


def test_empty_iceberg_table_has_its_columns_and_no_rows(q_session: QuerySession) -> None:
    result = q_session.execute("SELECT * FROM market.q_empty")

    assert result.columns == ["symbol", "ts"]
    assert result.types == ["VARCHAR", UTC_TZ]
    assert result.rows == []


def test_using_join_and_cte_resolve_their_tables(q_session: QuerySession) -> None:
    # DuckDB cannot list the tables of a USING join without binding it; sqlglot does it.
    result = q_session.execute(
        "WITH q AS (SELECT symbol, close AS last FROM quotes) "
        "SELECT count(*) FROM market.time_series JOIN q USING (symbol)"
    )
    assert result.rows[0][0] > 0


def test_show_all_tables_lists_clean_and_raw_tables(q_session: QuerySession) -> None:
    rows = q_session.execute("SHOW ALL TABLES").rows
    names = {f"{schema}.{name}" for _, schema, name, *_ in rows}
    assert {"market.time_series", "market.quotes", "raw.quote", "raw.time_series"} <= names
    assert set(q_session.tables()) == names


def test_max_rows_truncates_and_says_so(q_session: QuerySession) -> None:
    result = q_session.execute("SELECT * FROM market.time_series", max_rows=3)
    assert result.row_count == 3
    assert result.truncated
    assert not q_session.execute("SELECT 1", max_rows=3).truncated


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT * FROM market.nope", "line 1:15: Table 'awsdatacatalog.market.nope' does"),
        ("SELECT * FROM nope", "line 1:15: Table 'awsdatacatalog.market.nope' does not exist"),
        ("SELECT 1 FROM raw.nope", "line 1:15: Table 'awsdatacatalog.raw.nope' does not exist"),
        ("SELECT * FROM elsewhere.nope", "Table 'awsdatacatalog.elsewhere.nope' does not exist"),
    ],
)
def test_missing_table_is_named(q_session: QuerySession, sql: str, expected: str) -> None:
    with pytest.raises(NoSuchTableError, match=expected) as caught:
        q_session.execute(sql)
    assert str(caught.value).startswith("TABLE_NOT_FOUND: line ")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "sql",
    [
        "COPY (SELECT 1) TO '{wh}/copied.csv'",
        "EXPLAIN ANALYZE COPY (SELECT 1) TO '{wh}/copied.csv'",
        "INSTALL httpfs",
        "LOAD httpfs",
        "ATTACH '{wh}/attached.db'",
        "CREATE TABLE market.t AS SELECT 1",
        "CREATE VIEW v AS SELECT 1",
        "INSERT INTO market.q_empty VALUES ('x', NULL)",
        "SET enable_external_access = true",
        "PRAGMA version",
        "SELECT 1; COPY (SELECT 1) TO '{wh}/copied.csv'",
    ],
)
def test_statements_that_are_not_queries_are_refused(
    q_settings: Settings, q_session: QuerySession, sql: str
) -> None:
    warehouse = Path(q_settings.warehouse_uri)
    with pytest.raises(ConfigError) as caught:
        q_session.execute(sql.format(wh=warehouse))
    message = str(caught.value)
    assert "\n" not in message
    assert "not allowed" in message or "one statement" in message
    assert not (warehouse / "copied.csv").exists()
    assert not (warehouse / "attached.db").exists()


def test_files_outside_the_warehouse_cannot_be_read(
    q_session: QuerySession, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n")
    with pytest.raises(ConfigError, match="Permission"):
        q_session.execute(f"SELECT * FROM read_csv('{secret}')")
    setting = "SELECT current_setting('enable_external_access')"
    assert q_session.execute(setting).rows == [(False,)]


def test_bad_sql_is_a_config_error_on_one_line(q_session: QuerySession) -> None:
    with pytest.raises(ConfigError, match=r"^SYNTAX_ERROR: line 1:1: syntax") as caught:
        q_session.execute("SELEC 1")
    assert "\n" not in str(caught.value)
    with pytest.raises(ConfigError, match=r"^COLUMN_NOT_FOUND: line 1:8: Column 'no_such_column'"):
        q_session.execute("SELECT no_such_column FROM market.stocks")


def test_opening_a_session_is_cheap(q_settings: Settings) -> None:
    # Views are made for the tables a statement names, not when the session opens.
    started = time.perf_counter()
    with QuerySession(q_settings):
        elapsed = time.perf_counter() - started
    assert elapsed < 1.0


def test_result_renders_json_and_csv() -> None:
    result = QueryResult(
        columns=["ts", "px", "x", "tags", "x"],
        types=[UTC_TZ, "DECIMAL(10,2)", "DOUBLE", "VARCHAR[]", "INTEGER"],
        rows=[
            (
                dt.datetime(2024, 5, 1, 13, 30, tzinfo=dt.UTC),
                decimal.Decimal("1.25"),
                float("nan"),
                ["a", "b"],
                None,
            ),
        ],
    )

    assert result.to_json_rows() == [
        {"ts": "2024-05-01T13:30:00+00:00", "px": 1.25, "x": None, "tags": ["a", "b"], "x_2": None}
    ]
    out = io.StringIO()
    result.to_csv(out)
    assert out.getvalue().splitlines() == [
        "ts,px,x,tags,x",
        '2024-05-01T13:30:00+00:00,1.25,nan,"[""a"",""b""]",',
    ]
