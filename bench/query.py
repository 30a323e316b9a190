"""The query stage: 20 dashboard queries through ``dataflow query``'s path against raw DuckDB.

Input: ``--rows`` synthetic time-series bars (2M; ``--quick`` 500k; the target is stated at 10M)
shaped like ``market.time_series``: 23 symbols x 5 intervals (1min, 5min, 15min, 1h, 1day), one
bar per interval step back from 2026-11-01 00:00 UTC, columns ``symbol interval ts open high low
close volume exchange currency`` (``ts`` a ``timestamptz``). DuckDB generates them as Arrow and
pyiceberg appends them to ``market.time_series`` of a temporary project, partitioned
``interval, month(ts)`` (the built-in table's spec before it became ``interval, year(ts)``; kept
so the figures stay comparable), sorted by interval, symbol and ts.

Contenders, in this process, alternated, each query's repeats timed separately (median):

* ``ours``: :class:`~dataflow.query.QueryRunner` ``.run(sql)`` — what ``dataflow query`` does:
  an execution id, history rows (QUEUED, RUNNING, SUCCEEDED) in the metadata database, planning
  (sqlglot, one snapshot, pruned files), a view over those files, the rows fetched, and
  ``results/<id>.csv`` + metadata written.
* ``session``: :meth:`QuerySession.execute` — planning and running only (no history, no files).
* ``raw``: DuckDB on one connection with ``market.time_series`` a view over ``read_parquet`` of
  the same data files (the Iceberg table's), the same SQL (the Athena-dialect queries get their
  hand-written DuckDB equivalent), rows fetched the same way (``fetchall``).

Also: the pruning ratio (bytes of the files a one-symbol, one-month query reads against the whole
table's, from the dry-run plan), p50/p95 latency of repeated runs, and a breakdown of where our
path spends its time beyond DuckDB's (sqlglot translation, planning, view + run, history writes,
result CSV) measured by calling those pieces one by one.

Target per query: ours <= 1.1 x raw + 20 ms.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROWS = 2_000_000
ROWS_QUICK = 500_000
ROWS_TARGET = 10_000_000
REPEATS = 5
REPEATS_QUICK = 2
LATENCY_RUNS = 40
LATENCY_RUNS_QUICK = 10
TARGET_RATIO = 1.1
TARGET_SLACK_MS = 20.0
END = "2026-11-01 00:00:00+00"
SYMBOLS = (
    "AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "META", "TSLA", "JPM", "IBM", "V", "SPY", "QQQ",
    "IWM", "VXX", "EUR/USD", "GBP/USD", "USD/JPY", "USD/CHF", "AUD/USD", "USD/CAD", "BTC/USD",
    "ETH/USD", "SOL/USD",
)  # fmt: skip
INTERVALS = (("1min", 1), ("5min", 5), ("15min", 15), ("1h", 60), ("1day", 1440))
TABLE = "market.time_series"
T = TABLE
OCT = "ts >= TIMESTAMPTZ '2026-10-01 00:00:00+00' AND ts < TIMESTAMPTZ '2026-11-01 00:00:00+00'"

# (name, SQL for our path, its dialect, SQL for raw DuckDB or None for the same text)
QUERIES: list[tuple[str, str, str, str | None]] = [
    ("last_price_per_symbol",
     f"SELECT symbol, max_by(close, ts) AS last, max(ts) AS at FROM {T} "
     "WHERE interval = '1min' GROUP BY symbol ORDER BY symbol", "duckdb", None),
    ("ohlc_daily_from_1h_october",
     f"SELECT symbol, date_trunc('day', ts) AS day, min_by(open, ts) AS open, max(high) AS high, "
     f"min(low) AS low, max_by(close, ts) AS close, sum(volume) AS volume FROM {T} "
     f"WHERE interval = '1h' AND {OCT} GROUP BY 1, 2 ORDER BY 1, 2", "duckdb", None),
    ("ohlc_daily_from_1h_one_symbol",
     f"SELECT date_trunc('day', ts) AS day, min_by(open, ts) AS open, max(high) AS high, "
     f"min(low) AS low, max_by(close, ts) AS close FROM {T} "
     "WHERE interval = '1h' AND symbol = 'AAPL' GROUP BY 1 ORDER BY 1", "duckdb", None),
    ("moving_average_20h",
     "SELECT ts, close, avg(close) OVER (ORDER BY ts ROWS BETWEEN 19 PRECEDING AND CURRENT ROW) "
     f"AS ma20 FROM {T} WHERE symbol = 'AAPL' AND interval = '1h' AND {OCT} ORDER BY ts",
     "duckdb", None),
    ("moving_averages_daily_all",
     "SELECT symbol, ts, close, avg(close) OVER w7 AS ma7, avg(close) OVER w30 AS ma30 "
     f"FROM {T} WHERE interval = '1day' WINDOW "
     "w7 AS (PARTITION BY symbol ORDER BY ts ROWS BETWEEN 6 PRECEDING AND CURRENT ROW), "
     "w30 AS (PARTITION BY symbol ORDER BY ts ROWS BETWEEN 29 PRECEDING AND CURRENT ROW) "
     "ORDER BY symbol, ts DESC LIMIT 230", "duckdb", None),
    ("top_movers_last_day",
     "WITH d AS (SELECT symbol, ts, close, lag(close) OVER (PARTITION BY symbol ORDER BY ts) "
     f"AS prev FROM {T} WHERE interval = '1day' AND {OCT}) "
     "SELECT symbol, close / prev - 1 AS change FROM d WHERE ts = (SELECT max(ts) FROM d) "
     "ORDER BY abs(change) DESC, symbol LIMIT 10", "duckdb", None),
    ("volume_per_month",
     f"SELECT symbol, date_trunc('month', ts) AS month, sum(volume) AS volume FROM {T} "
     "WHERE interval = '1day' GROUP BY ALL ORDER BY ALL", "duckdb", None),
    ("one_symbol_one_month_1h",
     f"SELECT ts, open, high, low, close, volume FROM {T} "
     f"WHERE symbol = 'AAPL' AND interval = '1h' AND {OCT} ORDER BY ts", "duckdb", None),
    ("percentiles_per_symbol",
     "SELECT symbol, quantile_cont(close, 0.05) AS p05, quantile_cont(close, 0.5) AS p50, "
     f"quantile_cont(close, 0.95) AS p95 FROM {T} WHERE interval = '1h' "
     "GROUP BY symbol ORDER BY symbol", "duckdb", None),
    ("intraday_range_5min_week",
     "SELECT symbol, avg(high - low) AS avg_range, max(high) - min(low) AS week_range "
     f"FROM {T} WHERE interval = '5min' AND ts >= TIMESTAMPTZ '2026-10-25 00:00:00+00' "
     "GROUP BY symbol ORDER BY symbol", "duckdb", None),
    ("vwap_daily_1min_week",
     "SELECT symbol, date_trunc('day', ts) AS day, sum(close * volume) / sum(volume) AS vwap "
     f"FROM {T} WHERE interval = '1min' AND ts >= TIMESTAMPTZ '2026-10-25 00:00:00+00' "
     "GROUP BY 1, 2 ORDER BY 1, 2", "duckdb", None),
    ("top3_volume_days_row_number",
     "SELECT symbol, ts, volume FROM (SELECT symbol, ts, volume, row_number() OVER "
     f"(PARTITION BY symbol ORDER BY volume DESC, ts) AS rn FROM {T} WHERE interval = '1day') "
     "WHERE rn <= 3 ORDER BY symbol, rn", "duckdb", None),
    ("bars_per_interval_month_full_scan",
     f"SELECT interval, date_trunc('month', ts) AS month, count(*) AS bars FROM {T} "
     "GROUP BY ALL ORDER BY ALL", "duckdb", None),
    ("daily_return_volatility",
     "SELECT symbol, stddev_samp(r) AS vol FROM (SELECT symbol, close / lag(close) OVER "
     f"(PARTITION BY symbol ORDER BY ts) - 1 AS r FROM {T} WHERE interval = '1day') "
     "GROUP BY symbol ORDER BY symbol", "duckdb", None),
    ("hourly_buckets_from_1min_2_days",
     "SELECT date_trunc('hour', ts) AS hour, min_by(open, ts) AS open, max(high) AS high, "
     f"min(low) AS low, max_by(close, ts) AS close, sum(volume) AS volume FROM {T} "
     "WHERE symbol = 'BTC/USD' AND interval = '1min' "
     "AND ts >= TIMESTAMPTZ '2026-10-30 00:00:00+00' GROUP BY 1 ORDER BY 1", "duckdb", None),
    ("latest_bar_per_series_qualify",
     f"SELECT symbol, interval, ts, close FROM {T} QUALIFY row_number() OVER "
     "(PARTITION BY symbol, interval ORDER BY ts DESC) = 1 ORDER BY symbol, interval",
     "duckdb", None),
    ("athena_median_and_up_bars",
     "SELECT symbol, date_trunc('day', ts) AS day, approx_percentile(close, 0.5) AS med, "
     "count_if(close > open) AS up_bars FROM time_series WHERE interval = '5min' "
     "AND ts >= TIMESTAMP '2026-10-25 00:00:00 UTC' GROUP BY 1, 2 ORDER BY 1, 2", "athena",
     "SELECT symbol, date_trunc('day', ts) AS day, approx_quantile(close, 0.5) AS med, "
     f"count(*) FILTER (WHERE close > open) AS up_bars FROM {T} WHERE interval = '5min' "
     "AND ts >= TIMESTAMPTZ '2026-10-25 00:00:00+00' GROUP BY 1, 2 ORDER BY 1, 2"),
    ("athena_date_add_date_diff",
     "SELECT symbol, count(*) AS n, date_diff('hour', min(ts), max(ts)) AS hours "
     "FROM time_series WHERE interval = '15min' "
     "AND ts > date_add('day', -7, TIMESTAMP '2026-11-01 00:00:00 UTC') GROUP BY 1 ORDER BY 1",
     "athena",
     f"SELECT symbol, count(*) AS n, date_diff('hour', min(ts), max(ts)) AS hours FROM {T} "
     "WHERE interval = '15min' AND ts > TIMESTAMPTZ '2026-10-25 00:00:00+00' "
     "GROUP BY 1 ORDER BY 1"),
    ("correlation_two_symbols_self_join",
     f"SELECT corr(a.close, b.close) AS rho, count(*) AS n FROM {T} a JOIN {T} b "
     "ON a.ts = b.ts WHERE a.interval = '1h' AND b.interval = '1h' "
     "AND a.symbol = 'AAPL' AND b.symbol = 'MSFT'", "duckdb", None),
    ("incomplete_days_1h",
     "SELECT symbol, count(*) AS days FROM (SELECT symbol, date_trunc('day', ts) AS d, "
     f"count(*) AS n FROM {T} WHERE interval = '1h' GROUP BY ALL) WHERE n < 24 "
     "GROUP BY symbol ORDER BY symbol", "duckdb", None),
]  # fmt: skip

PRUNING_SQL = (
    f"SELECT count(*) AS bars, avg(close) AS avg_close FROM {T} WHERE symbol = 'AAPL' AND {OCT}"
)
PRUNING_SQL_1MIN = PRUNING_SQL + " AND interval = '1min'"
LATENCY_QUERY = "one_symbol_one_month_1h"


# --- input ---------------------------------------------------------------------------------------


def generate(rows: int) -> Any:
    """About ``rows`` bars as an Arrow table (whole days per series), sorted for the writer."""
    import duckdb

    per_day = sum(1440 // minutes for _, minutes in INTERVALS) * len(SYMBOLS)
    days = max(1, rows // per_day)
    steps = " UNION ALL ".join(
        f"SELECT '{name}' AS interval, {minutes} AS m, {days * 1440 // minutes} AS n"
        for name, minutes in INTERVALS
    )
    symbols = "[" + ", ".join(f"'{s}'" for s in SYMBOLS) + "]"
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    relation = con.sql(
        f"""
        WITH iv AS ({steps}),
        sy AS (SELECT unnest({symbols}) AS symbol, generate_subscripts({symbols}, 1) AS k),
        g AS (SELECT sy.symbol, sy.k, iv.interval, iv.m, r.i FROM sy, iv, range(iv.n) r(i)),
        p AS (
            SELECT *, TIMESTAMPTZ '{END}' - to_minutes(CAST((i + 1) * m AS BIGINT)) AS ts,
                (10 + k * 7) * (1 + 0.2 * sin(i * m / 20000.0 + k)
                    + (hash(k, i, m) % 1000) / 100000.0) AS c,
                (10 + k * 7) * (1 + 0.2 * sin((i + 1) * m / 20000.0 + k)) AS o
            FROM g
        )
        SELECT symbol, interval, ts, o AS open, greatest(o, c) * 1.001 AS high,
            least(o, c) * 0.999 AS low, c AS close, CAST(hash(i, k) % 1000000 AS BIGINT) AS volume,
            'NASDAQ' AS exchange, 'USD' AS currency
        FROM p ORDER BY interval, symbol, ts
        """
    )
    found = relation.arrow()
    table = found.read_all() if hasattr(found, "read_all") else found
    con.close()
    return table


def build_project(root: Path, rows: int) -> tuple[Any, list[str], int]:
    """A project at ``root`` with ``market.time_series`` holding the bars; its data files."""
    from dataflow.catalog.iceberg import create_table, open_catalog
    from dataflow.config import load_settings

    settings = load_settings(root, env={})
    bars = generate(rows)
    table = create_table(
        open_catalog(settings),
        "market",
        "time_series",
        bars.schema,
        partition="interval, month(ts)",
    )
    table.append(bars)
    files = [task.file.file_path.removeprefix("file://") for task in table.scan().plan_files()]
    return settings, sorted(files), bars.num_rows


# --- contenders ----------------------------------------------------------------------------------


def raw_connection(files: list[str]) -> Any:
    """DuckDB with ``market.time_series`` as a view over the same Parquet files."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    listing = "[" + ", ".join(f"'{path}'" for path in files) + "]"
    con.execute("CREATE SCHEMA market")
    con.execute(
        "CREATE VIEW market.time_series AS SELECT * FROM "
        f"read_parquet({listing}, hive_partitioning = false)"
    )
    return con


def _timed(action: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    value = action()
    return (time.perf_counter() - t0) * 1000, value


def _norm(rows: list[Any]) -> list[tuple[Any, ...]]:
    def cell(value: Any) -> Any:
        return float(f"{value:.6g}") if isinstance(value, float) else value

    return [tuple(cell(v) for v in row) for row in rows]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def time_queries(settings: Any, files: list[str], repeats: int) -> list[dict[str, Any]]:
    """Each query: raw, session and runner, alternated, ``repeats`` times after one warm-up."""
    from harness import log

    from dataflow.query import QueryRunner, QuerySession

    raw = raw_connection(files)
    figures: list[dict[str, Any]] = []
    with QueryRunner(settings) as runner, QuerySession(settings, runner.db) as session:
        for name, sql, dialect, raw_sql in QUERIES:
            text = raw_sql or sql
            runs: dict[str, list[float]] = {"raw": [], "session": [], "ours": []}
            answers: dict[str, Any] = {}
            contenders: dict[str, Callable[[], Any]] = {
                "raw": lambda text=text: raw.sql(text).fetchall(),
                "session": lambda sql=sql, d=dialect: session.execute(sql, dialect=d).rows,
                "ours": lambda sql=sql, d=dialect: runner.run(sql, dialect=d).result.rows,
            }
            for index in range(repeats + 1):
                for who, action in contenders.items():
                    ms, rows = _timed(action)
                    if index == 0:
                        answers[who] = rows  # the warm-up: caches, first plan
                    else:
                        runs[who].append(ms)
            med = {who: statistics.median(values) for who, values in runs.items()}
            limit = TARGET_RATIO * med["raw"] + TARGET_SLACK_MS
            plan = runner.dry_run(sql, dialect=dialect)
            figure = {
                "query": name,
                "dialect": dialect,
                "rows": len(answers["ours"]),
                "same_rows": _norm(answers["ours"]) == _norm(answers["raw"])
                and _norm(answers["session"]) == _norm(answers["raw"]),
                "raw_ms": round(med["raw"], 1),
                "session_ms": round(med["session"], 1),
                "ours_ms": round(med["ours"], 1),
                "ratio": round(med["ours"] / med["raw"], 3) if med["raw"] else None,
                "ours_minus_raw_ms": round(med["ours"] - med["raw"], 1),
                "ours_p95_ms": round(_pct(runs["ours"], 0.95), 1),
                "limit_ms": round(limit, 1),
                "pass": med["ours"] <= limit,
                "session_pass": med["session"] <= limit,
                "files": plan.files_scanned,
                "bytes_scanned": plan.bytes_scanned,
            }
            log(
                f"query: {name}: raw {figure['raw_ms']} ms, session {figure['session_ms']} ms, "
                f"ours {figure['ours_ms']} ms ({'pass' if figure['pass'] else 'MISS'})"
            )
            figures.append(figure)
    raw.close()
    return figures


def breakdown(settings: Any, repeats: int) -> list[dict[str, Any]]:
    """Where our path's time goes, per query: the runner's pieces called one by one (median)."""
    from dataflow.query import QueryRunner
    from dataflow.query.dialects import translate
    from dataflow.query.history import QueryExecution, QueryState, record
    from dataflow.query.output import write_results

    found: list[dict[str, Any]] = []
    with QueryRunner(settings) as runner:
        session, prefix = runner.session, runner.config.results_prefix
        for name, sql, dialect, _ in QUERIES:
            parts: dict[str, list[float]] = {
                "translate": [], "plan": [], "view_and_run": [], "history_3_writes": [],
                "result_csv": [],
            }  # fmt: skip
            for _ in range(repeats + 1):
                parts["translate"].append(_timed(lambda s=sql, d=dialect: translate(s, d))[0])
                ms, plan = _timed(lambda s=sql, d=dialect: session.plan(s, dialect=d))
                parts["plan"].append(ms)
                ms, result = _timed(lambda plan=plan: session.run(plan))
                parts["view_and_run"].append(ms)
                execution = QueryExecution.new(sql, dialect=dialect, workgroup="primary")

                def history(execution: QueryExecution = execution) -> None:
                    for state in (QueryState.QUEUED, QueryState.RUNNING, QueryState.SUCCEEDED):
                        execution.state = state
                        record(runner.db, execution)

                parts["history_3_writes"].append(_timed(history)[0])
                key = execution.query_id
                parts["result_csv"].append(
                    _timed(lambda r=result, k=key: write_results(runner.store, prefix, k, r))[0]
                )
            found.append(
                {"query": name}
                | {part: round(statistics.median(v[1:]), 2) for part, v in parts.items()}
            )
    return found


def pruning(settings: Any) -> dict[str, Any]:
    """Bytes a one-symbol, one-month query reads against the whole table (dry-run plans)."""
    from dataflow.query import QueryRunner

    with QueryRunner(settings) as runner:
        figures: dict[str, Any] = {}
        for label, sql in (("all_intervals", PRUNING_SQL), ("one_interval_1min", PRUNING_SQL_1MIN)):
            plan = runner.dry_run(sql)
            (scan,) = plan.scans
            figures[label] = {
                "sql": sql,
                "files": len(scan.files),
                "total_files": scan.total_files,
                "bytes": scan.bytes_scanned,
                "total_bytes": scan.total_bytes,
                "ratio": round(scan.bytes_scanned / scan.total_bytes, 4)
                if scan.total_bytes
                else None,
                "partitions": scan.partitions,
            }
    return figures


def latency(settings: Any, files: list[str], runs: int) -> dict[str, Any]:
    """p50/p95 of one dashboard query run ``runs`` times by each contender, alternated."""
    from dataflow.query import QueryRunner, QuerySession

    sql = next(q[1] for q in QUERIES if q[0] == LATENCY_QUERY)
    full = next(q[1] for q in QUERIES if q[0] == "bars_per_interval_month_full_scan")
    raw = raw_connection(files)
    samples: dict[str, dict[str, list[float]]] = {}
    with QueryRunner(settings) as runner, QuerySession(settings, runner.db) as session:
        for label, text in ((LATENCY_QUERY, sql), ("bars_per_interval_month_full_scan", full)):
            per: dict[str, list[float]] = {"raw": [], "session": [], "ours": []}
            for index in range(runs + 1):
                for who, action in (
                    ("raw", lambda t=text: raw.sql(t).fetchall()),
                    ("session", lambda t=text: session.execute(t).rows),
                    ("ours", lambda t=text: runner.run(t).result.rows),
                ):
                    ms = _timed(action)[0]
                    if index:
                        per[who].append(ms)
            samples[label] = per
    raw.close()
    return {
        "runs": runs,
        "queries": {
            label: {
                who: {"p50_ms": round(_pct(v, 0.5), 1), "p95_ms": round(_pct(v, 0.95), 1)}
                for who, v in per.items()
            }
            for label, per in samples.items()
        },
    }


# --- the benchmark -------------------------------------------------------------------------------


def run(*, quick: bool = False, rows: int | None = None) -> dict[str, Any]:
    """Build the table, time the queries; returns the figures with the targets.

    Example:
        >>> run(rows=100_000)["passed"]  # doctest: +SKIP
        20
    """
    from harness import log

    rows = rows or (ROWS_QUICK if quick else ROWS)
    repeats = REPEATS_QUICK if quick else REPEATS
    root = Path(tempfile.mkdtemp(prefix="dataflow-bench-query-"))
    try:
        log(f"query: generating {rows:,} bars and appending them to Iceberg")
        build_s, (settings, files, written) = _timed(lambda: build_project(root, rows))
        total_bytes = sum(Path(f).stat().st_size for f in files)
        log(f"query: {written:,} rows in {len(files)} files in {build_s / 1000:.1f} s")
        queries = time_queries(settings, files, repeats)
        log("query: pruning")
        prune = pruning(settings)
        log("query: latency")
        lat = latency(settings, files, LATENCY_RUNS_QUICK if quick else LATENCY_RUNS)
        log("query: breakdown of our path")
        parts = breakdown(settings, 1 if quick else 3)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    passed = sum(q["pass"] for q in queries)
    return {
        "rows": written,
        "data_files": len(files),
        "data_bytes": total_bytes,
        "build_s": round(build_s / 1000, 1),
        "repeats": repeats,
        "queries": queries,
        "passed": passed,
        "session_passed": sum(q["session_pass"] for q in queries),
        "same_rows": all(q["same_rows"] for q in queries),
        "total_ms": {
            who: round(sum(q[f"{who}_ms"] for q in queries), 1)
            for who in ("raw", "session", "ours")
        },
        "pruning": prune,
        "latency": lat,
        "breakdown_ms": parts,
        "target": f"ours <= {TARGET_RATIO:g} x raw + {TARGET_SLACK_MS:g} ms per query, "
        f"at {ROWS_TARGET:,} rows (this run: {written:,})",
        "pass": passed == len(queries),
    }


def main(argv: list[str] | None = None) -> int:
    """``python bench/query.py [--rows N] [--quick]``: print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, help=f"bars to generate (default {ROWS:,})")
    parser.add_argument(
        "--quick", action="store_true", help=f"{ROWS_QUICK:,} bars, {REPEATS_QUICK} repeats"
    )
    args = parser.parse_args(argv)
    print(json.dumps(run(quick=args.quick, rows=args.rows), indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
