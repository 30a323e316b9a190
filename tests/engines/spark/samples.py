"""The real Twelve Data samples as a raw zone, and table comparison helpers (both engines)."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

from dataflow.storage import ObjectStore, import_responses

SAMPLES = Path(__file__).resolve().parents[2] / "fixtures" / "twelvedata-samples"

SAMPLE_FILES: list[tuple[str, str, str | None, dict[str, str]]] = [
    ("currency_conversion__eur_usd_amount_100.json", "currency_conversion", None, {}),
    ("eod__vxx_cboe.json", "eod", None, {}),
    ("error__400_invalid_interval.json", "time_series", "IBM", {}),
    ("exchange_rate__usd_jpy.json", "exchange_rate", None, {}),
    ("macd__aapl_1min.json", "macd", None, {}),
    ("price__batch_aapl_msft.json", "price", None, {}),
    ("price__ibm.json", "price", "IBM", {}),
    ("quote__aapl_2022.json", "quote", None, {}),
    ("quote__batch_two_invalid_symbols.json", "quote", None, {}),
    ("quote__ibm_2021_legacy_shape.json", "quote", None, {}),
    ("rsi__aapl_1min.json", "rsi", None, {}),
    ("stocks__aapl_show_plan.json", "stocks", None, {}),
    ("time_series__batch_1h_spx_aapl.json", "time_series", "SPX,AAPL", {}),
    ("time_series__daily_ibm_2021_no_mic_code.json", "time_series", None, {}),
    ("time_series__daily_tsla_keys_sorted.json", "time_series", None, {}),
    ("time_series__forex_1h_eur_usd_utc.json", "time_series", None, {"timezone": "UTC"}),
    ("time_series__forex_daily_eur_usd.json", "time_series", None, {}),
    ("time_series__intraday_1min_aapl.json", "time_series", None, {}),
    ("time_series__monthly_aapl_variable_decimals.json", "time_series", None, {}),
]
"""(sample file, endpoint, symbol asked, extra request params): what the transform tests use."""

SPARK_TABLES = ["time_series", "quotes", "prices", "eod", "fx_rates", "stocks", "indicators"]
"""Tables the samples fill (every model the samples reach)."""

FLOAT_TOLERANCE = 1e-9
"""Relative tolerance of float comparisons between engines."""


def land_samples(store: ObjectStore) -> list[str]:
    """Import every sample as its own raw file; the raw keys."""
    keys = []
    for name, endpoint, symbol, params in SAMPLE_FILES:
        result = import_responses(
            store, [SAMPLES / name], endpoint=endpoint, symbol=symbol, params=params or None
        )
        keys.extend(f.key for f in result.files)
    return keys


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=FLOAT_TOLERANCE) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dt.datetime) and isinstance(b, dt.datetime):
        return a == b
    return bool(a == b)


def diff_rows(
    left: list[dict[str, Any]], right: list[dict[str, Any]], keys: list[str]
) -> list[str]:
    """Differences between two tables' rows, matched on ``keys`` (empty: the same rows)."""
    lmap = {tuple(r[k] for k in keys): r for r in left}
    rmap = {tuple(r[k] for k in keys): r for r in right}
    problems = [f"only left: {k}" for k in lmap.keys() - rmap.keys()]
    problems += [f"only right: {k}" for k in rmap.keys() - lmap.keys()]
    for key in lmap.keys() & rmap.keys():
        a, b = lmap[key], rmap[key]
        for column in sorted(a.keys() | b.keys()):
            if not _same(a.get(column), b.get(column)):
                problems.append(f"{key} {column}: {a.get(column)!r} != {b.get(column)!r}")
    return sorted(problems)
