"""Credit utilisation under a per-minute budget, and 429s (there should be none).

A simulator process enforces ``--credits-per-minute 30 --minute-seconds 2`` (windows aligned to
the epoch, as the real API's minutes). The client runs the real ingest path (``run_pipeline``)
with ``plan: custom``, the same budget and window, batch size 1 and exactly 9 windows' worth of
one-credit requests (snapshots, daily and intraday series, indicators over the simulator's
universe); ``--quick``: 4 windows' worth.

Under a budget the client works in bursts: one budget's worth of requests, then a wait until the
credits come free. Figures:

* ``credits_used``: credits the simulator charged (``GET /simulator/stats``).
* ``responses_429``: 429 answers the simulator sent (``responses_by_status``); target 0.
* ``utilisation``: ``credits / (budget x windows elapsed)`` measured from the start of the first
  burst to the start of the last one: credits of every burst but the last, over the budget times
  that span in windows. It is the steady rate of spending, free of the partial last burst and of
  the phase of the server's windows: a client that sends a full budget every ``window`` seconds
  scores 1.0. Bursts are found in the ``received_at`` of the envelopes landed in the raw zone
  (gaps longer than a quarter window). Target >= 0.95.
* ``burst_period_s``: the mean time from one burst to the next (ideal: ``window_s``).
* ``utilisation_span``: ``credits / (budget x (1 + ingest seconds / window))``: the whole ingest,
  ends included (the last burst's duration counts as lost).
* ``per_window``: credits the server charged in each of its epoch-aligned windows, from
  ``/simulator/stats`` sampled by a thread just after each window boundary (a credit charged in the
  ~2 ms a sample takes to arrive is counted in the window before).
* ``utilisation_windows_touched``: ``credits / (budget x server windows touched)``. It depends on
  where the run starts within the server's window: the work is a whole number of budgets, so a run
  that fills every window touches exactly that many; one that drifts across a boundary touches
  one more (-10% on 9 windows, -20% on the 4 of ``--quick``).
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
from pathlib import Path
from typing import Any

import httpx
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


class WindowSampler:
    """Samples the simulator's charged credits right after every window boundary (a thread)."""

    def __init__(self, sim: SimulatorProcess) -> None:
        self.sim = sim
        self.samples: list[tuple[int, int]] = []  # (window index that just began, credits)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="window-sampler", daemon=True)

    def __enter__(self) -> WindowSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        with httpx.Client(base_url=self.sim.url, timeout=5) as http:
            while not self._stop.is_set():
                index = math.floor(time.time() / WINDOW_S) + 1
                if self._stop.wait(max(0.0, index * WINDOW_S - time.time() + 0.001)):
                    return
                used = http.get("/simulator/stats").json()["credits_used"]
                self.samples.append((index, int(used)))

    def per_window(self, final_total: int) -> list[int]:
        """Credits charged in each server window, from the first to the last that had any."""
        counts: list[int] = []
        before = 0
        for _, total in self.samples:
            counts.append(total - before)
            before = total
        counts.append(final_total - before)
        while counts and counts[0] == 0:
            counts.pop(0)
        while counts and counts[-1] == 0:
            counts.pop()
        return counts


def bursts(project: Path, run_id: str) -> list[tuple[float, int]]:
    """(start time, credits) of each burst of answers of a run, from its raw-zone envelopes."""
    from dataflow.config import load_settings
    from dataflow.storage import iter_envelopes, list_raw, open_store
    from dataflow.storage.raw import parse_time

    store = open_store(load_settings(project, env={"TWELVEDATA_API_KEY": API_KEY}))
    answers: list[tuple[float, int]] = []
    for info in list_raw(store):
        if info.run_id == run_id:
            for envelope in iter_envelopes(store, info.key):
                at = parse_time(envelope["received_at"]).timestamp()
                answers.append((at, max(1, len(envelope.get("symbols") or []))))
    answers.sort()
    found: list[tuple[float, int]] = []
    last = -math.inf
    for at, credits in answers:
        if at - last > WINDOW_S / 4:
            found.append((at, 0))
        start, total = found[-1]
        found[-1] = (start, total + credits)
        last = at
    return found


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
        sim.reset()
        started = time.perf_counter()
        with WindowSampler(sim) as sampler:
            result = run_pipeline(settings, RunOptions())
        wall = time.perf_counter() - started
        server = sim.stats()
        per_window = sampler.per_window(int(server["credits_used"]))
        found = bursts(project, result.run.run_id)
    ingest = result.results["ingest"]
    client = ingest.details["client"]
    elapsed = float(ingest.details["seconds"])
    credits = int(server["credits_used"])
    statuses = server["responses_by_status"]
    span = found[-1][0] - found[0][0] if len(found) > 1 else 0.0
    steady_credits = sum(c for _, c in found[:-1])
    utilisation = round(steady_credits / (BUDGET * span / WINDOW_S), 4) if span else None
    touched = len(per_window)
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
        "bursts": len(found),
        "burst_credits": [c for _, c in found],
        "burst_period_s": round(span / (len(found) - 1), 3) if len(found) > 1 else None,
        "utilisation": utilisation,
        "utilisation_span": round(credits / (BUDGET * (1 + elapsed / WINDOW_S)), 4),
        "per_window": per_window,
        "windows_touched": touched,
        "utilisation_windows_touched": round(credits / (BUDGET * touched), 4) if touched else None,
        "target_utilisation": TARGET_UTILISATION,
        "target_429": 0,
        "pass_utilisation": utilisation is not None and utilisation >= TARGET_UTILISATION,
        "pass_429": int(statuses.get("429", 0)) == 0,
    }
