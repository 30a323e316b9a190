"""A host that cannot be connected to: bounded attempts, a circuit that opens, no credit spent,
and one error naming the cause — for a closed port, a name that does not resolve and a TLS
handshake with a plain-HTTP server."""

from __future__ import annotations

import asyncio
import http.server
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from dataflow.errors import UnreachableError
from dataflow.sources.twelvedata.breaker import CircuitBreaker
from dataflow.sources.twelvedata.client import TwelveDataClient
from dataflow.sources.twelvedata.ratelimit import CreditLimiter


def br_closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again before use: nobody listens there


@pytest.fixture
def br_plain_http() -> Iterator[str]:
    """A plain-HTTP server on loopback, to be spoken to in https."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def br_fetch_all(url: str, requests: int, **kw: Any) -> tuple[list[BaseException], dict[str, Any]]:
    """Send ``requests`` one-credit requests 4 at a time; every error and the client's stats."""

    async def main() -> tuple[list[BaseException], dict[str, Any]]:
        limiter = CreditLimiter(8, 800, window=60)
        async with TwelveDataClient(
            base_url=url, api_key="k", per_minute=8, per_day=800, limiter=limiter,
            backoff_base=0.05, backoff_max=0.2, connect_timeout=2, seed=1, **kw,
        ) as client:  # fmt: skip
            results = await asyncio.gather(
                *(client.fetch("price", symbols=[f"S{i}"]) for i in range(requests)),
                return_exceptions=True,
            )
            stats = client.stats()
        errors = [r for r in results if isinstance(r, BaseException)]
        return errors, stats

    return asyncio.run(main())


@pytest.mark.parametrize(
    ("kind", "cause"),
    [
        ("refused", "connection refused"),
        ("dns", "does not resolve"),
        ("tls", "TLS handshake failed"),
    ],
)
def test_a_dead_host_fails_fast_spends_nothing_and_says_why(
    kind: str, cause: str, br_plain_http: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = {
        "refused": f"http://127.0.0.1:{br_closed_port()}",
        "dns": "http://nowhere.invalid",
        "tls": br_plain_http,
    }[kind]
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="dataflow"):
        errors, stats = br_fetch_all(url, 40)
    elapsed = time.monotonic() - started
    assert len(errors) == 40
    assert all(isinstance(e, UnreachableError) for e in errors), errors[:3]
    message = str(errors[0])
    assert message.startswith(f"cannot connect to {url}: ")
    assert cause in message
    assert "check sources.twelvedata.base_url / your network" in message
    # 8 credits a minute: were unsent attempts charged, the 9th would wait a whole minute
    assert elapsed < 10, f"{elapsed:.1f} s"
    assert stats["credits_used"] == 0
    assert stats["limiter"]["used_today"] == 0
    assert stats["limiter"]["in_flight"] == 0
    assert stats["limiter"]["waits"] == 0, "no request waited for credits nobody spent"
    assert stats["connect_errors"] <= 8, "the circuit opened after a few attempts, not 40 x 5"
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) <= 2, [r.getMessage() for r in lines]


def test_the_circuit_half_opens_after_its_cooldown_and_closes_on_a_connection() -> None:
    now = [0.0]
    breaker = CircuitBreaker(threshold=2, cooldown=10, clock=lambda: now[0])
    host = "http://h:1"
    assert not breaker.failure(host, "connection refused")
    breaker.check(host)  # one failure: still closed
    assert breaker.failure(host, "connection refused")
    with pytest.raises(UnreachableError, match="h:1: connection refused"):
        breaker.check(host)
    now[0] = 10.0
    breaker.check(host)  # half-open: one probe may go
    assert not breaker.failure(host, "connection refused"), "re-opened, not newly opened"
    assert breaker.is_open(host)
    now[0] = 20.0
    breaker.success(host)
    assert not breaker.is_open(host)


def test_unsent_credits_go_back_to_the_window_and_the_day() -> None:
    async def main() -> tuple[float, int]:
        limiter = CreditLimiter(per_minute=8, per_day=10)
        ticket = await limiter.acquire(8)
        limiter.complete(ticket, charged=False, sent=False)
        started = time.monotonic()
        again = await asyncio.wait_for(limiter.acquire(8), timeout=5)
        limiter.complete(again)
        return time.monotonic() - started, limiter.used_today

    waited, used = asyncio.run(main())
    assert waited < 0.5
    assert used == 8, "only the request that was sent counts against the day"
