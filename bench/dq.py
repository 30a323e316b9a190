"""Data-quality checks: our DQDL evaluator against a hand-written DuckDB query, GX and Soda.

Input: ``--rows`` synthetic time-series bars (1M; ``--quick`` 200k; the target is stated at 5M)
written by DuckDB to one zstd Parquet file: a unique ``id``, ``symbol`` (the simulator's 23
instruments), ``interval`` (5 values), ``ts`` (one bar a minute per series, the newest now),
``open high low close`` (DOUBLE, ``high >= low``) and ``volume`` (BIGINT). Every check passes on
it, so every contender does the same, complete work.

The 10 checks (:data:`RULES`): row count, completeness, uniqueness, two in-set, two range, a
regex, freshness and custom SQL. Contenders, each in a fresh child process that times its own
work after its imports (reading the Parquet file included) and reports whether every check
passed:

* ``ours``: ``check_ruleset(RULES, data=file)`` — parse, compile to one aggregate scan (the
  uniqueness rule is a window count, Glue's exact Uniqueness metric) plus the CustomSql query.
* ``duckdb``: ONE hand-written aggregate query over ``read_parquet`` computing the same metrics
  (uniqueness as ``count(DISTINCT id) = count(id)``, the shortcut a person writes).
* ``great_expectations``: GX Core on pandas (``pd.read_parquet``, an ephemeral context, one suite
  of 10 expectations; custom SQL becomes ``expect_column_pair_values_a_to_be_greater_than_b``:
  pandas has no SQL). Skipped, with the reason, when not installed.
* ``soda``: Soda Core on DuckDB (a view over ``read_parquet``, 10 SodaCL checks). soda-core-duckdb
  pins ``duckdb<1.1`` while Dataflow needs DuckDB 2, so it is run with the interpreter named by
  ``--soda-python`` / ``$DATAFLOW_BENCH_SODA_PYTHON`` (a separate venv) when given, else with ours
  if it has ``soda``; skipped, with the reason, otherwise.

``ours`` and ``duckdb`` run ``repeats`` times alternated (median); the peers once (they are the
slow ones). Targets: ours <= 1.3x the DuckDB query's time, >= 4x faster than GX, faster than Soda.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Only the standard library at the top: the Soda child may run in another interpreter.
HERE = Path(__file__).resolve().parent
ROWS = 1_000_000
ROWS_QUICK = 200_000
ROWS_TARGET = 5_000_000
REPEATS = 3
TARGET_DUCKDB = 1.3
TARGET_GX = 4.0
TARGET_SODA = 1.0
SYMBOLS = (
    "AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "META", "TSLA", "JPM", "IBM", "V", "SPY", "QQQ",
    "IWM", "VXX", "EUR/USD", "GBP/USD", "USD/JPY", "USD/CHF", "AUD/USD", "USD/CAD", "BTC/USD",
    "ETH/USD", "SOL/USD",
)  # fmt: skip
INTERVALS = ("1min", "5min", "15min", "1h", "1day")
PATTERN = "[A-Z][A-Z0-9.]{0,9}(/[A-Z]{3})?"
FRESH_DAYS = 60
CLOSE_MAX = 100000
VOLUME_MAX = 10_000_000_000


def _dqdl_list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(f'"{v}"' for v in values) + "]"


RULES = f"""Rules = [
    RowCount > 0,
    IsComplete "close",
    IsUnique "id",
    ColumnValues "symbol" in {_dqdl_list(SYMBOLS)},
    ColumnValues "interval" in {_dqdl_list(INTERVALS)},
    ColumnValues "close" between 0 and {CLOSE_MAX},
    ColumnValues "volume" between -1 and {VOLUME_MAX},
    ColumnValues "symbol" matches "{PATTERN}",
    DataFreshness "ts" <= {FRESH_DAYS} days,
    CustomSql "select count(*) from primary where high < low" = 0
]
"""


def _sql_list(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


BASELINE_SQL = f"""
SELECT
    count(*) AS row_count,
    count(close)::DOUBLE / count(*) AS close_completeness,
    count(DISTINCT id) = count(id) AS id_unique,
    count(*) FILTER (WHERE symbol IN {_sql_list(SYMBOLS)})::DOUBLE / count(*) AS symbol_in_set,
    count(*) FILTER (WHERE interval IN {_sql_list(INTERVALS)})::DOUBLE / count(*) AS in_set,
    count(*) FILTER (WHERE close > 0 AND close < {CLOSE_MAX})::DOUBLE / count(*) AS close_range,
    count(*) FILTER (WHERE volume > -1 AND volume < {VOLUME_MAX})::DOUBLE / count(*) AS vol_range,
    count(*) FILTER (WHERE regexp_full_match(symbol, '{PATTERN}'))::DOUBLE / count(*) AS pattern,
    count(*) FILTER (WHERE ts >= now()::TIMESTAMP - INTERVAL {FRESH_DAYS} DAY)::DOUBLE / count(*)
        AS freshness,
    count(*) FILTER (WHERE high < low) AS bad_ohlc
FROM read_parquet(?)
"""

SODA_CHECKS = f"""checks for bars:
  - row_count > 0
  - missing_count(close) = 0
  - duplicate_count(id) = 0
  - invalid_count(symbol) = 0:
      valid values: {list(SYMBOLS)}
  - invalid_count(interval) = 0:
      valid values: {list(INTERVALS)}
  - invalid_count(close) = 0:
      valid min: 0
      valid max: {CLOSE_MAX}
  - invalid_count(volume) = 0:
      valid min: 0
      valid max: {VOLUME_MAX}
  - invalid_count(symbol) = 0:
      valid regex: '^{PATTERN}$'
  - stale_rows = 0:
      stale_rows query: >-
        SELECT count(*) FROM bars WHERE ts < now()::TIMESTAMP - INTERVAL {FRESH_DAYS} DAY
  - bad_ohlc = 0:
      bad_ohlc query: SELECT count(*) FROM bars WHERE high < low
"""


# --- input ---------------------------------------------------------------------------------------


def generate(path: Path, rows: int) -> None:
    """Write ``rows`` synthetic bars to one Parquet file with DuckDB (deterministic but ``ts``)."""
    import duckdb

    series = len(SYMBOLS) * len(INTERVALS)
    symbols = "[" + ", ".join(f"'{s}'" for s in SYMBOLS) + "]"
    intervals = "[" + ", ".join(f"'{s}'" for s in INTERVALS) + "]"
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        f"""
        COPY (
            WITH base AS (
                SELECT i,
                    1 + ((i * 2654435761) % 1000000) / 100.0 AS o,
                    1 + ((i * 2654435761) % 1000000) / 100.0
                        * (1 + ((i * 7919) % 200 - 100) / 10000.0) AS c
                FROM range({rows}) t(i)
            )
            SELECT i AS id,
                {symbols}[i % {len(SYMBOLS)} + 1] AS symbol,
                {intervals}[(i // {len(SYMBOLS)}) % {len(INTERVALS)} + 1] AS interval,
                date_trunc('minute', now()::TIMESTAMP) - to_minutes(i // {series}) AS ts,
                o AS open, greatest(o, c) * 1.001 AS high, least(o, c) * 0.999 AS low,
                c AS close, ((i * 31337) % 10000000)::BIGINT AS volume
            FROM base
        ) TO '{path}' (FORMAT parquet, COMPRESSION zstd)
        """
    )


# --- contenders, each in its own child process ---------------------------------------------------


def _child_ours(data: Path, workdir: Path) -> dict[str, Any]:
    from dataflow.quality import check_ruleset

    rules = workdir / "bars.dqdl"
    rules.write_text(RULES)
    t0 = time.perf_counter()
    outcome = check_ruleset(rules, data=data)
    wall = time.perf_counter() - t0
    results = [r.result for r in outcome.result.rule_results]
    return {"wall_s": wall, "checks": len(results), "passed": results.count("PASS")}


def _child_duckdb(data: Path, workdir: Path) -> dict[str, Any]:  # noqa: ARG001 - same signature
    import duckdb

    t0 = time.perf_counter()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    row = con.execute(BASELINE_SQL, [str(data)]).fetchone()
    wall = time.perf_counter() - t0
    assert row is not None
    checks = [row[0] > 0, row[1] == 1.0, bool(row[2]), *(v == 1.0 for v in row[3:9]), row[9] == 0]
    return {"wall_s": wall, "checks": len(checks), "passed": sum(checks)}


def _child_gx(data: Path, workdir: Path) -> dict[str, Any]:  # noqa: ARG001 - same signature
    import datetime as dt
    import logging

    import great_expectations as gx
    import great_expectations.expectations as gxe
    import pandas as pd

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    t0 = time.perf_counter()
    frame = pd.read_parquet(data)
    context = gx.get_context(mode="ephemeral")
    asset = context.data_sources.add_pandas("bench").add_dataframe_asset("bars")
    batch = asset.add_batch_definition_whole_dataframe("all").get_batch(
        batch_parameters={"dataframe": frame}
    )
    cutoff = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(days=FRESH_DAYS)
    suite = gx.ExpectationSuite(name="bars")
    for expectation in (
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnValuesToNotBeNull(column="close"),
        gxe.ExpectColumnValuesToBeUnique(column="id"),
        gxe.ExpectColumnValuesToBeInSet(column="symbol", value_set=list(SYMBOLS)),
        gxe.ExpectColumnValuesToBeInSet(column="interval", value_set=list(INTERVALS)),
        gxe.ExpectColumnValuesToBeBetween(column="close", min_value=0, max_value=CLOSE_MAX),
        gxe.ExpectColumnValuesToBeBetween(column="volume", min_value=0, max_value=VOLUME_MAX),
        gxe.ExpectColumnValuesToMatchRegex(column="symbol", regex=f"^{PATTERN}$"),
        gxe.ExpectColumnMinToBeBetween(column="ts", min_value=cutoff),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="high", column_B="low", or_equal=True),
    ):
        suite.add_expectation(expectation)
    result = batch.validate(suite)
    wall = time.perf_counter() - t0
    outcomes = [r.success for r in result.results]
    return {"wall_s": wall, "checks": len(outcomes), "passed": sum(bool(o) for o in outcomes)}


def _child_soda(data: Path, workdir: Path) -> dict[str, Any]:  # noqa: ARG001 - same signature
    import logging

    import duckdb
    from soda.scan import Scan  # type: ignore[import-not-found, unused-ignore]

    logging.getLogger("soda").setLevel(logging.ERROR)
    t0 = time.perf_counter()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"CREATE VIEW bars AS SELECT * FROM read_parquet('{data}')")
    scan = Scan()
    scan.set_data_source_name("bench")
    scan.add_duckdb_connection(duckdb_connection=con, data_source_name="bench")
    scan.add_sodacl_yaml_str(SODA_CHECKS)
    scan.execute()
    wall = time.perf_counter() - t0
    checks = scan.get_scan_results()["checks"]
    passed = sum(c.get("outcome") == "pass" for c in checks)
    return {"wall_s": wall, "checks": len(checks), "passed": passed, "duckdb": duckdb.__version__}


CHILDREN = {
    "ours": _child_ours,
    "duckdb": _child_duckdb,
    "great_expectations": _child_gx,
    "soda": _child_soda,
}


def _run_child(name: str, data: Path, workdir: Path, python: str | None = None) -> dict[str, Any]:
    """Run a contender in a fresh interpreter; its figures, or ``{"error": ...}``."""
    cmd = [python or sys.executable, str(Path(__file__).resolve()), "--child", name]
    cmd += ["--data", str(data), "--workdir", str(workdir)]
    done = subprocess.run(cmd, cwd=HERE.parent, capture_output=True, text=True, check=False)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = done.stderr.strip().splitlines()[-1:] or [""]
        return {"error": f"exit status {done.returncode}: {tail[0][:300]}"}
    figures: dict[str, Any] = json.loads(lines[-1])
    figures["wall_s"] = round(figures["wall_s"], 3)
    return figures


def _has_module(python: str, module: str) -> bool:
    probe = [
        python,
        "-c",
        f"import importlib.util, sys; sys.exit(not importlib.util.find_spec({module!r}))",
    ]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


def _soda_python(given: str | None) -> tuple[str | None, str | None]:
    """The interpreter to run Soda with, or None and why it is skipped."""
    python = given or os.environ.get("DATAFLOW_BENCH_SODA_PYTHON")
    if python:
        if _has_module(python, "soda"):
            return python, None
        return None, f"{python} has no soda-core installed"
    if _has_module(sys.executable, "soda"):
        return sys.executable, None
    return None, (
        "soda-core-duckdb is not installed here: it pins duckdb<1.1 and Dataflow needs DuckDB 2; "
        "install it in its own venv and set DATAFLOW_BENCH_SODA_PYTHON (or --soda-python)"
    )


# --- the benchmark -------------------------------------------------------------------------------


def _median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    good = [r for r in runs if "error" not in r]
    if not good:
        return runs[0]
    walls = [r["wall_s"] for r in good]
    return {
        **good[-1],
        "wall_s": round(statistics.median(walls), 3),
        "runs_s": [round(w, 3) for w in walls],
    }


def run(
    *, quick: bool = False, rows: int | None = None, soda_python: str | None = None
) -> dict[str, Any]:
    """Generate the input, time the contenders; returns the figures with ratios and targets.

    Example:
        >>> run(rows=50_000)["pass"]  # doctest: +SKIP
        {'ratio_to_duckdb': True, 'faster_than_gx': True, 'faster_than_soda': True}
    """
    from harness import log, ratio

    rows = rows or (ROWS_QUICK if quick else ROWS)
    repeats = 1 if quick else REPEATS
    with tempfile.TemporaryDirectory(prefix="dataflow-bench-dq-") as tmp:
        workdir = Path(tmp)
        data = workdir / "bars.parquet"
        log(f"dq: generating {rows:,} bars with DuckDB")
        t0 = time.perf_counter()
        generate(data, rows)
        generate_s = round(time.perf_counter() - t0, 1)
        results: dict[str, Any] = {}
        runs: dict[str, list[dict[str, Any]]] = {"ours": [], "duckdb": []}
        for index in range(repeats):
            for name in ("duckdb", "ours"):
                log(f"dq: {name} ({index + 1}/{repeats})")
                runs[name].append(_run_child(name, data, workdir))
        results = {name: _median_of(found) for name, found in runs.items()}
        if _has_module(sys.executable, "great_expectations"):
            log("dq: great_expectations (pandas)")
            results["great_expectations"] = _run_child("great_expectations", data, workdir)
        else:
            results["great_expectations"] = {
                "skipped": "great_expectations is not installed (pip install great_expectations "
                "pandas)"
            }
        python, reason = _soda_python(soda_python)
        if python is not None:
            log(f"dq: soda (duckdb, {python})")
            results["soda"] = _run_child("soda", data, workdir, python)
        else:
            log(f"dq: soda skipped: {reason}")
            results["soda"] = {"skipped": reason}
        size = data.stat().st_size
    ours = results["ours"]

    def speed(other: str) -> float | None:
        peer = results[other]
        if "wall_s" not in peer or "wall_s" not in ours:
            return None
        return ratio(ours["wall_s"], peer["wall_s"])

    to_duck, to_gx, to_soda = speed("duckdb"), speed("great_expectations"), speed("soda")
    return {
        "rows": rows,
        "parquet_bytes": size,
        "generate_s": generate_s,
        "rules": sum(line.startswith("    ") for line in RULES.splitlines()),
        "ours": ours,
        "baseline_duckdb": results["duckdb"],
        "great_expectations": results["great_expectations"],
        "soda": results["soda"],
        "ratio_time_to_duckdb": to_duck,
        "ratio_time_to_great_expectations": to_gx,
        "ratio_time_to_soda": to_soda,
        "targets": {
            "ratio_to_duckdb": f"<= {TARGET_DUCKDB:g} at {ROWS_TARGET:,} rows (this run: {rows:,})",
            "great_expectations": f">= {TARGET_GX:g}x faster (time ratio <= {1 / TARGET_GX:g})",
            "soda": "faster (time ratio < 1)",
        },
        "pass": {
            "ratio_to_duckdb": to_duck is not None and to_duck <= TARGET_DUCKDB,
            "faster_than_gx": None if to_gx is None else to_gx <= 1 / TARGET_GX,
            "faster_than_soda": None if to_soda is None else to_soda < TARGET_SODA,
        },
    }


def main(argv: list[str] | None = None) -> int:
    """``python bench/dq.py [--rows N] [--quick] [--soda-python PY]``: print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, help=f"bars to generate (default {ROWS:,})")
    parser.add_argument("--quick", action="store_true", help=f"{ROWS_QUICK:,} bars, one run each")
    parser.add_argument("--soda-python", help="interpreter with soda-core-duckdb installed")
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(CHILDREN[args.child](args.data, args.workdir)))
        return 0
    figures = run(quick=args.quick, rows=args.rows, soda_python=args.soda_python)
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
