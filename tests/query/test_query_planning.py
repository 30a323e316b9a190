"""Planning: Athena's time literals and date arithmetic prune files; the per-snapshot file
cache stays right across commits; result files keep Athena's exact CSV format."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterator
from typing import Any

import duckdb
import pyarrow as pa
import pytest
import sqlglot
from pyiceberg.schema import Schema
from pyiceberg.types import NestedField, StringType, TimestamptzType

from dataflow.catalog.iceberg import create_table, open_catalog
from dataflow.config import Settings, load_settings
from dataflow.query import QueryResult, QueryRunner
from dataflow.query.dialects import translate
from dataflow.query.history import QueryState, get_execution
from dataflow.query.output import csv_text, read_results
from dataflow.query.planning import table_filters

SCHEMA = Schema(
    NestedField(1, "symbol", StringType(), required=False),
    NestedField(2, "ts", TimestamptzType(), required=False),
)
ARROW = pa.schema([("symbol", pa.string()), ("ts", pa.timestamp("us", tz="UTC"))])
MONTHS = [dt.datetime(2026, month, 10, tzinfo=dt.UTC) for month in (8, 9, 10, 11)]


def _ts_filter(athena_expression: str) -> str:
    """The pruning filter ``ts >= <expression>`` (an Athena expression) becomes, as text."""
    sql = translate(f"SELECT * FROM t WHERE ts >= {athena_expression}", "athena").sql
    tree: Any = sqlglot.parse_one(sql, read="duckdb")
    found = table_filters(tree, lambda parts: ("market", parts[-1]), {("market", "t"): SCHEMA})
    return repr(found[("market", "t")])


@pytest.mark.parametrize(
    ("expression", "moment"),
    [
        ("TIMESTAMP '2026-10-25 00:00:00 UTC'", "2026-10-25 00:00:00+00"),
        ("TIMESTAMP '2026-10-25 06:30:00.5 Etc/UTC'", "2026-10-25 06:30:00.5+00"),
        ("date_add('day', -7, TIMESTAMP '2026-11-01 00:00:00 UTC')", "2026-10-25 00:00:00+00"),
        ("date_add('hour', 3, TIMESTAMP '2026-11-01 00:00:00')", "2026-11-01 03:00:00+00"),
        ("date_add('month', 1, TIMESTAMP '2026-01-31 10:00:00 UTC')", "2026-02-28 10:00:00+00"),
        ("date_add('year', -1, DATE '2024-02-29')", "2023-02-28 00:00:00+00"),
        ("TIMESTAMP '2026-11-01 00:00:00 UTC' - INTERVAL '7' DAY", "2026-10-25 00:00:00+00"),
    ],
)
def test_athena_time_literals_and_date_arithmetic_become_pruning_bounds(
    expression: str, moment: str
) -> None:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    # DuckDB's own value of the translated expression is the bound pruning must use.
    duck = translate(f"SELECT {expression}", "athena").sql
    ((value,),) = con.sql(
        f"SELECT CAST(({duck.removeprefix('SELECT ')}) AS TIMESTAMPTZ)"
    ).fetchall()
    expected = dt.datetime.fromisoformat(moment).astimezone(dt.UTC)
    assert value == expected

    text = _ts_filter(expression)

    assert text.startswith("GreaterThanOrEqual(term=Reference(name='ts')")
    assert f"literal('{expected.isoformat()}')" in text


@pytest.mark.parametrize(
    "expression",
    [
        "TIMESTAMP '2026-10-25 00:00:00 Europe/Paris'",  # DST rules are DuckDB's: not guessed
        "date_add('day', -7, now())",
        "date_add('day', -7, TIMESTAMP '2026-10-25 00:00:00 UTC+01:00')",
    ],
)
def test_what_is_not_a_known_constant_does_not_prune(expression: str) -> None:
    assert _ts_filter(expression) == "AlwaysTrue()"


def test_nested_interval_arithmetic_folds() -> None:
    text = _ts_filter("TIMESTAMP '2026-10-25 00:00:00 UTC' + INTERVAL '1' DAY + INTERVAL '2' HOUR")
    expected = dt.datetime(2026, 10, 26, 2, tzinfo=dt.UTC)
    assert f"literal('{expected.isoformat()}')" in text


@pytest.fixture(scope="module")
def p_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A project with market.p_bars: 4 monthly partitions of 2 symbols, one file each."""
    settings = load_settings(tmp_path_factory.mktemp("planning") / "project", env={})
    table = create_table(open_catalog(settings), "market", "p_bars", ARROW, partition="month(ts)")
    rows = [
        (s, m + dt.timedelta(hours=h)) for m in MONTHS for s in ("AAPL", "MSFT") for h in (0, 1)
    ]
    table.append(pa.table({"symbol": [r[0] for r in rows], "ts": [r[1] for r in rows]}, ARROW))
    return settings


@pytest.fixture
def p_runner(p_settings: Settings) -> Iterator[QueryRunner]:
    with QueryRunner(p_settings) as runner:
        yield runner


def test_athena_utc_and_date_add_filters_read_fewer_files(p_runner: QueryRunner) -> None:
    everything = p_runner.dry_run("SELECT count(*) FROM p_bars")
    queries = {
        "duckdb": "SELECT count(*) FROM p_bars WHERE ts >= TIMESTAMPTZ '2026-10-01 00:00:00+00'",
        "utc": "SELECT count(*) FROM p_bars WHERE ts >= TIMESTAMP '2026-10-01 00:00:00 UTC'",
        "date_add": "SELECT count(*) FROM p_bars "
        "WHERE ts >= date_add('day', -31, TIMESTAMP '2026-11-01 00:00:00 UTC')",
    }

    plans = {
        name: p_runner.dry_run(sql, dialect="duckdb" if name == "duckdb" else "athena")
        for name, sql in queries.items()
    }

    assert everything.files_scanned == 4
    assert [plan.files_scanned for plan in plans.values()] == [2, 2, 2]
    assert plans["utc"].bytes_scanned == plans["duckdb"].bytes_scanned < everything.bytes_scanned
    for name, sql in queries.items():
        dialect = "duckdb" if name == "duckdb" else "athena"
        assert p_runner.run(sql, dialect=dialect).result.rows == [(8,)]


def test_cached_file_plans_follow_commits_and_time_travel(
    p_settings: Settings, p_runner: QueryRunner
) -> None:
    sql = (
        "SELECT symbol, count(*) AS n FROM p_bars "
        "WHERE ts >= TIMESTAMPTZ '2026-11-01 00:00:00+00' GROUP BY 1 ORDER BY 1"
    )
    first = p_runner.session.plan(sql)
    again = p_runner.session.plan(sql)
    # The same snapshot and filter: the very same planned files, not read from manifests again.
    assert again.scans[0].files is first.scans[0].files
    assert p_runner.session.run(again).rows == [("AAPL", 2), ("MSFT", 2)]
    other = p_runner.session.execute("SELECT count(*) FROM p_bars")
    assert other.rows == [(16,)]  # the view followed the other plan's files
    assert p_runner.session.execute(sql).rows == [("AAPL", 2), ("MSFT", 2)]  # and back
    before = first.scans[0].snapshot_id

    table = open_catalog(p_settings).load_table(("market", "p_bars"))
    late = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    table.append(pa.table({"symbol": ["AAPL"], "ts": [late]}, ARROW))

    after = p_runner.run(sql)
    assert after.result.rows == [("AAPL", 3), ("MSFT", 2)]
    assert after.plan.files_scanned == first.files_scanned + 1
    assert after.plan.scans[0].snapshot_id != before
    past = p_runner.run(sql, as_of=str(before))
    assert past.result.rows == [("AAPL", 2), ("MSFT", 2)]
    assert past.plan.files_scanned == first.files_scanned


def test_a_run_writes_its_history_row_once_and_finishes_it(p_runner: QueryRunner) -> None:
    outcome = p_runner.run("SELECT count(*) AS n FROM p_bars")

    stored = get_execution(p_runner.db, outcome.execution.query_id)
    assert stored.state is QueryState.SUCCEEDED
    assert stored.queue_ms is not None
    assert stored.queue_ms >= 0
    assert stored.rows_returned == 1
    assert stored.files_scanned == outcome.plan.files_scanned


def test_result_files_keep_athenas_csv_format(p_runner: QueryRunner) -> None:
    outcome = p_runner.run(
        "SELECT * FROM (VALUES "
        "('a\"b', 1::BIGINT, 0.1::DOUBLE, true, TIMESTAMPTZ '2026-10-01 12:00:00.123456+00', "
        " TIMESTAMP '2026-10-01 12:00:00', 1.50::DECIMAL(5,2), DATE '2026-10-01', [1, 2]), "
        "(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL), "
        "('', -2, 1e16, false, TIMESTAMPTZ '2026-10-01 23:00:00-02', "
        " TIMESTAMP '2026-10-01 00:00:00.9999', 2.00, DATE '2026-10-02', [])"
        ") AS t(s, n, x, ok, aware, local, px, day, xs)"
    )
    key = f"results/{outcome.execution.query_id}.csv"
    text = p_runner.store.get_bytes(key).decode()

    assert text.split("\n") == [
        '"s","n","x","ok","aware","local","px","day","xs"',
        '"a""b","1","0.1","true","2026-10-01 12:00:00.123 UTC","2026-10-01 12:00:00.000",'
        '"1.5","2026-10-01","[1,2]"',
        ",,,,,,,,",
        '"","-2","1e+16","false","2026-10-02 01:00:00.000 UTC","2026-10-01 00:00:00.999",'
        '"2","2026-10-02","[]"',
        "",
    ]
    _, rows = read_results(p_runner.store, key)
    assert rows[1] == [None] * 9
    assert rows[2][0] == ""


def test_csv_text_formats_every_type_as_athena_value_does() -> None:
    aware = dt.datetime(2026, 10, 1, 12, 0, 0, 999999, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    result = QueryResult(
        columns=["x", "t", "d", "f", "u"],
        types=["DOUBLE", "TIMESTAMP WITH TIME ZONE", "DECIMAL(5,2)", "FLOAT", "UBIGINT"],
        rows=[(float("nan"), aware, decimal.Decimal("0.10"), 0.5, 2**64 - 1)],
    )

    assert csv_text(result).splitlines()[1] == (
        f'"nan","2026-10-01 10:00:00.999 UTC","0.1","0.5","{2**64 - 1}"'
    )
