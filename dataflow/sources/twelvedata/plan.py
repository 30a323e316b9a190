"""What to ask the API for: turns settings, CLI options and watermarks into requests.

Rules:

* Series and indicators are asked per (endpoint, interval) for batches of symbols that share a
  start: the watermark (the newest bar already landed, fetched again because it may have been
  incomplete) or ``history_start`` on a first run, ``--start`` for a backfill. Intraday intervals
  go back at most ``intraday_history_days``.
* Snapshots (quote, price, eod, exchange rates) are asked every run, in batches.
* Catalogues are asked at most once a UTC day (their watermark is the day they were fetched).
* ``--symbols`` replaces the universe for the run; endpoints restricted to asset classes keep
  only the symbols of those classes.

Example:
    >>> from dataflow.config import load_settings
    >>> settings = load_settings("/nonexistent", env={}).sources.twelvedata
    >>> items = plan_requests(settings, watermarks={}, today=dt.date(2026, 11, 26))
    >>> sorted({item.endpoint for item in items})[:3]
    ['bbands', 'cryptocurrencies', 'currency_conversion']
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dataflow.config import INTERVALS, EndpointSettings, TwelveDataSettings
from dataflow.errors import ConfigError
from dataflow.metadata import WatermarkKey
from dataflow.sources.twelvedata.endpoints import EndpointKind, get_endpoint

SOURCE = "twelvedata"
INTRADAY = frozenset(INTERVALS[:9])
_CRYPTO_BASES = frozenset({"BTC", "ETH", "SOL", "XRP", "ADA", "DOGE", "LTC", "DOT", "BNB", "AVAX"})


@dataclass
class PlanItem:
    """One logical request (a batch of symbols for one endpoint and interval)."""

    endpoint: str
    symbols: list[str]
    params: dict[str, Any]
    interval: str | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    keys: list[WatermarkKey] = field(default_factory=list)

    @property
    def kind(self) -> EndpointKind:
        """The endpoint's kind."""
        return get_endpoint(self.endpoint).kind


def classify_symbol(symbol: str, groups: Mapping[str, Sequence[str]]) -> str:
    """The asset class of a symbol: its configured group, else a guess from its shape."""
    for group, members in groups.items():
        if symbol in members:
            return group
    if "/" in symbol:
        return "crypto" if symbol.split("/", maxsplit=1)[0].upper() in _CRYPTO_BASES else "forex"
    return "stocks"


def endpoint_symbols(
    name: str,
    ep: EndpointSettings,
    groups: Mapping[str, Sequence[str]],
    only: Sequence[str] | None,
) -> list[str]:
    """The symbols an endpoint is called for in this run."""
    classes = ep.asset_classes or list(groups)
    if only:
        return [s for s in only if classify_symbol(s, groups) in classes]
    if ep.symbols is not None:
        return list(ep.symbols)
    chosen: list[str] = []
    for group in classes:
        if group not in groups:
            known = ", ".join(groups) or "none"
            raise ConfigError(
                f"sources.twelvedata.endpoints.{name}.asset_classes: unknown group {group!r} "
                f"— use one of the symbol groups ({known})"
            )
        chosen.extend(s for s in groups[group] if s not in chosen)
    return chosen


def plan_requests(
    settings: TwelveDataSettings,
    *,
    watermarks: Mapping[WatermarkKey, dt.datetime],
    today: dt.date,
    endpoints: Sequence[str] | None = None,
    symbols: Sequence[str] | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> list[PlanItem]:
    """Plan the requests of one ingest.

    Args:
        settings: the Twelve Data settings.
        watermarks: what has landed already (ignored for a backfill with ``start``).
        today: the current UTC date (catalogues are fetched once a day).
        endpoints: only these endpoints (default: all enabled ones).
        symbols: replace the symbol universe for this run.
        start: backfill from this instant instead of the watermarks.
        end: stop before this instant (exclusive, like the API's ``end_date``).
    """
    configured = settings.enabled_endpoints()
    if endpoints:
        unknown = [name for name in endpoints if name not in settings.endpoints]
        for name in unknown:
            get_endpoint(name)  # raises "did you mean" for typos of known endpoints
        chosen = {name: settings.endpoints.get(name) or EndpointSettings() for name in endpoints}
    else:
        chosen = configured
    items: list[PlanItem] = []
    for name, ep in chosen.items():
        endpoint = get_endpoint(name)
        params: dict[str, Any] = {**endpoint.default_params, **ep.params}
        if endpoint.kind is EndpointKind.CATALOG:
            key = WatermarkKey(SOURCE, name, "", "")
            seen = watermarks.get(key)
            if start is None and seen is not None and seen.date() >= today:
                continue
            items.append(PlanItem(name, [], params, keys=[key]))
            continue
        names = endpoint_symbols(name, ep, settings.symbols, symbols)
        if not names:
            continue
        if endpoint.kind in (EndpointKind.SERIES, EndpointKind.INDICATOR):
            items.extend(
                _series_items(settings, name, ep, names, params, watermarks, today, start, end)
            )
        else:
            size = settings.batch_size if endpoint.batchable else 1
            for batch in _chunks(names, size):
                items.append(PlanItem(name, batch, dict(params)))
    return items


def _series_items(
    settings: TwelveDataSettings,
    name: str,
    ep: EndpointSettings,
    names: list[str],
    params: dict[str, Any],
    watermarks: Mapping[WatermarkKey, dt.datetime],
    today: dt.date,
    start: dt.datetime | None,
    end: dt.datetime | None,
) -> list[PlanItem]:
    endpoint = get_endpoint(name)
    items: list[PlanItem] = []
    for interval in ep.intervals or ["1day"]:
        oldest = _history_start(settings, ep, interval, today)
        by_start: dict[dt.datetime, list[str]] = defaultdict(list)
        for symbol in names:
            key = WatermarkKey(SOURCE, name, symbol, interval)
            since = start or watermarks.get(key) or oldest
            by_start[since].append(symbol)
        size = settings.batch_size if endpoint.batchable else 1
        for since, group in sorted(by_start.items()):
            if end is not None and since >= end:
                continue
            for batch in _chunks(group, size):
                keys = [WatermarkKey(SOURCE, name, s, interval) for s in batch]
                items.append(PlanItem(name, batch, dict(params), interval, since, end, keys))
    return items


def _history_start(
    settings: TwelveDataSettings, ep: EndpointSettings, interval: str, today: dt.date
) -> dt.datetime:
    first = ep.history_start or settings.history_start
    if interval in INTRADAY:
        first = max(first, today - dt.timedelta(days=settings.intraday_history_days))
    return dt.datetime.combine(first, dt.time(), tzinfo=dt.UTC)


def _chunks(items: Sequence[str], size: int) -> list[list[str]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def format_api_datetime(value: dt.datetime, interval: str | None) -> str:
    """A datetime as the API takes it in start_date/end_date (UTC, since we send timezone=UTC)."""
    value = value.astimezone(dt.UTC)
    if interval not in INTRADAY and value.time() == dt.time():
        return value.strftime("%Y-%m-%d")
    return value.strftime("%Y-%m-%d %H:%M:%S")


def parse_api_datetime(text: str) -> dt.datetime:
    """A bar's ``datetime`` ("YYYY-MM-DD" or "YYYY-MM-DD HH:MM:SS", asked in UTC) as aware UTC."""
    parsed = dt.datetime.fromisoformat(text)
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)
