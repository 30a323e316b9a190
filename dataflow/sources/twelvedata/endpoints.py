"""The Twelve Data endpoints the client knows: a backend is mostly data.

Each :class:`Endpoint` says where it lives, what it costs in API credits and how it may be called
(batched with comma-separated symbols, paged backwards through history). Weights follow the
``x-api-credits-cost`` values of the official OpenAPI spec (reference §3); batchable endpoints
follow the support article on batch requests (reference §4a).

Example:
    >>> ep = get_endpoint("time_series")
    >>> ep.kind, ep.batchable, cost(ep, 3)
    (<EndpointKind.SERIES: 'series'>, True, 3)
    >>> cost(get_endpoint("statistics"), 1)
    50
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from dataflow.errors import ConfigError

ParamValue = str | int | float | bool


class EndpointKind(StrEnum):
    """What an endpoint returns, which decides how it is requested and parsed."""

    SERIES = "series"
    """Bars over time (``/time_series``): needs an interval, takes dates, pages backwards."""
    INDICATOR = "indicator"
    """A technical indicator: a series plus indicator parameters (``/rsi``, ``/macd`` …)."""
    SNAPSHOT = "snapshot"
    """One current value per symbol, no history (``/quote``, ``/price``, ``/eod`` …)."""
    CATALOG = "catalog"
    """A reference list charged per request (``/stocks``, ``/exchanges`` …)."""
    REFERENCE = "reference"
    """Symbol-bound fundamentals (``/earnings``, ``/profile`` …): expensive, never batched."""


@dataclass(frozen=True)
class Endpoint:
    """One API endpoint and how to call it.

    Attributes:
        name: the name used in ``dataflow.yaml`` and the raw-zone layout.
        path: the URL path, e.g. ``/time_series``.
        kind: see :class:`EndpointKind`.
        weight: API credits per symbol (``per_symbol``) or per request.
        per_symbol: credits are charged for each symbol of the request.
        batchable: accepts comma-separated symbols in one request.
        pageable: history can be paged backwards with ``outputsize`` and ``end_date``.
        max_outputsize: the most rows one request returns.
        required_params: parameters the request must carry besides ``symbol``.
        default_params: parameters sent unless the caller sets them.
    """

    name: str
    path: str
    kind: EndpointKind
    weight: int
    per_symbol: bool
    batchable: bool
    pageable: bool
    max_outputsize: int = 5000
    required_params: tuple[str, ...] = ()
    default_params: Mapping[str, ParamValue] = field(default_factory=dict)

    @property
    def symbol_bound(self) -> bool:
        """The request names one or more instruments in ``symbol``."""
        return self.kind is not EndpointKind.CATALOG


def cost(endpoint: Endpoint, n_symbols: int) -> int:
    """API credits one request of ``endpoint`` for ``n_symbols`` symbols costs.

    Example:
        >>> cost(get_endpoint("quote"), 8), cost(get_endpoint("stocks"), 0)
        (8, 1)
    """
    if endpoint.per_symbol:
        return endpoint.weight * max(1, n_symbols)
    return endpoint.weight


def _series(name: str, **defaults: ParamValue) -> Endpoint:
    return Endpoint(
        name,
        f"/{name}",
        EndpointKind.SERIES,
        weight=1,
        per_symbol=True,
        batchable=True,
        pageable=True,
        required_params=("interval",),
        default_params=defaults,
    )


def _indicator(name: str, *, series_type: bool = True, **defaults: ParamValue) -> Endpoint:
    """The one factory for technical indicators (all weigh 1 credit per symbol).

    ``series_type`` is always sent for indicators that take it: the spec's default (``open``)
    disagrees with what the API returns without it (``close``), so we never rely on either.
    Indicators computed from high/low/close (ATR, STOCH, ADX, CCI, WILLR) take no series type.
    """
    params: dict[str, ParamValue] = {"series_type": "close"} if series_type else {}
    params.update(defaults)
    return Endpoint(
        name,
        f"/{name}",
        EndpointKind.INDICATOR,
        weight=1,
        per_symbol=True,
        batchable=False,
        pageable=True,
        required_params=("interval",),
        default_params=params,
    )


def _snapshot(name: str, *, required: tuple[str, ...] = ()) -> Endpoint:
    return Endpoint(
        name,
        f"/{name}",
        EndpointKind.SNAPSHOT,
        weight=1,
        per_symbol=True,
        batchable=True,
        pageable=False,
        required_params=required,
    )


def _catalog(name: str, weight: int = 1) -> Endpoint:
    return Endpoint(
        name, f"/{name}", EndpointKind.CATALOG, weight, per_symbol=False, batchable=False,
        pageable=False,
    )  # fmt: skip


def _reference(name: str, weight: int) -> Endpoint:
    return Endpoint(
        name, f"/{name}", EndpointKind.REFERENCE, weight, per_symbol=True, batchable=False,
        pageable=False,
    )  # fmt: skip


_ALL: tuple[Endpoint, ...] = (
    # market data
    _series("time_series"),
    _snapshot("quote"),
    _snapshot("price"),
    _snapshot("eod"),
    _snapshot("exchange_rate"),
    _snapshot("currency_conversion", required=("amount",)),
    # technical indicators
    _indicator("rsi", time_period=14),
    _indicator("macd", fast_period=12, slow_period=26, signal_period=9),
    _indicator("sma", time_period=9),
    _indicator("ema", time_period=9),
    _indicator("bbands", time_period=20, sd=2, ma_type="SMA"),
    _indicator("wma", time_period=9),
    _indicator("atr", series_type=False, time_period=14),
    _indicator("stoch", series_type=False, fast_k_period=14, slow_k_period=1, slow_d_period=3),
    _indicator("adx", series_type=False, time_period=14),
    _indicator("cci", series_type=False, time_period=20),
    _indicator("willr", series_type=False, time_period=14),
    # catalogues and service endpoints (charged per request)
    _catalog("stocks"),
    _catalog("etfs"),
    _catalog("forex_pairs"),
    _catalog("cryptocurrencies"),
    _catalog("exchanges"),
    _catalog("market_state"),
    _catalog("symbol_search"),
    _catalog("api_usage"),
    # fundamentals (optional: most need a paid plan)
    _reference("earnings", 20),
    _reference("dividends", 20),
    _reference("splits", 20),
    _reference("profile", 10),
    _reference("statistics", 50),
    _reference("earliest_timestamp", 1),
)

ENDPOINTS: dict[str, Endpoint] = {ep.name: ep for ep in _ALL}
"""Every endpoint the client can call, by name."""


def get_endpoint(name: str) -> Endpoint:
    """The endpoint called ``name``.

    Raises:
        ConfigError: unknown name, with the closest known names as a suggestion.

    Example:
        >>> get_endpoint("macd").default_params["signal_period"]
        9
    """
    try:
        return ENDPOINTS[name]
    except KeyError:
        close = difflib.get_close_matches(name, ENDPOINTS, n=3)
        hint = (
            f" — did you mean {' or '.join(repr(c) for c in close)}?"
            if close
            else f" — known endpoints: {', '.join(sorted(ENDPOINTS))}"
        )
        raise ConfigError(f"unknown endpoint {name!r}{hint}") from None


__all__ = ["ENDPOINTS", "Endpoint", "EndpointKind", "ParamValue", "cost", "get_endpoint"]
