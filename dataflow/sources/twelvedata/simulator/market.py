"""Deterministic market data: a price for every instrument at every minute, and bars from it.

The log price is a multi-scale value-noise walk: for each scale s (1, 8, 64, ... 8**6 minutes) a
hash of (seed, symbol, scale, lattice index) gives a value in [-1, 1] at every multiple of s, the
values are interpolated smoothly in between, and the scales are summed with amplitudes growing as
sqrt(s), so increments behave like a random walk with the instrument's volatility up to about half a
year and stay near the instrument's typical level beyond. The price at any instant costs O(scales),
without generating history, so every bar is the same whichever window asks for it.

A bar's open is the price at its start and its close the price at its end (at ``now`` for the bar
still open), so closes chain into the next opens within a session and a daily close equals the last
intraday close. Highs and lows add hash-sized wicks; volume is a hash (stocks, ETFs and crypto).

Example:
    >>> from dataflow.sources.twelvedata.simulator.catalog import default_catalog
    >>> market = Market(seed=42)
    >>> aapl = default_catalog().lookup("AAPL")
    >>> market.price(aapl, 1_700_000_000) == Market(seed=42).price(aapl, 1_700_000_000)
    True
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from dataclasses import dataclass
from typing import NamedTuple

from dataflow.sources.twelvedata.simulator.calendar import (
    INTRADAY_MINUTES,
    NOMINAL_MINUTES,
    Span,
    calendar_timezone,
    spans_backward,
)
from dataflow.sources.twelvedata.simulator.catalog import Instrument

_MASK = (1 << 64) - 1
_SCALES = tuple(8**k for k in range(7))  # minutes: 1 .. 262144 (about half a year)
_CACHE_LIMIT = 2_000_000
_INTERVAL_SALT = {name: i + 1 for i, name in enumerate(NOMINAL_MINUTES)}


def _mix(x: int) -> int:
    """splitmix64 finalizer: a fast, well-spread 64-bit hash of an integer."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


class Bar(NamedTuple):
    """One OHLCV bar as floats; ``volume`` is None for instruments without volume."""

    open: float
    high: float
    low: float
    close: float
    volume: float | None


@dataclass(frozen=True)
class Window:
    """Which bars a request selects.

    Attributes:
        tz: the zone ``start``/``end`` are read in (and labels printed in).
        start: first label included (naive, in ``tz``), or None.
        end: first label excluded (naive, in ``tz``), or None.
        limit: at most this many bars, the newest of the window.
        now: Unix seconds; the newest bar is the one open at ``now``.
    """

    tz: dt.tzinfo
    start: dt.datetime | None
    end: dt.datetime | None
    limit: int
    now: int


class Market:
    """Prices and bars of every instrument for one seed. Caches what it computes."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        # Per scale: (length in minutes, amplitude factor sqrt(length), hash salt of the scale).
        self._scales = tuple(
            (scale, math.sqrt(scale), _mix(seed * 1_000_003 + k)) for k, scale in enumerate(_SCALES)
        )
        self._lattice: dict[int, float] = {}
        self._prices: dict[tuple[int, int], float] = {}
        self._bars: dict[tuple[int, str, int, int], Bar] = {}

    def price(self, inst: Instrument, ts: int) -> float:
        """The price of an instrument at Unix time ``ts`` (floored to the minute)."""
        minute = ts // 60
        cached = self._prices.get((inst.key, minute))
        if cached is not None:
            return cached
        key, lattice = inst.key, self._lattice
        log_price = 0.0
        for scale, root, salt in self._scales:
            n, r = divmod(minute, scale)
            base = key ^ salt
            a = lattice.get(base ^ n)
            if a is None:
                a = lattice[base ^ n] = _mix(base ^ n) / 9223372036854775808.0 - 1.0
            if r:
                b = lattice.get(base ^ (n + 1))
                if b is None:
                    b = lattice[base ^ (n + 1)] = _mix(base ^ (n + 1)) / 9223372036854775808.0 - 1
                f = r / scale
                a += (b - a) * f * f * (3.0 - 2.0 * f)  # smoothstep interpolation
            log_price += a * root
        value = inst.price * math.exp(inst.daily_vol / 37.94733192202055 * log_price)  # sqrt(1440)
        if len(self._prices) > _CACHE_LIMIT:
            self._prices.clear()
            lattice.clear()
        self._prices[(inst.key, minute)] = value
        return value

    def _units(self, inst: Instrument, interval: str, start: int) -> tuple[float, float, float]:
        """Three numbers in [0, 1) drawn from one hash of the bar (21 bits each)."""
        h = _mix(inst.key ^ _mix((self.seed << 20) + _INTERVAL_SALT[interval]) ^ start)
        scale = 1.0 / 2097152.0
        return (h & 0x1FFFFF) * scale, (h >> 21 & 0x1FFFFF) * scale, (h >> 42 & 0x1FFFFF) * scale

    def unit(self, inst: Instrument, tag: str, n: int) -> float:
        """A deterministic number in [0, 1) for (seed, symbol, tag, n): fundamentals' noise."""
        salt = int.from_bytes(hashlib.blake2b(tag.encode(), digest_size=8).digest(), "big")
        return _mix(inst.key ^ _mix(self.seed ^ salt) ^ (n & _MASK)) / 18446744073709551616.0

    def bar(self, inst: Instrument, interval: str, span: Span, now: int) -> Bar:
        """The bar of a span; one still open at ``now`` closes at the price of ``now``."""
        end = span.end if span.end <= now else max(span.open, now - now % 60)
        cache_key = (inst.key, interval, span.open, end)
        cached = self._bars.get(cache_key)
        if cached is None:
            cached = self._make_bar(inst, interval, span, end)
            if len(self._bars) > _CACHE_LIMIT // 4:
                self._bars.clear()
            self._bars[cache_key] = cached
        return cached

    def _make_bar(self, inst: Instrument, interval: str, span: Span, end: int) -> Bar:
        o = self.price(inst, span.open)
        c = self.price(inst, end)
        minutes = INTRADAY_MINUTES.get(interval)
        if minutes is None:
            days = max(1.0, math.ceil((end - span.open) / 86400))
            share = days if inst.is_equity else (end - span.open) / 86400
            length = days * 1440.0
        else:
            length = max(1.0, (end - span.open) / 60)
            share = length / (390.0 if inst.is_equity else 1440.0)
        wick = inst.daily_vol / 37.94733192202055 * math.sqrt(min(length, 20000.0)) * 0.6
        up, down, size = self._units(inst, interval, span.open)
        high = max(o, c) * math.exp(wick * up)
        low = min(o, c) * math.exp(-wick * down)
        volume = None
        if inst.volume is not None:
            volume = inst.volume * max(share, 0.0) * (0.5 + size)
        return Bar(o, high, low, c, volume)

    def select(self, inst: Instrument, interval: str, window: Window) -> list[tuple[Span, Bar]]:
        """The bars of a window, newest first: labels in [start, end), open at or before now."""
        cal_tz = calendar_timezone(inst.calendar)
        intraday = interval in INTRADAY_MINUTES
        start_ts = end_ts = None
        last = dt.datetime.fromtimestamp(window.now, cal_tz).date()
        first = inst.since
        if window.end is not None:
            end_ts = int(window.end.replace(tzinfo=window.tz).timestamp())
            last = min(last, dt.datetime.fromtimestamp(end_ts, cal_tz).date() + _DAY)
        if window.start is not None:
            start_ts = int(window.start.replace(tzinfo=window.tz).timestamp())
            first = max(first, dt.datetime.fromtimestamp(start_ts, cal_tz).date() - _DAY)
        out: list[tuple[Span, Bar]] = []
        if window.limit <= 0:
            return out
        for span in spans_backward(inst.calendar, interval, last, first):
            if span.open > window.now:
                continue
            if intraday:
                if end_ts is not None and span.open >= end_ts:
                    continue
                if start_ts is not None and span.open < start_ts:
                    break
            else:
                label = dt.datetime.combine(span.label or dt.date.min, dt.time())
                if window.end is not None and label >= window.end:
                    continue
                if window.start is not None and label < window.start:
                    break
            out.append((span, self.bar(inst, interval, span, window.now)))
            if len(out) >= window.limit:
                break
        return out

    def before(
        self, inst: Instrument, interval: str, span: Span, count: int, now: int
    ) -> list[tuple[Span, Bar]]:
        """Up to ``count`` bars that open before ``span``, newest first (indicator warm-up)."""
        cal_tz = calendar_timezone(inst.calendar)
        last = dt.datetime.fromtimestamp(span.open, cal_tz).date()
        out: list[tuple[Span, Bar]] = []
        for prior in spans_backward(inst.calendar, interval, last, inst.since):
            if prior.open >= span.open:
                continue
            out.append((prior, self.bar(inst, interval, prior, now)))
            if len(out) >= count:
                break
        return out


_DAY = dt.timedelta(days=1)


class Formatter:
    """Turns floats and spans into the API's strings: ``dp`` decimals and zone-local labels.

    ``dp=-1`` is auto: the instrument's precision with trailing zeros dropped (``"248.5"``).
    """

    def __init__(self, tz: dt.tzinfo, dp: int, decimals: int) -> None:
        self.tz = tz
        self.dp = dp
        self.decimals = decimals
        self._offsets: dict[int, int] = {}
        self._dates: dict[int, str] = {}

    def number(self, value: float) -> str:
        """A price as the API prints it."""
        if self.dp >= 0:
            return f"{value:.{self.dp}f}"
        text = f"{value:.{self.decimals}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text

    def label(self, span: Span) -> str:
        """``YYYY-MM-DD`` for daily+ bars, else the open time (``YYYY-MM-DD HH:MM:SS``)."""
        if span.label is not None:
            return span.label.isoformat()
        return self.timestamp(span.open)

    def timestamp(self, ts: int) -> str:
        """Unix seconds as ``YYYY-MM-DD HH:MM:SS`` in the zone."""
        bucket = ts // 900  # zone offsets change on quarter hours at most
        offset = self._offsets.get(bucket)
        if offset is None:
            delta = dt.datetime.fromtimestamp(ts, self.tz).utcoffset()
            offset = int(delta.total_seconds()) if delta is not None else 0
            self._offsets[bucket] = offset
        days, rem = divmod(ts + offset, 86400)
        date = self._dates.get(days)
        if date is None:
            date = (dt.date(1970, 1, 1) + dt.timedelta(days=days)).isoformat()
            self._dates[days] = date
        return f"{date} {rem // 3600:02d}:{rem % 3600 // 60:02d}:{rem % 60:02d}"
