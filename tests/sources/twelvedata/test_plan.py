"""Request planning: batches, watermarks, catalogues once a day, --symbols, backfills."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from dataflow.config import load_settings
from dataflow.errors import ConfigError
from dataflow.metadata import WatermarkKey
from dataflow.sources.twelvedata.plan import (
    classify_symbol,
    format_api_datetime,
    parse_api_datetime,
    plan_requests,
)

TODAY = dt.date(2026, 11, 26)


@pytest.fixture
def td(tmp_path: Path):  # type: ignore[no-untyped-def]
    return load_settings(
        tmp_path, env={}, overrides={"sources.twelvedata.history_start": "2025-11-26"}
    ).sources.twelvedata


def test_first_run_covers_every_default_endpoint(td) -> None:  # type: ignore[no-untyped-def]
    items = plan_requests(td, watermarks={}, today=TODAY)
    assert {i.endpoint for i in items} == set(td.endpoints)
    daily = [i for i in items if i.endpoint == "time_series" and i.interval == "1day"]
    assert sum(len(i.symbols) for i in daily) == 14
    assert all(len(i.symbols) <= td.batch_size for i in items)
    assert {i.start for i in daily} == {dt.datetime(2025, 11, 26, tzinfo=dt.UTC)}
    hourly = [i for i in items if i.endpoint == "time_series" and i.interval == "1h"]
    assert {i.start for i in hourly} == {dt.datetime(2026, 9, 27, tzinfo=dt.UTC)}


def test_asset_classes_restrict_symbols(td) -> None:  # type: ignore[no-untyped-def]
    items = plan_requests(td, watermarks={}, today=TODAY, endpoints=["exchange_rate", "rsi"])
    fx = {s for i in items if i.endpoint == "exchange_rate" for s in i.symbols}
    assert fx == {"EUR/USD", "GBP/USD", "USD/JPY", "BTC/USD", "ETH/USD"}
    rsi = {s for i in items if i.endpoint == "rsi" for s in i.symbols}
    assert "AAPL" in rsi
    assert "EUR/USD" not in rsi


def test_watermarks_start_the_next_request_and_split_batches(td) -> None:  # type: ignore[no-untyped-def]
    newest = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)
    marks = {WatermarkKey("twelvedata", "time_series", "AAPL", "1day"): newest}
    items = plan_requests(td, watermarks=marks, today=TODAY, endpoints=["time_series"])
    aapl = [i for i in items if i.interval == "1day" and "AAPL" in i.symbols]
    assert len(aapl) == 1
    assert aapl[0].symbols == ["AAPL"]
    assert aapl[0].start == newest
    others = [i for i in items if i.interval == "1day" and "AAPL" not in i.symbols]
    assert all(i.start == dt.datetime(2025, 11, 26, tzinfo=dt.UTC) for i in others)


def test_catalogues_once_a_day_unless_backfilling(td) -> None:  # type: ignore[no-untyped-def]
    key = WatermarkKey("twelvedata", "stocks", "", "")
    fetched = dt.datetime.combine(TODAY, dt.time(8), tzinfo=dt.UTC)
    assert plan_requests(td, watermarks={key: fetched}, today=TODAY, endpoints=["stocks"]) == []
    later = plan_requests(
        td, watermarks={key: fetched}, today=TODAY + dt.timedelta(days=1), endpoints=["stocks"]
    )
    assert [i.endpoint for i in later] == ["stocks"]
    assert later[0].params == {"exchange": "NASDAQ"}


def test_symbols_option_replaces_the_universe(td) -> None:  # type: ignore[no-untyped-def]
    items = plan_requests(
        td,
        watermarks={},
        today=TODAY,
        endpoints=["quote", "exchange_rate"],
        symbols=["IBM", "USD/CHF"],
    )
    assert {(i.endpoint, tuple(i.symbols)) for i in items} == {
        ("quote", ("IBM", "USD/CHF")),
        ("exchange_rate", ("USD/CHF",)),
    }


def test_backfill_window(td) -> None:  # type: ignore[no-untyped-def]
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    end = dt.datetime(2024, 2, 1, tzinfo=dt.UTC)
    items = plan_requests(
        td, watermarks={}, today=TODAY, endpoints=["time_series"], start=start, end=end
    )
    assert {(i.start, i.end) for i in items} == {(start, end)}


def test_unknown_endpoint_suggests(td) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="did you mean 'time_series'"):
        plan_requests(td, watermarks={}, today=TODAY, endpoints=["time_serie"])


@pytest.mark.parametrize(
    ("symbol", "group"),
    [("AAPL", "stocks"), ("EUR/USD", "forex"), ("SOL/USD", "crypto"), ("NZD/CAD", "forex")],
)
def test_classify_symbol(symbol: str, group: str) -> None:
    assert classify_symbol(symbol, {"stocks": ["AAPL"], "forex": ["EUR/USD"]}) == group


@pytest.mark.parametrize(
    ("value", "interval", "text"),
    [
        (dt.datetime(2024, 1, 2, tzinfo=dt.UTC), "1day", "2024-01-02"),
        (dt.datetime(2024, 1, 2, tzinfo=dt.UTC), "1h", "2024-01-02 00:00:00"),
        (dt.datetime(2024, 1, 2, 15, 30, tzinfo=dt.UTC), "1day", "2024-01-02 15:30:00"),
    ],
)
def test_api_datetimes(value: dt.datetime, interval: str, text: str) -> None:
    assert format_api_datetime(value, interval) == text
    assert parse_api_datetime(text) == value
