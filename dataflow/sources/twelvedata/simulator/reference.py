"""Reference-data and fundamentals endpoints: catalogues, search, market state, usage.

Catalogue endpoints (``stocks``, ``etfs``, ``forex_pairs``, ``cryptocurrencies``, ``exchanges``)
answer ``{"data": [...], "count": n, "status": "ok"}`` where ``count`` is the number of rows
matching the filters (before ``page``/``outputsize`` slice them). Fundamentals (``profile``,
``earnings``, ``dividends``, ``splits``, ``statistics``) are synthetic but deterministic.

Example:
    >>> import datetime as dt
    >>> from dataflow.sources.twelvedata.simulator.catalog import default_catalog
    >>> from dataflow.sources.twelvedata.simulator.market import Market
    >>> ctx = Context(default_catalog(), Market(42), dt.datetime(2024, 6, 14, tzinfo=dt.UTC))
    >>> catalogue("forex_pairs", Query({"currency_base": "euro"}), ctx)["count"]
    1
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from dataflow.sources.twelvedata.simulator.calendar import (
    INTRADAY_MINUTES,
    calendar_timezone,
    session,
)
from dataflow.sources.twelvedata.simulator.catalog import Instrument
from dataflow.sources.twelvedata.simulator.endpoints import Context, SymbolEndpoint
from dataflow.sources.twelvedata.simulator.market import Formatter, Window
from dataflow.sources.twelvedata.simulator.params import BAD_SYMBOL, ApiProblem, Query

RequestEndpoint = Callable[[Query, Context], Any]


def catalogue(section: str, q: Query, ctx: Context) -> dict[str, Any]:
    """A catalogue endpoint: filtered rows, optionally paged with ``page``/``outputsize``."""
    rows = ctx.catalog.rows(section, q.params, show_plan=q.flag("show_plan"))
    count = len(rows)
    if q.get("outputsize"):
        size = q.integer("outputsize", 5000, 1, 5000)
        page = q.integer("page", 1, 1, 1_000_000)
        rows = rows[(page - 1) * size : page * size]
    return {"data": rows, "count": count, "status": "ok"}


def symbol_search(q: Query, ctx: Context) -> dict[str, Any]:
    """``/symbol_search``: instruments whose symbol or name matches ``symbol``."""
    if not q.get("symbol"):
        raise ApiProblem(400, "**symbol** parameter is required.")
    size = q.integer("outputsize", 30, 1, 120)
    data = [
        {
            "symbol": inst.symbol,
            "instrument_name": inst.name,
            "exchange": inst.exchange or "PHYSICAL CURRENCY",
            "mic_code": inst.row.get("mic_code", ""),
            "exchange_timezone": inst.timezone,
            "instrument_type": inst.row["type"],
            "country": inst.row.get("country", ""),
            "currency": inst.row.get("currency", ""),
        }
        for inst in ctx.catalog.search(q.get("symbol"))
    ]
    return {"data": data[:size], "status": "ok"}


def _hms(seconds: int) -> str:
    hours, rem = divmod(max(0, seconds), 3600)
    return f"{hours:02d}:{rem // 60:02d}:{rem % 60:02d}"


def market_state(q: Query, ctx: Context) -> list[dict[str, Any]]:
    """``/market_state``: a bare array, one row per exchange (all US equity venues here)."""
    filters = {"name": q.get("exchange"), "code": q.get("code"), "country": q.get("country")}
    now = ctx.now_ts
    out = []
    for row in ctx.catalog.rows("exchanges", filters):
        day = ctx.now.astimezone(calendar_timezone("us_equity")).date()
        today = session("us_equity", day)
        is_open = today is not None and today.open <= now < today.close
        nxt = today if today is not None and now < today.open else None
        probe = day
        while nxt is None:
            probe += dt.timedelta(days=1)
            nxt = session("us_equity", probe)
        out.append(
            {
                "name": row["name"],
                "code": row["code"],
                "country": row["country"],
                "is_market_open": is_open,
                "time_after_open": _hms(now - today.open) if is_open and today else "00:00:00",
                "time_to_open": "00:00:00" if is_open else _hms(nxt.open - now),
                "time_to_close": _hms(today.close - now) if is_open and today else "00:00:00",
            }
        )
    return out


def earliest_timestamp(q: Query, ctx: Context) -> dict[str, Any]:
    """``/earliest_timestamp``: the first bar of a symbol at an interval."""
    inst = ctx.catalog.lookup(q.get("symbol"))
    if inst is None:
        raise ApiProblem(404, BAD_SYMBOL)
    interval = q.interval()
    day = inst.since
    first = session(inst.calendar, day)
    while first is None:
        day += dt.timedelta(days=1)
        first = session(inst.calendar, day)
    label = day.isoformat()
    if interval in INTRADAY_MINUTES:
        label = Formatter(q.timezone(inst), -1, 2).timestamp(first.open)
    return {"datetime": label, "unix_time": first.open}


def _company(inst: Instrument) -> dict[str, Any]:
    return {
        "symbol": inst.symbol,
        "name": inst.name,
        "currency": inst.row.get("currency", ""),
        "exchange": inst.exchange,
        "mic_code": inst.row.get("mic_code", ""),
        "exchange_timezone": inst.timezone,
    }


def _equity(inst: Instrument) -> None:
    if not inst.is_equity:
        raise ApiProblem(404, BAD_SYMBOL)


def profile(inst: Instrument, _q: Query, _ctx: Context) -> dict[str, Any]:
    """``/profile``: a flat company profile from the catalogue row."""
    _equity(inst)
    row = inst.row
    return {
        "symbol": inst.symbol,
        "name": inst.name,
        "exchange": inst.exchange,
        "mic_code": row.get("mic_code", ""),
        "sector": row.get("sector", "Financial Services" if inst.kind == "etf" else ""),
        "industry": row.get("industry", "Asset Management" if inst.kind == "etf" else ""),
        "employees": row.get("employees", 0),
        "website": row.get("website", ""),
        "description": f"{inst.name} (simulated profile).",
        "type": row["type"],
        "CEO": row.get("ceo", ""),
        "address": "",
        "address2": "",
        "city": row.get("city", ""),
        "zip": "",
        "state": row.get("state", ""),
        "country": row.get("country", ""),
        "phone": "",
    }


def _quarters(ctx: Context, inst: Instrument, count: int) -> list[dt.date]:
    """Quarter-report days (the 25th of Jan/Apr/Jul/Oct), newest first, not before listing."""
    year, month = ctx.now.year, (ctx.now.month - 1) // 3 * 3 + 1
    days: list[dt.date] = []
    while len(days) < count:
        day = dt.date(year, month, 25)
        if day < inst.since:
            break
        days.append(day)
        year, month = (year, month - 3) if month > 3 else (year - 1, 10)
    return days


def earnings(inst: Instrument, q: Query, ctx: Context) -> dict[str, Any]:
    """``/earnings``: quarterly EPS estimates and actuals (the future one has no actual)."""
    _equity(inst)
    size = q.integer("outputsize", 10, 1, 1000)
    rows = []
    for i, day in enumerate(_quarters(ctx, inst, size)):
        u = ctx.market.unit(inst, "earnings", day.toordinal())
        estimate = round(inst.price / 80 * (0.8 + 0.4 * u), 2)
        actual = None if day > ctx.now.date() else round(estimate * (0.9 + 0.25 * u), 2)
        diff = None if actual is None else round(actual - estimate, 2)
        rows.append(
            {
                "date": day.isoformat(),
                "time": "After Hours" if i % 2 else "Pre Market",
                "eps_estimate": estimate,
                "eps_actual": actual,
                "difference": diff,
                "surprise_prc": None if diff is None else round(100 * diff / estimate, 2),
            }
        )
    return {"meta": _company(inst), "earnings": rows, "status": "ok"}


def dividends(inst: Instrument, q: Query, ctx: Context) -> dict[str, Any]:
    """``/dividends``: quarterly ex-dates with the catalogue's amount (``range`` last|full)."""
    _equity(inst)
    amount = float(inst.row.get("dividend", 0.5 if inst.kind == "stock" else 0.0))
    count = 1 if q.choice("range", "last", ("last", "full", "1y", "5y")) == "last" else 4 * 25
    days = [d for d in _quarters(ctx, inst, count) if d <= ctx.now.date()] if amount else []
    rows = [{"ex_date": (d - dt.timedelta(days=15)).isoformat(), "amount": amount} for d in days]
    return {"meta": _company(inst), "dividends": rows}


def splits(inst: Instrument, _q: Query, _ctx: Context) -> dict[str, Any]:
    """``/splits``: the splits listed in the catalogue row."""
    _equity(inst)
    rows = [
        {
            "date": day,
            "description": f"{before}-for-{after} split",
            "ratio": after / before,
            "from_factor": before,
            "to_factor": after,
        }
        for day, before, after in inst.row.get("splits", [])
    ]
    return {"meta": _company(inst), "splits": rows}


def statistics(inst: Instrument, _q: Query, ctx: Context) -> dict[str, Any]:
    """``/statistics``: a small, consistent subset of the real fields (numbers)."""
    _equity(inst)
    year_start = dt.datetime.combine(ctx.now.date() - dt.timedelta(days=364), dt.time())
    year = ctx.market.select(inst, "1day", Window(dt.UTC, year_start, None, 400, ctx.now_ts))
    close = year[0][1].close if year else inst.price
    shares = int((inst.volume or 1.0) * 300)
    return {
        "meta": _company(inst),
        "statistics": {
            "valuations_metrics": {
                "market_capitalization": round(close * shares),
                "trailing_pe": round(80 * (0.8 + 0.4 * ctx.market.unit(inst, "pe", 0)), 2),
            },
            "stock_statistics": {"shares_outstanding": shares, "float_shares": int(shares * 0.98)},
            "stock_price_summary": {
                "fifty_two_week_low": round(min((b.low for _, b in year), default=close), 2),
                "fifty_two_week_high": round(max((b.high for _, b in year), default=close), 2),
                "beta": round(0.8 + 0.6 * ctx.market.unit(inst, "beta", 0), 3),
            },
            "dividends_and_splits": {
                "forward_annual_dividend_rate": float(inst.row.get("dividend", 0.0)) * 4,
            },
        },
    }


FUNDAMENTAL_ENDPOINTS: dict[str, SymbolEndpoint] = {
    "profile": profile,
    "earnings": earnings,
    "dividends": dividends,
    "splits": splits,
    "statistics": statistics,
}
"""Symbol-bound reference endpoints by path."""

CATALOGUES = ("stocks", "etfs", "forex_pairs", "cryptocurrencies", "exchanges")
