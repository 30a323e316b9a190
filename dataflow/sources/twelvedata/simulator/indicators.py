"""Technical indicators computed from the simulator's own bars, with the textbook formulas.

One registry (:data:`INDICATORS`) serves every indicator endpoint: each entry names the indicator
as ``meta.indicator.name`` does, lists its parameters with defaults, and computes its output
columns from bars in ascending order. Values before an indicator has enough history are ``None``
and are not returned; the endpoint feeds a fixed warm-up of earlier bars first so that exponential
averages have converged and the same bar gets the same value whatever window is asked for.

Example:
    >>> closes = [float(x) for x in range(1, 31)]
    >>> sma(closes, 3)[-1]
    29.0
    >>> round(rsi(closes, 14)[-1], 2)  # only gains
    100.0
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from dataflow.sources.twelvedata.simulator.market import Bar

Series = list[float | None]


def sma(values: Sequence[float | None], n: int) -> Series:
    """Simple moving average over the last ``n`` defined values."""
    out: Series = []
    window: list[float] = []
    total = 0.0
    for v in values:
        if v is None:
            out.append(None)
            continue
        window.append(v)
        total += v
        if len(window) > n:
            total -= window.pop(0)
        out.append(total / n if len(window) == n else None)
    return out


def ema(values: Sequence[float | None], n: int) -> Series:
    """Exponential moving average, alpha = 2/(n+1), seeded with the SMA of the first n values."""
    out: Series = []
    alpha = 2.0 / (n + 1)
    seed: list[float] = []
    current: float | None = None
    for v in values:
        if v is None:
            out.append(None)
            continue
        if current is None:
            seed.append(v)
            if len(seed) == n:
                current = sum(seed) / n
            out.append(current)
            continue
        current += alpha * (v - current)
        out.append(current)
    return out


def rsi(values: Sequence[float], n: int) -> Series:
    """Wilder's Relative Strength Index (smoothed average gain / loss)."""
    out: Series = [None] * min(len(values), n)
    if len(values) <= n:
        return out
    changes = [values[i] - values[i - 1] for i in range(1, len(values))]
    gain = sum(max(c, 0.0) for c in changes[:n]) / n
    loss = sum(max(-c, 0.0) for c in changes[:n]) / n
    out.append(_rsi(gain, loss))
    for c in changes[n:]:
        gain = (gain * (n - 1) + max(c, 0.0)) / n
        loss = (loss * (n - 1) + max(-c, 0.0)) / n
        out.append(_rsi(gain, loss))
    return out


def _rsi(gain: float, loss: float) -> float:
    return 100.0 if loss == 0 else 100.0 - 100.0 / (1.0 + gain / loss)


def true_range(bars: Sequence[Bar]) -> list[float]:
    """High-low range widened to the previous close."""
    out = []
    for i, b in enumerate(bars):
        prev = bars[i - 1].close if i else b.close
        out.append(max(b.high - b.low, abs(b.high - prev), abs(b.low - prev)))
    return out


def wilder(values: Sequence[float], n: int) -> Series:
    """Wilder smoothing: the mean of the first n values, then (prev*(n-1) + x)/n."""
    out: Series = [None] * min(len(values), n - 1)
    if len(values) < n:
        return out
    current = sum(values[:n]) / n
    out.append(current)
    for v in values[n:]:
        current = (current * (n - 1) + v) / n
        out.append(current)
    return out


Params = Mapping[str, float | int | str]
Columns = dict[str, Series]


def _series(bars: Sequence[Bar], params: Params) -> list[float]:
    kind = str(params["series_type"])
    return [float(getattr(b, kind) or 0.0) for b in bars]


def _macd(bars: Sequence[Bar], p: Params) -> Columns:
    x = _series(bars, p)
    fast, slow = ema(x, int(p["fast_period"])), ema(x, int(p["slow_period"]))
    line = [
        f - s if f is not None and s is not None else None for f, s in zip(fast, slow, strict=True)
    ]
    signal = ema(line, int(p["signal_period"]))
    hist = [
        m - s if m is not None and s is not None else None
        for m, s in zip(line, signal, strict=True)
    ]
    return {"macd": line, "macd_signal": signal, "macd_hist": hist}


def _bbands(bars: Sequence[Bar], p: Params) -> Columns:
    x, n, k = _series(bars, p), int(p["time_period"]), float(p["sd"])
    mid = sma(x, n)
    upper: Series = []
    lower: Series = []
    for i, m in enumerate(mid):
        if m is None:
            upper.append(None)
            lower.append(None)
            continue
        sd = math.sqrt(sum((v - m) ** 2 for v in x[i - n + 1 : i + 1]) / n)
        upper.append(m + k * sd)
        lower.append(m - k * sd)
    return {"upper_band": upper, "middle_band": mid, "lower_band": lower}


def _stoch(bars: Sequence[Bar], p: Params) -> Columns:
    n = int(p["fast_k_period"])
    fast: Series = []
    for i, b in enumerate(bars):
        if i < n - 1:
            fast.append(None)
            continue
        hh = max(x.high for x in bars[i - n + 1 : i + 1])
        ll = min(x.low for x in bars[i - n + 1 : i + 1])
        fast.append(100.0 * (b.close - ll) / (hh - ll) if hh > ll else 50.0)
    slow_k = sma(fast, int(p["slow_k_period"]))
    return {"slow_k": slow_k, "slow_d": sma(slow_k, int(p["slow_d_period"]))}


@dataclass(frozen=True)
class Indicator:
    """An indicator endpoint: its display name, parameters (with defaults) and formula."""

    name: str
    params: Mapping[str, float | int | str]
    compute: Callable[[Sequence[Bar], Params], Columns]

    def warmup(self, params: Params) -> int:
        """Bars fed before the first output so exponential averages have converged."""
        longest = max((int(v) for v in params.values() if isinstance(v, int)), default=1)
        return min(3000, max(300, 12 * longest))


_CLOSE = {"series_type": "close"}

INDICATORS: dict[str, Indicator] = {
    "rsi": Indicator(
        "RSI - Relative Strength Index",
        {**_CLOSE, "time_period": 14},
        lambda b, p: {"rsi": rsi(_series(b, p), int(p["time_period"]))},
    ),
    "sma": Indicator(
        "SMA - Simple Moving Average",
        {**_CLOSE, "time_period": 9},
        lambda b, p: {"sma": sma(_series(b, p), int(p["time_period"]))},
    ),
    "ema": Indicator(
        "EMA - Exponential Moving Average",
        {**_CLOSE, "time_period": 9},
        lambda b, p: {"ema": ema(_series(b, p), int(p["time_period"]))},
    ),
    "macd": Indicator(
        "MACD - Moving Average Convergence Divergence",
        {**_CLOSE, "fast_period": 12, "slow_period": 26, "signal_period": 9},
        _macd,
    ),
    "bbands": Indicator(
        "BBANDS - Bollinger Bands",
        {**_CLOSE, "time_period": 20, "sd": 2.0, "ma_type": "SMA"},
        _bbands,
    ),
    "atr": Indicator(
        "ATR - Average True Range",
        {"time_period": 14},
        lambda b, p: {"atr": wilder(true_range(b), int(p["time_period"]))},
    ),
    "stoch": Indicator(
        "STOCH - Stochastic Oscillator",
        {
            "fast_k_period": 14,
            "slow_k_period": 1,
            "slow_d_period": 3,
            "slow_kma_type": "SMA",
            "slow_dma_type": "SMA",
        },
        _stoch,
    ),
}
"""Indicator endpoints by path name."""
