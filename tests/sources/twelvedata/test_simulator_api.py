"""The simulator answers like the real API: shapes, batches, windows, calendars, determinism."""

from __future__ import annotations

import datetime as dt
import itertools
import time
from typing import Any

import httpx
import pytest

from dataflow.sources.twelvedata.simulator import SimulatorConfig, SimulatorServer

SIM_NOW = dt.datetime(2024, 6, 14, 18, 0, tzinfo=dt.UTC)  # as the sim_server fixture's clock

# Key sets copied from the real samples in shared/reference/twelvedata-samples/.
STOCK_META = {"symbol", "interval", "currency", "exchange_timezone", "exchange", "mic_code", "type"}
FOREX_META = {"symbol", "interval", "currency_base", "currency_quote", "type"}
OHLCV = {"datetime", "open", "high", "low", "close", "volume"}
QUOTE = {  # quote__aapl_2022.json (+ last_quote_at, documented for newer payloads)
    "symbol", "name", "exchange", "mic_code", "currency", "datetime", "timestamp", "open",
    "high", "low", "close", "volume", "previous_close", "change", "percent_change",
    "average_volume", "is_market_open", "fifty_two_week",
}  # fmt: skip
FIFTY_TWO = {
    "low", "high", "low_change", "high_change", "low_change_percent", "high_change_percent",
    "range",
}  # fmt: skip
BAD_SYMBOL_BODY = {  # error__404_symbol_or_figi_missing_or_invalid.json
    "code": 404,
    "message": "**symbol** or **figi** parameter is missing or invalid. Please provide a valid "
    "symbol according to API documentation: https://twelvedata.com/docs#reference-data",
    "status": "error",
}
INVALID_INTERVAL = (  # error__400_invalid_interval.json
    "Invalid **interval** provided: 1ms. Supported intervals: 1min, 5min, 15min, 30min, 45min, "
    "1h, 2h, 4h, 8h, 1day, 1week, 1month"
)


def get(client: httpx.Client, path: str, status: int = 200, **params: Any) -> Any:
    response = client.get(path, params=params)
    assert response.status_code == status, response.text
    assert "api-credits-used" in response.headers
    assert "api-credits-left" in response.headers
    return response.json()


def test_time_series_stock_shape(sim_client: httpx.Client) -> None:
    body = get(sim_client, "/time_series", symbol="AAPL", interval="1min")
    assert set(body) == {"meta", "values", "status"}
    assert body["status"] == "ok"
    assert set(body["meta"]) == STOCK_META
    assert body["meta"]["exchange_timezone"] == "America/New_York"
    assert len(body["values"]) == 30  # default outputsize without dates
    for row in body["values"]:
        assert set(row) == OHLCV
        assert all(isinstance(v, str) for v in row.values())
        assert float(row["low"]) <= min(float(row["open"]), float(row["close"]))
        assert float(row["high"]) >= max(float(row["open"]), float(row["close"]))
    # The newest bar is the one open at `now` (14:00 New York), desc order by default.
    assert body["values"][0]["datetime"] == "2024-06-14 14:00:00"
    assert body["values"][1]["datetime"] == "2024-06-14 13:59:00"
    assert 100 < float(body["values"][0]["close"]) < 400  # AAPL around 200


@pytest.mark.parametrize(("symbol", "level"), [("EUR/USD", (0.7, 1.6)), ("USD/JPY", (90, 250))])
def test_forex_has_no_volume_and_utc_labels(
    sim_client: httpx.Client, symbol: str, level: tuple[float, float]
) -> None:
    body = get(sim_client, "/time_series", symbol=symbol, interval="1h", outputsize=5)
    assert set(body["meta"]) == FOREX_META
    assert body["meta"]["type"] == "Physical Currency"
    assert body["values"][0]["datetime"] == "2024-06-14 18:00:00"
    for row in body["values"]:
        assert set(row) == OHLCV - {"volume"}
        assert level[0] < float(row["close"]) < level[1]


def test_crypto_meta_and_level(sim_client: httpx.Client) -> None:
    body = get(sim_client, "/time_series", symbol="BTC/USD", interval="1day", outputsize=3)
    assert body["meta"]["exchange"] == "Coinbase Pro"
    assert body["meta"]["type"] == "Digital Currency"
    assert 20000 < float(body["values"][0]["close"]) < 150000
    assert "volume" in body["values"][0]


def test_calendar_of_us_stocks(sim_client: httpx.Client) -> None:
    hourly = get(
        sim_client, "/time_series", symbol="MSFT", interval="1h",
        start_date="2023-07-03", end_date="2023-07-11", order="asc",
    )["values"]  # fmt: skip
    days = sorted({row["datetime"][:10] for row in hourly})
    # 4 July is a holiday, 8-9 July a weekend.
    assert days == ["2023-07-03", "2023-07-05", "2023-07-06", "2023-07-07", "2023-07-10"]
    assert [r["datetime"][11:] for r in hourly if r["datetime"].startswith("2023-07-05")] == [
        "09:30:00", "10:30:00", "11:30:00", "12:30:00", "13:30:00", "14:30:00", "15:30:00",
    ]  # fmt: skip
    weekly = get(sim_client, "/time_series", symbol="MSFT", interval="1week", outputsize=8)
    assert all(dt.date.fromisoformat(r["datetime"]).weekday() == 0 for r in weekly["values"])
    monthly = get(sim_client, "/time_series", symbol="MSFT", interval="1month", outputsize=8)
    assert all(r["datetime"].endswith("-01") for r in monthly["values"])
    assert monthly["values"][0]["datetime"] == "2024-06-01"


def test_forex_skips_weekends_crypto_does_not(sim_client: httpx.Client) -> None:
    window = {"interval": "1day", "start_date": "2024-06-01", "end_date": "2024-06-10"}
    fx = get(sim_client, "/time_series", symbol="EUR/USD", **window)["values"]
    crypto = get(sim_client, "/time_series", symbol="ETH/USD", **window)["values"]
    assert {dt.date.fromisoformat(r["datetime"]).weekday() for r in fx} == {0, 1, 2, 3, 4}
    assert len(crypto) == 9


def test_timezone_changes_labels_and_window(sim_client: httpx.Client) -> None:
    body = get(
        sim_client, "/time_series", symbol="AAPL", interval="1h", timezone="UTC",
        start_date="2024-06-13 13:30:00", end_date="2024-06-13 15:00:00",
    )  # fmt: skip
    assert [r["datetime"] for r in body["values"]] == ["2024-06-13 14:30:00", "2024-06-13 13:30:00"]
    bad = get(sim_client, "/time_series", 400, symbol="AAPL", interval="1h", timezone="Mars/Base")
    assert bad["status"] == "error"


def test_end_date_is_exclusive_start_date_inclusive(sim_client: httpx.Client) -> None:
    body = get(
        sim_client, "/time_series", symbol="AAPL", interval="1day",
        start_date="2024-06-10", end_date="2024-06-12",
    )  # fmt: skip
    assert [r["datetime"] for r in body["values"]] == ["2024-06-11", "2024-06-10"]
    only_end = get(
        sim_client, "/time_series", symbol="AAPL", interval="1day", end_date="2024-06-12",
        outputsize=3,
    )  # fmt: skip
    assert [r["datetime"] for r in only_end["values"]] == ["2024-06-11", "2024-06-10", "2024-06-07"]
    same = get(
        sim_client, "/time_series", 400, symbol="AAPL", interval="1day",
        start_date="2024-06-10", end_date="2024-06-10",
    )  # fmt: skip
    assert same["message"] == (
        "No data is available on the specified dates. Try setting different start/end dates."
    )


def test_outputsize_defaults(sim_client: httpx.Client) -> None:
    dated = get(sim_client, "/time_series", symbol="SPY", interval="1day", start_date="2024-01-01")
    assert len(dated["values"]) == 115  # every 2024 session up to 14 June, not 30
    one_day = get(sim_client, "/time_series", symbol="SPY", interval="1min", date="2024-06-13")
    assert len(one_day["values"]) == 390
    assert one_day["values"][-1]["datetime"] == "2024-06-13 09:30:00"
    get(sim_client, "/time_series", 400, symbol="SPY", interval="1day", outputsize=5001)


def test_determinism_across_windows_orders_and_servers(sim_client: httpx.Client) -> None:
    wide = get(sim_client, "/time_series", symbol="NVDA", interval="5min", outputsize=200)
    narrow = get(
        sim_client, "/time_series", symbol="NVDA", interval="5min",
        end_date="2024-06-13 12:00:00", outputsize=20, order="asc",
    )  # fmt: skip
    by_time = {row["datetime"]: row for row in wide["values"]}
    assert narrow["values"][-1]["datetime"] == "2024-06-13 11:55:00"
    for row in narrow["values"]:
        assert by_time[row["datetime"]] == row
    desc = get(sim_client, "/time_series", symbol="NVDA", interval="5min", outputsize=20)
    asc = get(
        sim_client, "/time_series", symbol="NVDA", interval="5min", outputsize=20, order="asc"
    )
    assert asc["values"] == desc["values"][::-1]
    # Closes chain into the next opens within a session.
    rows = asc["values"]
    assert all(a["close"] == b["open"] for a, b in itertools.pairwise(rows))
    params = {"symbol": "NVDA", "interval": "1day", "outputsize": "5"}
    with (
        SimulatorServer(SimulatorConfig(now=SIM_NOW)) as same,
        SimulatorServer(SimulatorConfig(now=SIM_NOW, seed=7)) as other,
    ):
        again = httpx.get(f"{same.url}/time_series", params=params).json()
        different = httpx.get(f"{other.url}/time_series", params=params).json()
    first = get(sim_client, "/time_series", **params)
    assert again == first
    assert different["values"] != first["values"]


def test_daily_close_is_last_intraday_close(sim_client: httpx.Client) -> None:
    day = get(sim_client, "/time_series", symbol="JPM", interval="1day", date="2024-06-13")
    minutes = get(sim_client, "/time_series", symbol="JPM", interval="1min", date="2024-06-13")
    assert day["values"][0]["close"] == minutes["values"][0]["close"]
    assert day["values"][0]["open"] == minutes["values"][-1]["open"]


def test_previous_close(sim_client: httpx.Client) -> None:
    body = get(
        sim_client, "/time_series", symbol="IBM", interval="1day", outputsize=3,
        previous_close="true",
    )  # fmt: skip
    values = body["values"]
    assert values[0]["previous_close"] == values[1]["close"]
    assert values[2]["previous_close"] is not None


def test_dp_fixes_decimals(sim_client: httpx.Client) -> None:
    body = get(sim_client, "/time_series", symbol="AAPL", interval="1day", outputsize=3, dp=5)
    assert all(len(r["open"].split(".")[1]) == 5 for r in body["values"])


def test_invalid_interval(sim_client: httpx.Client) -> None:
    body = get(sim_client, "/time_series", 400, symbol="IBM", interval="1ms")
    assert body == {
        "code": 400,
        "message": INVALID_INTERVAL,
        "status": "error",
        "meta": {"symbol": "IBM", "interval": "1ms", "exchange": ""},
    }


def test_multi_symbol_with_a_bad_symbol(sim_client: httpx.Client) -> None:
    body = get(sim_client, "/time_series", symbol="AAPL,NOPE,EUR/USD", interval="1day")
    assert set(body) == {"AAPL", "NOPE", "EUR/USD"}
    assert body["AAPL"]["status"] == "ok"
    assert set(body["EUR/USD"]["meta"]) == FOREX_META
    assert body["NOPE"] == BAD_SYMBOL_BODY
    assert get(sim_client, "/quote", 404, symbol="NOPE") == BAD_SYMBOL_BODY
    prices = get(sim_client, "/price", symbol="AAPL,MSFT")
    assert set(prices) == {"AAPL", "MSFT"}
    assert set(prices["AAPL"]) == {"price"}


def test_too_many_symbols(sim_client: httpx.Client) -> None:
    symbols = ",".join(["AAPL"] * 121)
    body = get(sim_client, "/price", 414, symbol=symbols)
    assert body["message"] == "Input parameter array exceeds the allowed length"


def test_quote_price_eod_rates(sim_client: httpx.Client) -> None:
    quote = get(sim_client, "/quote", symbol="AAPL")
    assert set(quote) - {"last_quote_at"} == QUOTE
    assert set(quote["fifty_two_week"]) == FIFTY_TWO
    assert quote["datetime"] == "2024-06-14"
    assert quote["is_market_open"] is True
    price = get(sim_client, "/price", symbol="AAPL")
    assert price["price"] == quote["close"]
    eod = get(sim_client, "/eod", symbol="VXX")
    assert set(eod) == {"symbol", "exchange", "mic_code", "currency", "datetime", "close"}
    assert eod["datetime"] == "2024-06-13"  # today's session is not over
    rate = get(sim_client, "/exchange_rate", symbol="USD/JPY")
    assert set(rate) == {"symbol", "rate", "timestamp"}
    assert isinstance(rate["rate"], float)
    conversion = get(sim_client, "/currency_conversion", symbol="EUR/USD", amount="100")
    assert set(conversion) == {"symbol", "rate", "amount", "timestamp"}
    assert conversion["amount"] == pytest.approx(conversion["rate"] * 100, abs=1e-3)
    get(sim_client, "/currency_conversion", 400, symbol="EUR/USD")


@pytest.mark.parametrize(
    ("name", "columns", "indicator"),
    [
        ("rsi", {"rsi"}, {"name", "series_type", "time_period"}),
        (
            "macd",
            {"macd", "macd_signal", "macd_hist"},
            {"name", "series_type", "fast_period", "slow_period", "signal_period"},
        ),
        ("sma", {"sma"}, {"name", "series_type", "time_period"}),
        ("ema", {"ema"}, {"name", "series_type", "time_period"}),
        ("bbands", {"upper_band", "middle_band", "lower_band"}, None),
        ("atr", {"atr"}, None),
        ("stoch", {"slow_k", "slow_d"}, None),
    ],
)
def test_indicators(
    sim_client: httpx.Client, name: str, columns: set[str], indicator: set[str] | None
) -> None:
    body = get(sim_client, f"/{name}", symbol="AAPL", interval="1min", outputsize=40)
    assert set(body["meta"]) == STOCK_META | {"indicator"}
    if indicator is not None:
        assert set(body["meta"]["indicator"]) == indicator
    assert len(body["values"]) == 40
    assert all(set(row) == {"datetime"} | columns for row in body["values"])
    # The same bar has the same value whatever the window.
    older = get(
        sim_client, f"/{name}", symbol="AAPL", interval="1min", outputsize=5,
        end_date=body["values"][9]["datetime"],
    )  # fmt: skip
    assert older["values"] == body["values"][10:15]


def test_indicator_formulas_against_the_bars(sim_client: httpx.Client) -> None:
    bars = get(sim_client, "/time_series", symbol="MSFT", interval="1h", outputsize=20, dp=8)
    closes = [float(r["close"]) for r in bars["values"]]
    sma = get(sim_client, "/sma", symbol="MSFT", interval="1h", outputsize=1, time_period=9)
    assert float(sma["values"][0]["sma"]) == pytest.approx(sum(closes[:9]) / 9, abs=1e-4)
    bb = get(sim_client, "/bbands", symbol="MSFT", interval="1h", outputsize=1)["values"][0]
    mid = sum(closes[:20]) / 20
    sd = (sum((c - mid) ** 2 for c in closes[:20]) / 20) ** 0.5
    assert float(bb["middle_band"]) == pytest.approx(mid, abs=1e-4)
    assert float(bb["upper_band"]) == pytest.approx(mid + 2 * sd, abs=1e-4)
    rsi = get(sim_client, "/rsi", symbol="MSFT", interval="1h", outputsize=30)
    assert all(0 <= float(r["rsi"]) <= 100 for r in rsi["values"])


@pytest.mark.parametrize(
    ("path", "row_keys"),
    [
        ("/stocks", {"symbol", "name", "currency", "exchange", "mic_code", "country", "type"}),
        ("/etfs", {"symbol", "name", "currency", "exchange", "mic_code", "country"}),
        ("/forex_pairs", {"symbol", "currency_group", "currency_base", "currency_quote"}),
        (
            "/cryptocurrencies",
            {"symbol", "available_exchanges", "currency_base", "currency_quote"},
        ),
        ("/exchanges", {"title", "name", "code", "country", "timezone"}),
    ],
)
def test_catalogues(sim_client: httpx.Client, path: str, row_keys: set[str]) -> None:
    body = get(sim_client, path)
    assert set(body) == {"data", "count", "status"}
    assert body["count"] == len(body["data"]) > 0
    assert all(row_keys <= set(row) for row in body["data"])


def test_catalogue_filters_and_pages(sim_client: httpx.Client) -> None:
    stocks = get(sim_client, "/stocks")
    assert {"AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "META", "TSLA", "JPM", "IBM", "V"} <= {
        r["symbol"] for r in stocks["data"]
    }
    nyse = get(sim_client, "/stocks", exchange="NYSE")
    assert {r["symbol"] for r in nyse["data"]} == {"JPM", "IBM", "V"}
    page = get(sim_client, "/stocks", outputsize=4, page=3)
    assert [r["symbol"] for r in page["data"]] == ["IBM", "V"]
    assert page["count"] == 10
    euro = get(sim_client, "/forex_pairs", currency_base="Euro")
    assert [r["symbol"] for r in euro["data"]] == ["EUR/USD"]
    plan = get(sim_client, "/stocks", symbol="AAPL", show_plan="true")
    assert plan["data"][0]["access"] == {"global": "Basic", "plan": "Basic"}


def test_reference_and_fundamentals(sim_client: httpx.Client) -> None:
    search = get(sim_client, "/symbol_search", symbol="IBM")
    assert search["data"][0]["symbol"] == "IBM"
    assert {"symbol", "instrument_name", "exchange", "exchange_timezone", "instrument_type",
            "country", "currency"} <= set(search["data"][0])  # fmt: skip
    states = get(sim_client, "/market_state", exchange="NYSE")
    assert isinstance(states, list)
    assert states[0]["is_market_open"] is True
    assert states[0]["time_to_close"] == "02:00:00"
    earliest = get(sim_client, "/earliest_timestamp", symbol="AAPL", interval="1day")
    assert earliest == {"datetime": "1980-12-12", "unix_time": 345479400}
    assert get(sim_client, "/profile", symbol="AAPL")["name"] == "Apple Inc"
    assert get(sim_client, "/splits", symbol="AAPL")["splits"][0]["ratio"] == 0.25
    assert get(sim_client, "/earnings", symbol="AAPL")["earnings"]
    assert get(sim_client, "/dividends", symbol="JPM")["dividends"][0]["amount"] == 1.15
    assert "statistics" in get(sim_client, "/statistics", symbol="MSFT")
    usage = get(sim_client, "/api_usage")
    assert {"timestamp", "current_usage", "plan_limit"} <= set(usage)


def test_unknown_path_is_a_json_404(sim_client: httpx.Client) -> None:
    body = get(sim_client, "/no_such_endpoint", 404)
    assert body["code"] == 404
    assert body["status"] == "error"


def test_5000_bars_are_fast(sim_client: httpx.Client) -> None:
    started = time.perf_counter()
    body = get(sim_client, "/time_series", symbol="TSLA", interval="1min", outputsize=5000)
    elapsed = time.perf_counter() - started
    assert len(body["values"]) == 5000
    assert elapsed < 1.5, f"5000 1min bars took {elapsed:.2f}s"
