"""Reference data of the simulator: the instruments it knows and the catalogue endpoints' rows.

The universe is data, not code: ``universe.json`` next to this module lists stocks, ETFs, forex
pairs, cryptocurrencies and exchanges; a class default (``classes``) fills any field a row leaves
out. Adding an instrument is adding a row.

Example:
    >>> catalog = default_catalog()
    >>> catalog.lookup("aapl").name
    'Apple Inc'
    >>> catalog.lookup("EUR/USD").kind
    'forex'
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

KINDS = {"stocks": "stock", "etfs": "etf", "forex_pairs": "forex", "cryptocurrencies": "crypto"}
"""Catalogue section of ``universe.json`` -> instrument kind."""


@dataclass(frozen=True)
class Instrument:
    """One tradable symbol and the parameters of its simulated market.

    Attributes:
        symbol: the ticker as the API spells it (``AAPL``, ``EUR/USD``).
        kind: ``stock``, ``etf``, ``forex`` or ``crypto``.
        calendar: ``us_equity``, ``forex`` (24/5) or ``crypto`` (24/7).
        timezone: the exchange time zone bars are labelled in by default.
        price: the typical price level the simulated walk wanders around.
        daily_vol: daily volatility of the log price.
        decimals: precision of prices when ``dp=-1`` (auto).
        volume: typical daily volume, ``None`` for instruments without volume (forex).
        since: the first day with data (``earliest_timestamp``).
        row: the full catalogue row (names, codes, profile fields).
    """

    symbol: str
    kind: str
    calendar: str
    timezone: str
    price: float
    daily_vol: float
    decimals: int
    volume: float | None
    since: dt.date
    row: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def name(self) -> str:
        """Display name: the company or fund name, or ``Base / Quote`` for currency pairs."""
        if "name" in self.row:
            return str(self.row["name"])
        return f"{self.row['currency_base']} / {self.row['currency_quote']}"

    @property
    def is_equity(self) -> bool:
        """True for stocks and ETFs (exchange-listed, with volume, mic_code and currency)."""
        return self.kind in ("stock", "etf")

    @property
    def exchange(self) -> str:
        """Exchange name as the API prints it (``NASDAQ``, ``Forex``, ``Coinbase Pro``)."""
        return str(self.row.get("exchange", ""))

    @functools.cached_property
    def key(self) -> int:
        """A stable 64-bit number naming the symbol (independent of Python's hash seed)."""
        digest = hashlib.blake2b(self.symbol.encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big")

    def meta(self, interval: str) -> dict[str, Any]:
        """The ``meta`` object of time_series and indicator answers, shaped as the real API's."""
        if self.is_equity:
            return {
                "symbol": self.symbol,
                "interval": interval,
                "currency": self.row["currency"],
                "exchange_timezone": self.timezone,
                "exchange": self.exchange,
                "mic_code": self.row["mic_code"],
                "type": self.row["type"],
            }
        meta: dict[str, Any] = {
            "symbol": self.symbol,
            "interval": interval,
            "currency_base": self.row["currency_base"],
            "currency_quote": self.row["currency_quote"],
        }
        if self.kind == "crypto":
            meta["exchange"] = self.exchange
        meta["type"] = self.row["type"]
        return meta


# Columns of each catalogue endpoint, in the real API's order.
_COLUMNS = {
    "stocks": (
        "symbol", "name", "currency", "exchange", "mic_code", "country", "type",
        "figi_code", "cfi_code", "isin", "cusip",
    ),
    "etfs": (
        "symbol", "name", "currency", "exchange", "mic_code", "country",
        "figi_code", "cfi_code", "isin", "cusip",
    ),
    "forex_pairs": ("symbol", "currency_group", "currency_base", "currency_quote"),
    "cryptocurrencies": ("symbol", "available_exchanges", "currency_base", "currency_quote"),
    "exchanges": ("title", "name", "code", "country", "timezone"),
}  # fmt: skip

_FILTERS = {
    "stocks": ("symbol", "exchange", "mic_code", "country", "type"),
    "etfs": ("symbol", "exchange", "mic_code", "country"),
    "forex_pairs": ("symbol", "currency_base", "currency_quote"),
    "cryptocurrencies": ("symbol", "currency_base", "currency_quote"),
    "exchanges": ("name", "code", "country"),
}
MASKED = "request_access_via_add_ons"


class Catalog:
    """The instruments and exchanges of a universe, with the catalogue endpoints' queries."""

    def __init__(self, universe: Mapping[str, Any]) -> None:
        classes: Mapping[str, Mapping[str, Any]] = universe["classes"]
        self._rows: dict[str, list[dict[str, Any]]] = {}
        self._by_symbol: dict[str, Instrument] = {}
        for section, kind in KINDS.items():
            rows = []
            for raw in universe.get(section, []):
                row = {**classes[kind], **raw}
                row.setdefault("isin", MASKED)
                row.setdefault("cusip", MASKED)
                rows.append(row)
                self._by_symbol[row["symbol"].upper()] = Instrument(
                    symbol=row["symbol"],
                    kind=kind,
                    calendar=row["calendar"],
                    timezone=row["timezone"],
                    price=float(row["price"]),
                    daily_vol=float(row["daily_vol"]),
                    decimals=int(row["decimals"]),
                    volume=float(row["volume"]) if "volume" in row else None,
                    since=dt.date.fromisoformat(row["since"]),
                    row=row,
                )
            self._rows[section] = rows
        self._rows["exchanges"] = [dict(row) for row in universe.get("exchanges", [])]

    @property
    def instruments(self) -> list[Instrument]:
        """Every instrument, in catalogue order."""
        return list(self._by_symbol.values())

    def lookup(self, symbol: str) -> Instrument | None:
        """The instrument a requested symbol names, or ``None``.

        Case-insensitive; an exchange qualifier (``AAPL:NASDAQ``, ``AAPL:XNGS``) must match.
        """
        name, _, venue = symbol.strip().upper().partition(":")
        inst = self._by_symbol.get(name)
        if inst is None or not venue:
            return inst
        venues = {inst.exchange.upper(), str(inst.row.get("mic_code", "")).upper()}
        return inst if venue in venues else None

    def rows(
        self, section: str, filters: Mapping[str, str], show_plan: bool = False
    ) -> list[dict[str, Any]]:
        """Rows of a catalogue endpoint matching the filters (case-insensitive equality)."""
        wanted = {k: v.upper() for k, v in filters.items() if k in _FILTERS[section] and v}
        out = []
        for row in self._rows[section]:
            if all(_matches(row.get(k), v) for k, v in wanted.items()):
                item = {col: row.get(col) for col in _COLUMNS[section]}
                if show_plan:
                    item["access"] = {"global": "Basic", "plan": "Basic"}
                out.append(item)
        return out

    def search(self, text: str) -> Iterable[Instrument]:
        """Instruments whose symbol starts with, or whose name contains, the text."""
        needle = text.strip().upper()
        for inst in self._by_symbol.values():
            if inst.symbol.upper().startswith(needle) or needle in inst.name.upper():
                yield inst


def _matches(value: Any, wanted: str) -> bool:
    if isinstance(value, list):
        return any(str(v).upper() == wanted for v in value)
    return str(value).upper() == wanted


@functools.cache
def default_catalog() -> Catalog:
    """The catalogue shipped with the package (``universe.json``)."""
    text = resources.files(__package__).joinpath("universe.json").read_text(encoding="utf-8")
    return Catalog(json.loads(text))
