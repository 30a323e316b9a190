"""The Twelve Data client against the simulator on loopback: round trips, batches, errors,
retries, budgets, paging and the secrecy of the key."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import math
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest

from dataflow.errors import (
    AuthError,
    ConfigError,
    DailyLimitError,
    RequestError,
    ServerError,
    TransportError,
    UnreachableError,
)
from dataflow.sources.twelvedata.classify import AUTH_MESSAGE
from dataflow.sources.twelvedata.client import Response, TwelveDataClient, dedupe_values
from dataflow.sources.twelvedata.endpoints import ENDPOINTS

sim = pytest.importorskip("dataflow.sources.twelvedata.simulator")
SimulatorConfig = sim.SimulatorConfig
SimulatorServer = sim.SimulatorServer

NOW = dt.datetime(2024, 6, 14, 18, 0, tzinfo=dt.UTC)
KEY = "sk-test-0123456789abcdef"


@pytest.fixture
def cl_simulator() -> Iterator[Callable[..., Any]]:
    """Start simulators on loopback with the given config; all stop at the end of the test."""
    with ExitStack() as stack:

        def start(**config: Any) -> Any:
            config.setdefault("now", NOW)
            return stack.enter_context(SimulatorServer(SimulatorConfig(**config)))

        yield start


@pytest.fixture(scope="module")
def cl_server() -> Iterator[Any]:
    """One plain simulator (a key required, no limits) shared by the round-trip tests."""
    with SimulatorServer(SimulatorConfig(api_key=KEY, now=NOW)) as server:
        yield server


class cl_Recorder:
    """httpx event hook and ``on_response`` sink: every URL sent and every answer received."""

    def __init__(self) -> None:
        self.urls: list[str] = []
        self.auth: list[str | None] = []
        self.responses: list[Response] = []

    async def on_request(self, request: httpx.Request) -> None:
        self.urls.append(str(request.url))
        self.auth.append(request.headers.get("authorization"))

    def hooks(self) -> dict[str, Any]:
        return {"request": [self.on_request]}


def cl_client(url: str, rec: cl_Recorder | None = None, **kw: Any) -> TwelveDataClient:
    rec = rec or cl_Recorder()
    kw.setdefault("api_key", KEY)
    kw.setdefault("per_minute", None)
    kw.setdefault("per_day", None)
    kw.setdefault("backoff_base", 0.01)
    kw.setdefault("backoff_max", 0.05)
    kw.setdefault("seed", 1)
    return TwelveDataClient(
        base_url=url, on_response=rec.responses.append, event_hooks=rec.hooks(), **kw
    )


def cl_no_key_anywhere(rec: cl_Recorder) -> None:
    assert rec.urls, "no request was sent"
    for url in rec.urls:
        assert "apikey" not in url.lower()
        assert KEY not in url
    for response in rec.responses:
        assert KEY not in repr(response.params)
        assert KEY not in repr(response.headers)
        assert "apikey" not in {k.lower() for k in response.params}


# endpoint -> (symbols, params) for one round trip each
ROUND_TRIPS: dict[str, tuple[list[str], dict[str, Any]]] = {
    "time_series": (["AAPL", "EUR/USD"], {"interval": "1day", "outputsize": 5}),
    "quote": (["AAPL", "BTC/USD"], {}),
    "price": (["AAPL", "MSFT"], {}),
    "eod": (["AAPL"], {}),
    "exchange_rate": (["EUR/USD", "USD/JPY"], {}),
    "currency_conversion": (["EUR/USD"], {"amount": 100}),
    "rsi": (["AAPL"], {"interval": "1day", "outputsize": 5}),
    "macd": (["AAPL"], {"interval": "1day", "outputsize": 5}),
    "sma": (["AAPL"], {"interval": "1day", "outputsize": 5, "time_period": 20}),
    "ema": (["AAPL"], {"interval": "1day", "outputsize": 5, "time_period": 20}),
    "bbands": (["AAPL"], {"interval": "1day", "outputsize": 5}),
    "atr": (["AAPL"], {"interval": "1h", "outputsize": 5}),
    "stoch": (["AAPL"], {"interval": "1day", "outputsize": 5}),
    "stocks": ([], {"exchange": "NASDAQ"}),
    "etfs": ([], {}),
    "forex_pairs": ([], {}),
    "cryptocurrencies": ([], {}),
    "exchanges": ([], {}),
    "market_state": ([], {}),
    "symbol_search": ([], {"symbol": "AAP"}),
    "api_usage": ([], {}),
    "earliest_timestamp": (["AAPL"], {"interval": "1day"}),
    "profile": (["AAPL"], {}),
    "earnings": (["AAPL"], {}),
    "dividends": (["AAPL"], {}),
    "splits": (["AAPL"], {}),
    "statistics": (["AAPL"], {}),
}


@pytest.mark.parametrize("endpoint", sorted(ROUND_TRIPS))
def test_round_trip(cl_server: Any, endpoint: str) -> None:
    symbols, params = ROUND_TRIPS[endpoint]
    rec = cl_Recorder()

    async def main() -> Response:
        async with cl_client(cl_server.url, rec) as client:
            return await client.fetch(endpoint, symbols=symbols, params=params)

    response = asyncio.run(main())
    out = response.outcome
    assert out.ok, (response.status_code, response.body[:300])
    assert response.path == ENDPOINTS[endpoint].path
    assert response.attempts == 1
    assert out.is_batch is (len(symbols) > 1)
    assert set(out.per_symbol) == set(symbols)
    assert all(r.ok and r.rows >= 1 for r in out.per_symbol.values()), out.per_symbol
    assert rec.responses == [response]
    assert rec.auth == [f"apikey {KEY}"]
    cl_no_key_anywhere(rec)
    kind = ENDPOINTS[endpoint].kind
    if kind in ("series", "indicator"):
        assert response.params["timezone"] == "UTC"
        values = next(iter(out.per_symbol.values())).payload["values"]
        assert len(values) == 5
        assert values[0]["datetime"] > values[-1]["datetime"]  # newest first


def test_every_default_endpoint_is_covered() -> None:
    from dataflow.config import default_endpoints

    assert set(default_endpoints()) <= set(ROUND_TRIPS)


def test_a_bad_symbol_in_a_batch_fails_alone(cl_server: Any) -> None:
    async def main() -> Response:
        async with cl_client(cl_server.url) as client:
            return await client.fetch(
                "time_series", symbols=["AAPL", "NOPE123", "EUR/USD"],
                params={"interval": "1day", "outputsize": 3},
            )  # fmt: skip

    response = asyncio.run(main())
    per = response.outcome.per_symbol
    assert response.outcome.ok
    assert response.outcome.is_batch
    assert response.credits == 3
    assert per["AAPL"].ok
    assert per["EUR/USD"].ok
    assert per["AAPL"].rows == 3
    assert isinstance(per["NOPE123"].error, RequestError)
    assert response.outcome.failed_symbols == ["NOPE123"]
    assert response.params["symbol"] == "AAPL,NOPE123,EUR/USD"


def test_legacy_errors_with_http_200_are_still_errors(cl_simulator: Callable[..., Any]) -> None:
    server = cl_simulator(legacy_errors=True, api_key=KEY)

    async def main() -> tuple[Response, Response]:
        async with cl_client(server.url) as client:
            bad_symbol = await client.fetch("quote", symbols=["NOPE123"])
            bad_interval = await client.fetch(
                "time_series", symbols=["AAPL"], params={"interval": "1ms"}
            )
        return bad_symbol, bad_interval

    bad_symbol, bad_interval = asyncio.run(main())
    for response in (bad_symbol, bad_interval):
        assert response.status_code == 200
        assert response.attempts == 1
        assert isinstance(response.outcome.error, RequestError)
        assert not response.outcome.per_symbol[response.symbols[0]].ok
    assert "interval" in str(bad_interval.outcome.error)

    async def wrong_key() -> None:
        async with cl_client(server.url, api_key="wrong-key-xyz") as client:
            await client.fetch("price", symbols=["AAPL"])

    with pytest.raises(AuthError):
        asyncio.run(wrong_key())


def test_401_stops_with_a_clear_message_and_no_key(
    cl_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "sk-wrong-SECRET-987"
    rec = cl_Recorder()

    async def main() -> None:
        async with cl_client(cl_server.url, rec, api_key=secret, max_attempts=5) as client:
            await client.fetch("quote", symbols=["AAPL"])

    caplog.set_level(logging.DEBUG)
    with pytest.raises(AuthError) as info:
        asyncio.run(main())
    assert str(info.value).startswith(AUTH_MESSAGE)
    assert secret not in str(info.value)
    assert secret not in caplog.text
    assert len(rec.responses) == 1
    assert rec.responses[0].status_code == 401
    assert all(secret not in url for url in rec.urls)


def test_retries_injected_faults_then_succeeds(cl_simulator: Callable[..., Any]) -> None:
    server = cl_simulator(error_rate=0.5, faults=("500", "502", "truncated"), seed=3)
    rec = cl_Recorder()

    async def main() -> list[Response]:
        async with cl_client(server.url, rec, max_attempts=12) as client:
            return [await client.fetch("price", symbols=["AAPL"]) for _ in range(12)]

    responses = asyncio.run(main())
    assert all(r.outcome.ok for r in responses)
    failed = [r for r in rec.responses if not r.outcome.ok]
    assert failed, "the simulator injected no fault"
    assert {r.status_code for r in failed} <= {200, 500, 502}
    assert len(rec.responses) == len(responses) + len(failed)  # on_response saw every attempt
    stats = server.stats()
    assert stats["requests"] == len(rec.responses)


def test_gives_up_after_max_attempts(cl_simulator: Callable[..., Any]) -> None:
    server = cl_simulator(error_rate=1.0, faults=("500",))
    rec = cl_Recorder()

    async def main() -> tuple[Response, dict[str, Any]]:
        async with cl_client(server.url, rec, max_attempts=4) as client:
            response = await client.fetch("quote", symbols=["AAPL"])
            return response, client.stats()

    started = time.monotonic()
    response, stats = asyncio.run(main())
    assert time.monotonic() - started < 5
    assert isinstance(response.outcome.error, ServerError)
    assert response.attempts == 4
    assert len(rec.responses) == 4
    assert server.stats()["requests"] == 4
    assert stats["retries"] == 3
    assert stats["responses_by_status"] == {"500": 4}


def test_timeouts_are_retried_then_raise_without_an_answer(
    cl_simulator: Callable[..., Any],
) -> None:
    server = cl_simulator(error_rate=1.0, faults=("timeout",), timeout_seconds=5.0)
    rec = cl_Recorder()

    async def main() -> None:
        async with cl_client(server.url, rec, max_attempts=3, read_timeout=0.2) as client:
            await client.fetch("price", symbols=["AAPL"])

    with pytest.raises(TransportError, match="no answer") as info:
        asyncio.run(main())
    assert KEY not in str(info.value)
    assert len(rec.urls) == 3
    assert rec.responses == []


def test_connection_refused_raises_unreachable_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before use: nobody listens there

    async def main() -> dict[str, Any]:
        async with cl_client(f"http://127.0.0.1:{port}", max_attempts=2) as client:
            try:
                await client.fetch("price", symbols=["AAPL"])
            finally:
                stats = client.stats()
        return stats

    with pytest.raises(UnreachableError, match="connection refused") as info:
        asyncio.run(main())
    assert KEY not in str(info.value)
    assert "read_timeout" not in str(info.value), "a refused connection is not a slow answer"


def test_server_daily_limit_raises(cl_simulator: Callable[..., Any]) -> None:
    server = cl_simulator(daily_credits=3)
    rec = cl_Recorder()

    async def main() -> None:
        async with cl_client(server.url, rec) as client:
            await client.fetch("price", symbols=["AAPL", "MSFT"])
            await client.fetch("price", symbols=["AAPL", "MSFT"])

    with pytest.raises(DailyLimitError, match="current day"):
        asyncio.run(main())
    assert [r.status_code for r in rec.responses] == [200, 429]  # never retried


def test_client_daily_budget_raises_before_sending(cl_simulator: Callable[..., Any]) -> None:
    server = cl_simulator()

    async def main() -> None:
        async with cl_client(server.url, per_day=5) as client:
            for _ in range(3):
                await client.fetch("price", symbols=["AAPL", "MSFT"])

    with pytest.raises(DailyLimitError, match="daily budget of 5"):
        asyncio.run(main())
    assert server.stats()["requests"] == 2


def test_a_budgeted_run_never_hits_429_and_uses_the_budget(
    cl_simulator: Callable[..., Any],
) -> None:
    server = cl_simulator(credits_per_minute=20, minute_seconds=2.0)

    async def main() -> tuple[float, dict[str, Any]]:
        async with cl_client(server.url, per_minute=20, minute_seconds=2.0,
                             max_concurrency=8) as client:  # fmt: skip
            symbols = ["AAPL", "MSFT", "EUR/USD", "BTC/USD"]
            started = time.monotonic()
            await asyncio.gather(
                *(client.fetch("price", symbols=[symbols[i % 4]]) for i in range(100))
            )
            return time.monotonic() - started, client.stats()

    elapsed, stats = asyncio.run(main())
    sim_stats = server.stats()
    assert sim_stats["responses_by_status"] == {"200": 100}, sim_stats
    assert stats["rate_limited"] == 0
    assert sim_stats["credits_used"] == 100
    windows = math.ceil(elapsed / 2.0)
    assert 100 / (20 * windows) >= 0.9, (elapsed, windows)


def test_paging_matches_one_big_request_exactly(cl_simulator: Callable[..., Any]) -> None:
    server = cl_simulator()
    start = dt.datetime(2024, 4, 1)
    end = dt.datetime(2024, 6, 10)  # BTC/USD 1h: 24 bars a day -> 1680 bars

    async def main() -> tuple[list[Response], Response]:
        async with cl_client(server.url) as client:
            pages = await client.fetch_history(
                "time_series", symbol="BTC/USD", interval="1h", start=start, end=end,
                page_size=500,
            )  # fmt: skip
            big = await client.fetch(
                "time_series", symbols=["BTC/USD"],
                params={"interval": "1h", "start_date": "2024-04-01 00:00:00",
                        "end_date": "2024-06-10 00:00:00", "outputsize": 5000},
            )  # fmt: skip
            return pages, big

    pages, big = asyncio.run(main())
    expected = big.outcome.payload["values"]
    assert len(expected) == 1680
    assert [p.outcome.per_symbol["BTC/USD"].rows for p in pages] == [500, 500, 500, 180]
    assert pages[0].params["end_date"] == "2024-06-10 00:00:00"
    for prev, page in itertools.pairwise(pages):
        assert page.params["end_date"] == prev.outcome.payload["values"][-1]["datetime"]
    merged = dedupe_values(pages)
    assert merged == expected
    assert merged[-1]["datetime"] == "2024-04-01 00:00:00"


def test_paging_stops_cleanly_at_the_start_of_history(cl_simulator: Callable[..., Any]) -> None:
    server = cl_simulator()

    async def main() -> list[Response]:
        async with cl_client(server.url) as client:
            # 1000 bars exactly: two full pages, the second ends at start
            return await client.fetch_history(
                "time_series", symbol="BTC/USD", interval="1h",
                start=dt.date(2024, 5, 1), end=dt.datetime(2024, 6, 11, 16), page_size=500,
            )  # fmt: skip

    pages = asyncio.run(main())
    assert all(p.outcome.ok for p in pages)
    rows = dedupe_values(pages)
    assert len(rows) == sum(p.outcome.per_symbol["BTC/USD"].rows for p in pages)
    assert rows[-1]["datetime"] == "2024-05-01 00:00:00"


def test_misuse_is_a_config_error_before_anything_is_sent() -> None:
    async def main(call: str) -> None:
        async with cl_client("http://127.0.0.1:9") as client:
            if call == "unknown":
                await client.fetch("tim_series", symbols=["AAPL"])
            elif call == "batch":
                await client.fetch("rsi", symbols=["AAPL", "MSFT"], params={"interval": "1day"})
            elif call == "interval":
                await client.fetch("time_series", symbols=["AAPL"])
            elif call == "key":
                await client.fetch("quote", symbols=["AAPL"], params={"apikey": "x"})
            elif call == "history":
                await client.fetch_history("quote", symbol="A", interval="1day", start=None,
                                           end=None)  # fmt: skip

    expected = {
        "unknown": "did you mean 'time_series'",
        "batch": "one symbol per request",
        "interval": "interval",
        "key": "Authorization header",
        "history": "no history",
    }
    for call, match in expected.items():
        with pytest.raises(ConfigError, match=match):
            asyncio.run(main(call))


def test_from_settings_uses_the_budget_and_never_shows_the_key() -> None:
    from dataflow.config import TwelveDataSettings

    settings = TwelveDataSettings(api_key=KEY, max_concurrency=3)
    client = TwelveDataClient.from_settings(settings, base_url="http://127.0.0.1:9")
    assert client.limiter.per_minute == 8
    assert client.limiter.per_day == 800
    assert KEY not in repr(client)
    assert KEY not in str(client.stats())
    asyncio.run(client.aclose())


def test_an_unexpected_429_waits_a_window_and_adopts_the_servers_limit(
    cl_simulator: Callable[..., Any],
) -> None:
    server = cl_simulator(credits_per_minute=2, minute_seconds=1.0)
    rec = cl_Recorder()

    async def main() -> TwelveDataClient:
        # the client does not know the plan: the first 429 teaches it
        async with cl_client(server.url, rec, per_minute=None, minute_seconds=1.0) as client:
            for _ in range(6):
                response = await client.fetch("price", symbols=["AAPL"])
                assert response.outcome.ok
            return client

    started = time.monotonic()
    client = asyncio.run(main())
    assert time.monotonic() - started >= 1.0  # waited for the next window, did not hammer
    assert [r.status_code for r in rec.responses].count(429) == 1
    assert client.limiter.per_minute == 2
    assert client.stats()["rate_limited"] == 1
    assert server.stats()["responses_by_status"] == {"200": 6, "429": 1}


def test_an_empty_page_after_a_full_one_ends_the_history(cl_simulator: Callable[..., Any]) -> None:
    server = cl_simulator()
    rec = cl_Recorder()

    async def main() -> list[Response]:
        async with cl_client(server.url, rec) as client:
            # 9 sessions from Mon 3 to Thu 13 June; before them only a weekend until start
            return await client.fetch_history(
                "time_series", symbol="AAPL", interval="1day",
                start=dt.date(2024, 6, 1), end=dt.date(2024, 6, 14), page_size=9,
            )  # fmt: skip

    pages = asyncio.run(main())
    assert [p.outcome.per_symbol["AAPL"].rows for p in pages] == [9]
    assert [r.status_code for r in rec.responses] == [200, 400]  # seen, stored, not an error
    assert rec.responses[1].params["end_date"] == "2024-06-03"
    assert [v["datetime"] for v in dedupe_values(pages)][-1] == "2024-06-03"
