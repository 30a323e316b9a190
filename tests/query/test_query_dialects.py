"""Athena (Trino) and Spark SQL run unchanged: the time-series corpus against DuckDB by hand.

Each case is ``(athena sql, hand-written duckdb sql)``: both run on the same session over the
same Iceberg tables and must return the same rows. Then the semantics sqlglot alone gets wrong
(integer division, date_diff), and Athena's error names and positions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from dataflow.config import Settings, load_settings
from dataflow.errors import NoSuchTableError
from dataflow.pipeline import RunOptions, run_pipeline
from dataflow.query import QuerySession
from dataflow.query.dialects import joda_to_strftime, translate
from dataflow.query.errors import QueryError


@pytest.fixture(scope="module")
def qs_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = load_settings(tmp_path_factory.mktemp("dialects") / "project", env={})
    result = run_pipeline(settings, RunOptions(endpoints=["time_series", "quote"]))
    assert result.status == "succeeded", result.results
    return settings


@pytest.fixture(scope="module")
def qs_session(qs_settings: Settings) -> Iterator[QuerySession]:
    with QuerySession(qs_settings) as session:
        yield session


CORPUS = {
    "ohlc_daily_bars_from_hourly_with_min_by_max_by": (
        """SELECT symbol, date_trunc('day', ts) AS day, min_by(open, ts) AS open,
                  max(high) AS high, min(low) AS low, max_by(close, ts) AS close,
                  sum(volume) AS volume
           FROM market.time_series WHERE interval = '1h'
           GROUP BY symbol, date_trunc('day', ts) ORDER BY 1, 2""",
        """SELECT symbol, date_trunc('day', ts), arg_min(open, ts), max(high), min(low),
                  arg_max(close, ts), sum(volume)
           FROM market.time_series WHERE interval = '1h' GROUP BY ALL ORDER BY 1, 2""",
    ),
    "moving_average_with_a_rows_frame": (
        """SELECT symbol, ts, avg(close) OVER (PARTITION BY symbol ORDER BY ts
                  ROWS BETWEEN 6 PRECEDING AND CURRENT ROW) AS ma7
           FROM time_series WHERE interval = '1day' ORDER BY symbol, ts""",
        """SELECT symbol, ts, avg(close) OVER w FROM time_series WHERE interval = '1day'
           WINDOW w AS (PARTITION BY symbol ORDER BY ts ROWS 6 PRECEDING) ORDER BY symbol, ts""",
    ),
    "weekly_buckets_with_count_if": (
        """SELECT date_trunc('week', ts) AS week, count_if(close > open) AS up, count(*) AS n
           FROM time_series WHERE interval = '1day' AND symbol = 'AAPL' GROUP BY 1 ORDER BY 1""",
        """SELECT date_trunc('week', ts), count(*) FILTER (WHERE close > open), count(*)
           FROM time_series WHERE interval = '1day' AND symbol = 'AAPL' GROUP BY 1 ORDER BY 1""",
    ),
    "percentiles_scalar_and_array": (
        """SELECT symbol, approx_percentile(close, 0.5) AS p50,
                  approx_percentile(close, ARRAY[0.05, 0.95]) AS tails
           FROM time_series WHERE interval = '1day' GROUP BY symbol ORDER BY symbol""",
        """SELECT symbol, approx_quantile(close, 0.5), approx_quantile(close, [0.05, 0.95])
           FROM time_series WHERE interval = '1day' GROUP BY symbol ORDER BY symbol""",
    ),
    "top_n_per_group_with_row_number": (
        """SELECT symbol, ts, volume FROM (
             SELECT symbol, ts, volume,
                    row_number() OVER (PARTITION BY symbol ORDER BY volume DESC, ts) AS rn
             FROM time_series WHERE interval = '1day') t
           WHERE rn <= 3 ORDER BY symbol, rn""",
        """SELECT symbol, ts, volume FROM time_series WHERE interval = '1day'
           QUALIFY row_number() OVER (PARTITION BY symbol ORDER BY volume DESC, ts) <= 3
           ORDER BY symbol, row_number() OVER (PARTITION BY symbol ORDER BY volume DESC, ts)""",
    ),
    "typed_literals_and_interval_arithmetic": (
        """SELECT count(*) FROM time_series
           WHERE ts >= (SELECT max(ts) FROM time_series) - INTERVAL '7' DAY
             AND ts < TIMESTAMP '2100-01-01 00:00:00' AND CAST(ts AS DATE) > DATE '2000-01-01'""",
        """SELECT count(*) FROM time_series
           WHERE ts >= (SELECT max(ts) FROM time_series) - to_days(7)
             AND ts < '2100-01-01'::TIMESTAMPTZ AND ts::DATE > '2000-01-01'::DATE""",
    ),
    "quoted_identifiers_approx_distinct_lag": (
        """SELECT "symbol", approx_distinct("interval") AS kinds, max(j) AS jump
           FROM (SELECT "symbol", "interval", close - lag(close, 1, 0)
                        OVER (PARTITION BY "symbol" ORDER BY ts, "interval") AS j
                 FROM "market"."time_series") GROUP BY "symbol" ORDER BY 1""",
        """WITH d AS (SELECT symbol, interval,
                        close - lag(close, 1, 0) OVER (PARTITION BY symbol ORDER BY ts, interval)
                        AS j FROM market.time_series)
           SELECT symbol, approx_count_distinct(interval), max(j) FROM d GROUP BY 1 ORDER BY 1""",
    ),
    "date_format_and_format_datetime": (
        """SELECT DISTINCT date_format(ts, '%Y-%m') AS month, format_datetime(ts, 'yyyy') AS y
           FROM time_series ORDER BY 1""",
        "SELECT DISTINCT strftime(ts, '%Y-%m'), strftime(ts, '%Y') FROM time_series ORDER BY 1",
    ),
    "day_of_week_and_hour": (
        """SELECT day_of_week(ts) AS dow, hour(ts) AS h, count(*) AS n FROM time_series
           WHERE interval = '1h' GROUP BY 1, 2 ORDER BY 1, 2""",
        """SELECT isodow(ts), hour(ts), count(*) FROM time_series WHERE interval = '1h'
           GROUP BY 1, 2 ORDER BY 1, 2""",
    ),
}


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_athena_corpus_matches_hand_written_duckdb(qs_session: QuerySession, name: str) -> None:
    athena, duckdb_sql = CORPUS[name]

    ours = qs_session.execute(athena, dialect="athena").rows
    expected = qs_session.execute(duckdb_sql).rows

    assert ours == expected
    assert ours, "the corpus must run on data"


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT 7 / 2, -7 / 2, 7.0 / 2, CAST(7 AS DOUBLE) / 2", (3, -3, 3.5, 3.5)),
        (
            "SELECT date_diff('day', TIMESTAMP '2024-01-01 23:00:00', "
            "TIMESTAMP '2024-01-03 01:00:00'), date_diff('hour', TIMESTAMP '2024-01-01 00:30:00',"
            " TIMESTAMP '2024-01-01 02:00:00')",
            (1, 1),
        ),
        (
            "SELECT date_add('hour', 5, TIMESTAMP '2024-01-01 00:00:00')",
            (dt.datetime(2024, 1, 1, 5),),
        ),
        (
            "SELECT from_iso8601_timestamp('2024-05-01T12:30:00Z'), from_unixtime(1714566600)",
            (dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC),) * 2,
        ),
        (
            "SELECT date_parse('2024-05-01 12:30:05', '%Y-%m-%d %H:%i:%s'), "
            "date_format(TIMESTAMP '2024-05-01 12:30:00', '%Y-%m-%d %H:%i')",
            (dt.datetime(2024, 5, 1, 12, 30, 5), "2024-05-01 12:30"),
        ),
        (
            "SELECT parse_datetime('2024-05-01 12:30', 'yyyy-MM-dd HH:mm')",
            (dt.datetime(2024, 5, 1, 12, 30),),
        ),
    ],
)
def test_trino_semantics(qs_session: QuerySession, sql: str, expected: tuple[object, ...]) -> None:
    (row,) = qs_session.execute(sql, dialect="trino").rows
    assert row == expected


def test_duckdb_and_spark_keep_their_own_division(qs_session: QuerySession) -> None:
    assert qs_session.execute("SELECT 7 / 2").rows == [(3.5,)]
    assert qs_session.execute("SELECT 7 DIV 2, 7 / 2", dialect="spark").rows == [(3, 3.5)]


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT nope FROM time_series", "COLUMN_NOT_FOUND: line 1:8: Column 'nope' cannot be"),
        (
            "SELECT symbol\nFROM market.nope",
            "TABLE_NOT_FOUND: line 2:6: Table 'awsdatacatalog.market.nope' does not exist",
        ),
        ("SELECT symbol FROM time_series t WHERE", "SYNTAX_ERROR: line 1:"),
        ("SELECT no_such_fn(1)", "FUNCTION_NOT_FOUND: line 1:8: Function 'no_such_fn'"),
        (
            "SELECT 1 FROM time_series WHERE \"nope\" = 'x'",
            "COLUMN_NOT_FOUND: line 1:33: Column 'nope'",
        ),
    ],
)
def test_errors_have_athena_names_and_positions(
    qs_session: QuerySession, sql: str, message: str
) -> None:
    with pytest.raises(QueryError) as caught:
        qs_session.execute(sql, dialect="athena")
    assert str(caught.value).startswith(message), str(caught.value)
    assert "\n" not in str(caught.value)


def test_table_not_found_is_also_a_no_such_table_error(qs_session: QuerySession) -> None:
    with pytest.raises(NoSuchTableError):
        qs_session.execute("SELECT * FROM raw.nope", dialect="athena")


def test_translation_and_joda_patterns() -> None:
    assert translate("SELECT approx_distinct(x) FROM t", "athena").sql == (
        "SELECT APPROX_COUNT_DISTINCT(x) FROM t"
    )
    assert translate("SELECT 1", "duckdb").integer_division is False
    assert translate("SELECT 1", "athena").integer_division is True
    assert joda_to_strftime("yyyy-MM-dd'T'HH:mm:ss.SSS") == "%Y-%m-%dT%H:%M:%S.%g"
