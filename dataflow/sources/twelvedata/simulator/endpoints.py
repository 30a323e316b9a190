"""Market-data endpoints: one function per endpoint and symbol, returning the API's payload.

Each function takes one instrument, the parsed query and the :class:`Context` (catalog, market,
clock) and returns the single-symbol payload, or raises :class:`ApiProblem`. The app runs it once
per requested symbol and builds the batch shape around it.

Example:
    >>> import datetime as dt
    >>> from dataflow.sources.twelvedata.simulator.catalog import default_catalog
    >>> from dataflow.sources.twelvedata.simulator.market import Market
    >>> now = dt.datetime(2024, 6, 14, 18, tzinfo=dt.UTC)
    >>> ctx = Context(default_catalog(), Market(42), now)
    >>> out = time_series(ctx.catalog.lookup("EUR/USD"), Query({"interval": "1h"}), ctx)
    >>> len(out["values"]), "volume" in out["values"][0]
    (30, False)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dataflow.sources.twelvedata.simulator.calendar import Span, session
from dataflow.sources.twelvedata.simulator.catalog import Catalog, Instrument
from dataflow.sources.twelvedata.simulator.indicators import INDICATORS, Indicator
from dataflow.sources.twelvedata.simulator.market import Bar, Formatter, Market, Window
from dataflow.sources.twelvedata.simulator.params import BAD_SYMBOL, NO_DATA, ApiProblem, Query

MAX_OUTPUTSIZE = 5000


@dataclass(frozen=True)
class Context:
    """What an endpoint needs besides its parameters."""

    catalog: Catalog
    market: Market
    now: dt.datetime

    @property
    def now_ts(self) -> int:
        """``now`` as Unix seconds."""
        return int(self.now.timestamp())


SymbolEndpoint = Callable[[Instrument, Query, Context], dict[str, Any]]


def _window(inst: Instrument, q: Query, ctx: Context, extra: int = 0) -> tuple[Window, int]:
    """The bar window of time_series-like requests and the number of rows asked for."""
    tz = q.timezone(inst)
    start, end = q.moment("start_date"), q.moment("end_date")
    day = q.day(tz, ctx.now)
    if day is not None:
        start = dt.datetime.combine(day, dt.time())
        end = start + dt.timedelta(days=1)
    dated = start is not None or end is not None
    size = q.integer("outputsize", MAX_OUTPUTSIZE if dated else 30, 1, MAX_OUTPUTSIZE)
    return Window(tz, start, end, size + extra, ctx.now_ts), size


def _bars(
    inst: Instrument, q: Query, ctx: Context, interval: str, extra: int = 0
) -> tuple[Window, list[tuple[Span, Bar]], int]:
    window, size = _window(inst, q, ctx, extra)
    bars = ctx.market.select(inst, interval, window)
    if not bars:
        raise ApiProblem(
            400, NO_DATA, {"symbol": inst.symbol, "interval": interval, "exchange": ""}
        )
    return window, bars, size


def _ordered(rows: list[dict[str, Any]], q: Query) -> list[dict[str, Any]]:
    return rows[::-1] if q.choice("order", "desc", ("asc", "desc")) == "asc" else rows


def time_series(inst: Instrument, q: Query, ctx: Context) -> dict[str, Any]:
    """``/time_series``: meta, values (newest first unless ``order=asc``), status."""
    interval = q.interval()
    dp = q.integer("dp", -1, -1, 11)
    previous_close = q.flag("previous_close")
    window, bars, size = _bars(inst, q, ctx, interval, extra=1 if previous_close else 0)
    if previous_close and len(bars) <= size:
        bars += ctx.market.before(inst, interval, bars[-1][0], 1, window.now)
    fmt = Formatter(window.tz, dp, inst.decimals)
    rows = []
    for i, (span, bar) in enumerate(bars[:size]):
        row: dict[str, str | None] = {
            "datetime": fmt.label(span),
            "open": fmt.number(bar.open),
            "high": fmt.number(bar.high),
            "low": fmt.number(bar.low),
            "close": fmt.number(bar.close),
        }
        if bar.volume is not None:
            row["volume"] = str(int(bar.volume))
        if previous_close:
            row["previous_close"] = fmt.number(bars[i + 1][1].close) if i + 1 < len(bars) else None
        rows.append(row)
    return {"meta": inst.meta(interval), "values": _ordered(rows, q), "status": "ok"}


def _latest(inst: Instrument, ctx: Context, interval: str, count: int) -> list[tuple[Span, Bar]]:
    return ctx.market.select(inst, interval, Window(dt.UTC, None, None, count, ctx.now_ts))


def _is_open(inst: Instrument, ctx: Context) -> bool:
    now = ctx.now_ts
    for back in (0, 1):
        sess = session(inst.calendar, (ctx.now - dt.timedelta(days=back)).date())
        if sess is not None and sess.open <= now < sess.close:
            return True
    return False


def _venue(inst: Instrument) -> dict[str, Any]:
    out = {}
    for key in ("exchange", "mic_code", "currency"):
        if inst.row.get(key):
            out[key] = inst.row[key]
    return out


def quote(inst: Instrument, q: Query, ctx: Context) -> dict[str, Any]:
    """``/quote``: the latest bar of ``interval`` (1day) with change, 52-week range and more."""
    interval = q.interval("1day")
    dp = q.integer("dp", 5, 0, 11)
    period = q.integer("volume_time_period", 9, 1, 500)
    bars = _latest(inst, ctx, interval, 2)
    (span, bar), prev = bars[0], bars[1][1] if len(bars) > 1 else bars[0][1]
    fmt = Formatter(q.timezone(inst), dp, inst.decimals)
    year_start = dt.datetime.combine(ctx.now.date() - dt.timedelta(days=364), dt.time())
    year = ctx.market.select(inst, "1day", Window(dt.UTC, year_start, None, 400, ctx.now_ts))
    year = year or bars
    low, high = min(b.low for _, b in year), max(b.high for _, b in year)
    stamp = min(ctx.now_ts, span.end - 1)
    out: dict[str, Any] = {"symbol": inst.symbol, "name": inst.name, **_venue(inst)}
    out.update(
        datetime=fmt.label(span),
        timestamp=stamp,
        last_quote_at=stamp,
        open=fmt.number(bar.open),
        high=fmt.number(bar.high),
        low=fmt.number(bar.low),
        close=fmt.number(bar.close),
    )
    if bar.volume is not None:
        out["volume"] = str(int(bar.volume))
    change = bar.close - prev.close
    out.update(
        previous_close=fmt.number(prev.close),
        change=fmt.number(change),
        percent_change=f"{100 * change / prev.close:.5f}",
    )
    if bar.volume is not None:
        volumes = [b.volume or 0.0 for _, b in year[:period]]
        out["average_volume"] = str(int(sum(volumes) / len(volumes)))
    out["is_market_open"] = _is_open(inst, ctx)
    out["fifty_two_week"] = {
        "low": fmt.number(low),
        "high": fmt.number(high),
        "low_change": fmt.number(bar.close - low),
        "high_change": fmt.number(bar.close - high),
        "low_change_percent": f"{100 * (bar.close - low) / low:.5f}",
        "high_change_percent": f"{100 * (bar.close - high) / high:.5f}",
        "range": f"{low:.6f} - {high:.6f}",
    }
    return out


def price(inst: Instrument, q: Query, ctx: Context) -> dict[str, Any]:
    """``/price``: the latest price (close of the newest 1min bar)."""
    dp = q.integer("dp", 5, 0, 11)
    (_, bar) = _latest(inst, ctx, "1min", 1)[0]
    return {"price": Formatter(dt.UTC, dp, inst.decimals).number(bar.close)}


def eod(inst: Instrument, q: Query, ctx: Context) -> dict[str, Any]:
    """``/eod``: the close of the latest completed day, or of ``date``."""
    dp = q.integer("dp", 5, 0, 11)
    tz = q.timezone(inst)
    day = q.day(tz, ctx.now)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time()) if day else None
    bars = ctx.market.select(inst, "1day", Window(tz, None, end, 2, ctx.now_ts))
    if day is None and bars and bars[0][0].end > ctx.now_ts:
        bars = bars[1:]  # today's session is not over: the last end of day is the previous one
    if not bars:
        raise ApiProblem(400, NO_DATA, q.meta("1day"))
    span, bar = bars[0]
    return {
        "symbol": inst.symbol,
        **_venue(inst),
        "datetime": Formatter(tz, dp, inst.decimals).label(span),
        "close": Formatter(tz, dp, inst.decimals).number(bar.close),
    }


def _rate(inst: Instrument, q: Query, ctx: Context) -> tuple[float, int, int]:
    if inst.is_equity:
        raise ApiProblem(404, BAD_SYMBOL)
    dp = q.integer("dp", 5, 0, 11)
    tz = q.timezone(inst)
    end = None
    when = q.moment("date")
    if when is not None:
        only_day = len(q.get("date")) <= 10
        end = when + (dt.timedelta(days=1) if only_day else dt.timedelta(minutes=1))
    bars = ctx.market.select(inst, "1min", Window(tz, None, end, 1, ctx.now_ts))
    if not bars:
        raise ApiProblem(400, NO_DATA, q.meta(""))
    span, bar = bars[0]
    return bar.close, span.open, dp


def exchange_rate(inst: Instrument, q: Query, ctx: Context) -> dict[str, Any]:
    """``/exchange_rate``: ``{"symbol", "rate" (number), "timestamp"}`` for currency pairs."""
    rate, stamp, dp = _rate(inst, q, ctx)
    return {"symbol": inst.symbol, "rate": round(rate, dp), "timestamp": stamp}


def currency_conversion(inst: Instrument, q: Query, ctx: Context) -> dict[str, Any]:
    """``/currency_conversion``: the rate and ``amount`` converted (``amount`` is required)."""
    amount = q.number("amount")
    rate, stamp, dp = _rate(inst, q, ctx)
    return {
        "symbol": inst.symbol,
        "rate": round(rate, dp),
        "amount": round(rate * amount, dp),
        "timestamp": stamp,
    }


def _indicator_params(ind: Indicator, q: Query) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, default in ind.params.items():
        raw = q.get(name)
        if not raw:
            params[name] = default
        elif isinstance(default, int):
            params[name] = q.integer(name, default, 1, 800)
        elif isinstance(default, float):
            params[name] = q.number(name)
        elif name == "series_type":
            params[name] = q.choice(name, "close", ("open", "high", "low", "close", "volume"))
        else:
            params[name] = raw.upper()
    return params


def indicator(name: str) -> SymbolEndpoint:
    """The endpoint of one technical indicator (``rsi``, ``macd``, ...)."""
    ind = INDICATORS[name]

    def endpoint(inst: Instrument, q: Query, ctx: Context) -> dict[str, Any]:
        interval = q.interval()
        params = _indicator_params(ind, q)
        dp = q.integer("dp", -1, -1, 11)
        ohlc = q.flag("include_ohlc")
        window, bars, size = _bars(inst, q, ctx, interval)
        warm = ctx.market.before(inst, interval, bars[-1][0], ind.warmup(params), window.now)
        history = [b for _, b in reversed(warm)] + [b for _, b in reversed(bars)]
        columns = ind.compute(history, params)
        fmt = Formatter(window.tz, dp if dp >= 0 else 5, inst.decimals)
        price_fmt = Formatter(window.tz, dp, inst.decimals)
        rows = []
        offset = len(warm)
        for i, (span, bar) in enumerate(reversed(bars)):
            values = {key: col[offset + i] for key, col in columns.items()}
            if any(v is None for v in values.values()):
                continue
            row: dict[str, Any] = {"datetime": fmt.label(span)}
            if ohlc:
                row.update(
                    open=price_fmt.number(bar.open),
                    high=price_fmt.number(bar.high),
                    low=price_fmt.number(bar.low),
                    close=price_fmt.number(bar.close),
                )
                if bar.volume is not None:
                    row["volume"] = str(int(bar.volume))
            row.update({key: fmt.number(float(v or 0.0)) for key, v in values.items()})
            rows.append(row)
        rows.reverse()
        meta = {**inst.meta(interval), "indicator": {"name": ind.name, **params}}
        return {"meta": meta, "values": _ordered(rows[:size], q), "status": "ok"}

    endpoint.__name__ = name
    return endpoint


MARKET_ENDPOINTS: dict[str, SymbolEndpoint] = {
    "time_series": time_series,
    "quote": quote,
    "price": price,
    "eod": eod,
    "exchange_rate": exchange_rate,
    "currency_conversion": currency_conversion,
    **{name: indicator(name) for name in INDICATORS},
}
"""Symbol-bound market-data endpoints by path."""
