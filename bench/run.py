"""Entry point of ``make bench``: run the benchmarks and print ONE JSON document on stdout.

Progress goes to stderr. Every figure comes with a baseline measured in the same run, because the
machines are shared and noisy: read the ratios first, the absolute numbers second.

Usage::

    .venv/bin/python bench/run.py                  # everything (~2 minutes)
    .venv/bin/python bench/run.py --quick          # fewer repeats, smaller workloads
    .venv/bin/python bench/run.py --only credits   # one benchmark (repeat --only for more)

Benchmarks: ``cli`` (start time of ``dataflow --help``), ``ingest`` (throughput against the
simulator with unlimited credits), ``credits`` (credit utilisation under a budget, 429s),
``etl`` (transform into Iceberg against DuckDB and pandas baselines; ``bench/etl.py``),
``dq`` (a 10-rule DQDL ruleset against a hand-written DuckDB query, Great Expectations and Soda;
``bench/dq.py``), ``query`` (20 dashboard queries through ``dataflow query``'s path against raw
DuckDB over the same Parquet files, pruning ratio, p50/p95; ``bench/query.py``), ``dashboard``
(a 6-visual dashboard over 10M rows in headless Chromium: cold, warm, after a commit, a changed
control, against the same 6 statements in bare DuckDB; ``bench/dashboard.py``).
The exit status is 0 when every benchmark ran, whether or not it met its target (the targets'
pass/fail are in the JSON); 1 when a benchmark crashed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

# `python bench/run.py` puts bench/ first on sys.path: the sibling modules import directly
import bench_cli
import bench_credits
import bench_ingest
import dashboard
import dq
import etl
import query
from harness import log

BENCHMARKS: dict[str, Callable[..., dict[str, Any]]] = {
    "cli": bench_cli.run,
    "ingest": bench_ingest.run,
    "credits": bench_credits.run,
    "etl": etl.run,
    "dq": dq.run,
    "query": query.run,
    "dashboard": dashboard.run,
}


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def summary(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The headline rows: figure, value, baseline, ratio, target, pass."""
    rows: list[dict[str, Any]] = []
    cli = results.get("cli")
    if isinstance(cli, dict) and "median_ms" in cli:
        rows.append(
            {
                "figure": "dataflow --help (ms, median)",
                "value": cli["dataflow_help_ms"],
                "baseline": cli["median_ms"]["python_pass"],
                "ratio": cli["ratio_to_python_pass"],
                "target": f"< {cli['target_ms']:g} ms",
                "pass": cli["pass"],
            }
        )
    ingest = results.get("ingest")
    if isinstance(ingest, dict) and "ours" in ingest:
        ours, base = ingest["ours"], ingest["baseline_bare_httpx"]
        rows += [
            {
                "figure": "ingest responses/s",
                "value": ours["responses_per_s"],
                "baseline": base["responses_per_s"],
                "ratio": ingest["ratio_responses_per_s"],
                "target": None,
                "pass": None,
            },
            {
                "figure": "ingest client CPU ms/response",
                "value": ours["cpu_ms_per_response"],
                "baseline": base["cpu_ms_per_response"],
                "ratio": ingest["ratio_cpu_per_response"],
                "target": None,
                "pass": None,
            },
        ]
    credits = results.get("credits")
    if isinstance(credits, dict) and "credits_used" in credits:
        rows += [
            {
                "figure": "credit utilisation (credits / budget x windows elapsed)",
                "value": credits["utilisation"],
                "baseline": None,
                "ratio": None,
                "target": f">= {credits['target_utilisation']:g}",
                "pass": credits["pass_utilisation"],
            },
            {
                "figure": "429 responses under budget",
                "value": credits["responses_429"],
                "baseline": None,
                "ratio": None,
                "target": "0",
                "pass": credits["pass_429"],
            },
        ]
    rows += _etl_rows(results.get("etl"))
    rows += _dq_rows(results.get("dq"))
    rows += _query_rows(results.get("query"))
    rows += _dashboard_rows(results.get("dashboard"))
    return rows


def _etl_rows(etl_result: Any) -> list[dict[str, Any]]:
    """The ETL benchmark's headline rows (empty when it did not run or crashed)."""
    if not isinstance(etl_result, dict) or "error" in etl_result.get("ours", {"error": 1}):
        return []
    ours, duck, incremental = (
        etl_result["ours"],
        etl_result["baseline_duckdb"],
        etl_result["incremental"],
    )
    targets, passed = etl_result["targets"], etl_result["pass"]
    return [
        {
            "figure": f"transform rows/s into Iceberg ({etl_result['rows']:,} rows)",
            "value": ours["rows_per_s"],
            "baseline": duck.get("rows_per_s"),
            "ratio": etl_result["ratio_rows_per_s_to_duckdb"],
            "target": targets["ratio_to_duckdb"],
            "pass": passed["ratio_to_duckdb"],
        },
        {
            "figure": "transform peak RSS (MB)",
            "value": max(ours["peak_rss_mb"], incremental.get("peak_rss_mb", 0)),
            "baseline": duck.get("peak_rss_mb"),
            "ratio": etl_result["ratio_peak_rss_to_duckdb"],
            "target": targets["peak_rss_mb"],
            "pass": passed["peak_rss"],
        },
        {
            "figure": "incremental transform (1% new rows), share of a full run's time",
            "value": incremental.get("fraction_of_full_run"),
            "baseline": None,
            "ratio": None,
            "target": targets["incremental_fraction"],
            "pass": passed["incremental"],
        },
    ]


def _dq_rows(dq_result: Any) -> list[dict[str, Any]]:
    """The data-quality benchmark's headline rows (empty when it did not run or crashed)."""
    if not isinstance(dq_result, dict) or "wall_s" not in dq_result.get("ours", {}):
        return []
    ours, targets, passed = dq_result["ours"], dq_result["targets"], dq_result["pass"]
    rows = []
    for peer, key, target, verdict in (
        ("baseline_duckdb", "ratio_time_to_duckdb", "ratio_to_duckdb", "ratio_to_duckdb"),
        ("great_expectations", "ratio_time_to_great_expectations", "great_expectations",
         "faster_than_gx"),
        ("soda", "ratio_time_to_soda", "soda", "faster_than_soda"),
    ):  # fmt: skip
        other = dq_result[peer]
        rows.append(
            {
                "figure": f"DQ 10 rules, {dq_result['rows']:,} rows: time vs {peer} (s)",
                "value": ours["wall_s"],
                "baseline": other.get("wall_s", other.get("skipped") or other.get("error")),
                "ratio": dq_result[key],
                "target": targets[target],
                "pass": passed[verdict],
            }
        )
    return rows


def _query_rows(query_result: Any) -> list[dict[str, Any]]:
    """The query benchmark's headline rows (empty when it did not run or crashed)."""
    if not isinstance(query_result, dict) or "queries" not in query_result:
        return []
    count, totals = len(query_result["queries"]), query_result["total_ms"]
    latency = query_result["latency"]["queries"]["one_symbol_one_month_1h"]
    prune = query_result["pruning"]["all_intervals"]
    return [
        {
            "figure": f"query: {count} dashboard queries, {query_result['rows']:,} rows, sum of "
            f"medians (ms); {query_result['passed']}/{count} within target",
            "value": totals["ours"],
            "baseline": totals["raw"],
            "ratio": round(totals["ours"] / totals["raw"], 3) if totals["raw"] else None,
            "target": "each query <= 1.1x raw + 20 ms",
            "pass": query_result["pass"],
        },
        {
            "figure": "query: one symbol, one month — p50 / p95 ms (ours vs raw)",
            "value": f"{latency['ours']['p50_ms']} / {latency['ours']['p95_ms']}",
            "baseline": f"{latency['raw']['p50_ms']} / {latency['raw']['p95_ms']}",
            "ratio": None,
            "target": None,
            "pass": None,
        },
        {
            "figure": "query: pruning, bytes read by one symbol, one month / whole table",
            "value": prune["bytes"],
            "baseline": prune["total_bytes"],
            "ratio": prune["ratio"],
            "target": None,
            "pass": None,
        },
    ]


def _dashboard_rows(result: Any) -> list[dict[str, Any]]:
    """The dashboard benchmark's headline rows (empty when it did not run or crashed)."""
    if not isinstance(result, dict) or "warm" not in result:
        return []
    base = result["baseline_duckdb"]["median_ms"]
    return [
        {
            "figure": f"dashboard, 6 visuals, {result['rows']:,} rows, Chromium: warm load "
            "median (ms) vs the 6 statements in bare DuckDB",
            "value": result["warm"]["median_ms"],
            "baseline": base,
            "ratio": result["ratio_warm_to_baseline"],
            "target": result["target"],
            "pass": result["pass"],
        },
        {
            "figure": "dashboard: cold load / after a commit / symbol changed (ms)",
            "value": f"{result['cold']['ready_ms']} / {result['after_commit']['ready_ms']} / "
            f"{result['param_change']['ready_ms']}",
            "baseline": base,
            "ratio": result["ratio_cold_to_baseline"],
            "target": None,
            "pass": None,
        },
    ]


def main(argv: list[str] | None = None) -> int:
    """Run the chosen benchmarks; print the JSON document; 0 unless a benchmark crashed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(BENCHMARKS),
        help="run only this benchmark (repeatable)",
    )
    parser.add_argument("--quick", action="store_true", help="fewer repeats, smaller workloads")
    args = parser.parse_args(argv)
    chosen = args.only or list(BENCHMARKS)
    started = time.perf_counter()
    document: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(
            ["python", "bench/run.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        "quick": args.quick,
        "machine": machine(),
        "results": {},
    }
    failed = False
    for name in chosen:
        log(f"--- {name}")
        t0 = time.perf_counter()
        try:
            document["results"][name] = BENCHMARKS[name](quick=args.quick)
        except Exception as exc:
            failed = True
            traceback.print_exc(file=sys.stderr)
            document["results"][name] = {"error": f"{type(exc).__name__}: {exc}"}
        log(f"--- {name} done in {time.perf_counter() - t0:.1f} s")
    document["summary"] = summary(document["results"])
    document["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(document, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
