"""Credit utilisation under a per-minute budget, and 429s (there should be none).

A simulator process enforces ``--credits-per-minute 30 --minute-seconds 2`` (windows aligned to
the epoch, as the real API's minutes). The client runs the real ingest path (``run_pipeline``)
with ``plan: custom``, the same budget and window, batch size 1 and enough one-credit requests
for ~9 windows (snapshots, daily and hourly series, indicators over the simulator's universe).

Figures:

* ``credits_used``: credits the simulator charged (``GET /simulator/stats``).
* ``responses_429``: 429 answers the simulator sent (``responses_by_status``); target 0.
* ``per_window``: credits charged in each server window, read from the ``api-credits-used``
  header of the responses landed in the raw zone (the highest value seen in a window is what the
  server had charged in it; responses are assigned to windows by their ``received_at``).
* ``utilisation_full_windows``: mean credits of the server windows strictly between the first and
  the last one, over the budget — the steady state, free of the partial windows at both ends.
  This is the figure held against the >= 95% target.
* ``utilisation_windows_touched``: ``credits_used / (budget x server windows touched)``, ends
  included (the last window is partly empty by construction unless the work divides evenly).
* ``utilisation_elapsed``: ``credits_used / (budget x elapsed / window)`` over the ingest stage's
  wall time (from the first request to the last answer).
"""

from __future__ import annotations

import datetime as dt
import math
import time
from pathlib import Path
from typing import Any

import yaml
from harness import API_KEY, SimulatorProcess, log, temp_project, universe

BUDGET = 30
WINDOW_S = 2.0
CONCURRENCY = 4
TARGET_UTILISATION = 0.95


def project_config(base_url: str, *, quick: bool) -> dict[str, Any]:
    """One-credit requests only (batch size 1): exactly 9 windows' worth, 4 with ``quick``.

    The total is a multiple of the budget so that a perfect client fills every window it
    touches, the last one included.
    """
    groups = universe()  # 14 stocks and ETFs, 6 forex pairs, 3 cryptocurrencies: 23 symbols
    pairs = groups["forex"] + groups["crypto"]
    daily = {"intervals": ["1day"]}
    endpoints: dict[str, Any] = {
        "quote": {},
        "price": {},
        "eod": {},
        "time_series": {"intervals": ["1day"] if quick else ["1day", "4h", "1h"]},
        "rsi": {**daily, "params": {"time_period": 14}},
    }
    if quick:  # 5 x 23 + 5 = 120 = 4 windows
        endpoints["exchange_rate"] = {"symbols": pairs[:5]}
    else:  # 11 x 23 + 9 + 8 = 270 = 9 windows
        endpoints |= {
            "macd": daily,
            "sma": {**daily, "params": {"time_period": 20}},
            "ema": {**daily, "params": {"time_period": 20}},
            "bbands": {**daily, "params": {"time_period": 20, "sd": 2}},
            "exchange_rate": {"symbols": pairs},
            "currency_conversion": {"symbols": pairs[:8], "params": {"amount": 100}},
        }
    return {
        "name": "bench-credits",
        "warehouse": "warehouse",
        "sources": {
            "twelvedata": {
                "base_url": base_url,
                "plan": "custom",
                "credits_per_minute": BUDGET,
                "minute_seconds": WINDOW_S,
                "symbols": groups,
                "batch_size": 1,
                "max_concurrency": CONCURRENCY,
                "history_start": (dt.date.today() - dt.timedelta(days=365)).isoformat(),
                "intraday_history_days": 30,
                "endpoints": endpoints,
            }
        },
    }


def _per_window(project: Path, run_id: str) -> dict[int, int]:
    """Server window index -> credits charged in it, from the ``api-credits-used`` headers."""
    from dataflow.config import load_settings
    from dataflow.storage import iter_envelopes, list_raw, open_store
    from dataflow.storage.raw import parse_time

    store = open_store(load_settings(project, env={"TWELVEDATA_API_KEY": API_KEY}))
    windows: dict[int, int] = {}
    for info in list_raw(store):
        if info.run_id != run_id:
            continue
        for envelope in iter_envelopes(store, info.key):
            used = envelope.get("headers", {}).get("api-credits-used")
            if used is None:
                continue
            index = math.floor(parse_time(envelope["received_at"]).timestamp() / WINDOW_S)
            windows[index] = max(windows.get(index, 0), int(used))
    return windows


def run(*, quick: bool = False) -> dict[str, Any]:
    """Run the credit-utilisation benchmark; returns its figures (see the module docstring)."""
    from dataflow.config import load_settings
    from dataflow.pipeline import RunOptions, run_pipeline

    flags = ["--credits-per-minute", str(BUDGET), "--minute-seconds", str(WINDOW_S)]
    with SimulatorProcess(extra=flags) as sim, temp_project({}) as project:
        (project / "dataflow.yaml").write_text(
            yaml.safe_dump(project_config(sim.url, quick=quick), sort_keys=False)
        )
        settings = load_settings(project, env={"TWELVEDATA_API_KEY": API_KEY})
        log(f"credits: ingest under {BUDGET} credits per {WINDOW_S:g} s window")
        started = time.perf_counter()
        result = run_pipeline(settings, RunOptions())
        wall = time.perf_counter() - started
        server = sim.stats()
        windows = _per_window(project, result.run.run_id)
    ingest = result.results["ingest"]
    client = ingest.details["client"]
    elapsed = float(ingest.details["seconds"])
    credits = int(server["credits_used"])
    statuses = server["responses_by_status"]
    first, last = (min(windows), max(windows)) if windows else (0, -1)
    series = [windows.get(i, 0) for i in range(first, last + 1)]
    full = series[1:-1]
    touched = len(series)
    utilisation_full = round(sum(full) / len(full) / BUDGET, 4) if full else None
    return {
        "budget_credits_per_window": BUDGET,
        "window_s": WINDOW_S,
        "concurrency": CONCURRENCY,
        "status": result.status,
        "requests": int(server["requests"]),
        "credits_used": credits,
        "credits_used_client": int(client["credits_used"]),
        "responses_by_status": statuses,
        "responses_429": int(statuses.get("429", 0)),
        "client_rate_limited": int(client["rate_limited"]),
        "limiter": client["limiter"],
        "ingest_s": round(elapsed, 3),
        "run_wall_s": round(wall, 3),
        "windows_touched": touched,
        "per_window": series,
        "per_window_sum": sum(series),
        "full_windows": len(full),
        "utilisation_full_windows": utilisation_full,
        "utilisation_windows_touched": round(credits / (BUDGET * touched), 4) if touched else None,
        "utilisation_elapsed": round(credits / (BUDGET * elapsed / WINDOW_S), 4),
        "target_utilisation": TARGET_UTILISATION,
        "target_429": 0,
        "pass_utilisation": utilisation_full is not None and utilisation_full >= TARGET_UTILISATION,
        "pass_429": int(statuses.get("429", 0)) == 0,
    }
