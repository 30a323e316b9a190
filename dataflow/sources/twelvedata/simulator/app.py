"""The simulator's ASGI app: auth, credits, faults, batch shapes and stats around the endpoints.

Every API request goes through the same steps, in this order:

1. count it (``/simulator/stats``);
2. auth — when a key is configured, ``Authorization: apikey K`` or ``?apikey=K`` must match (401);
3. unknown path -> 404; more than 120 symbols -> 414;
4. fault injection at ``error_rate`` (seeded): ``500`` JSON, ``502`` HTML, ``truncated`` (200 with
   half a JSON body), ``timeout`` (stall ``timeout_seconds``, then answer), ``slow`` (answer after
   300 ms); opt-in kinds (:data:`EXTRA_FAULT_KINDS`): ``429`` (a rate-limit answer although credits
   are left: a 429 storm) and ``reset`` (the TCP connection is aborted with an RST, no answer).
   Faulted requests consume no credits;
5. credits — weight x symbols must fit the minute window and the day (429 with the API's texts);
   errors after this point (bad symbol, no data, bad parameter) have been charged;
6. the endpoint, once per symbol: one symbol -> its payload; several -> an object keyed by the
   symbols as requested, each value a payload or an error object.

``legacy_errors`` answers every JSON error with HTTP 200 (the 502 HTML page keeps its status).
Every answer carries ``api-credits-used`` and ``api-credits-left``.

Example:
    >>> from starlette.testclient import TestClient  # doctest: +SKIP
    >>> TestClient(create_app(SimulatorConfig())).get("/price?symbol=AAPL").json()  # doctest: +SKIP
    {'price': '201.23000'}
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import json
import random
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dataflow.sources.twelvedata.simulator import reference
from dataflow.sources.twelvedata.simulator.catalog import default_catalog
from dataflow.sources.twelvedata.simulator.credits import UNLIMITED_LEFT, CreditLedger, cost
from dataflow.sources.twelvedata.simulator.endpoints import (
    MARKET_ENDPOINTS,
    Context,
    SymbolEndpoint,
)
from dataflow.sources.twelvedata.simulator.indicators import INDICATORS
from dataflow.sources.twelvedata.simulator.market import Market
from dataflow.sources.twelvedata.simulator.params import (
    BAD_SYMBOL,
    MAX_SYMBOLS,
    ApiProblem,
    Query,
    error_body,
)

FAULT_KINDS = ("500", "502", "timeout", "truncated", "slow")
"""The kinds drawn from by default."""
EXTRA_FAULT_KINDS = ("429", "reset")
"""Kinds drawn only when named in ``faults`` (so seeded default draws stay as they were)."""
STORM_429 = (
    "You have run out of API credits for the current minute. 9 API credits were used, with the "
    "current limit being 8. Wait for the next minute or consider switching to a higher tier plan "
    "at https://twelvedata.com/pricing"
)
SLOW_SECONDS = 0.3
BAD_KEY = (
    "**apikey** parameter is incorrect or not specified. You can get your free API key instantly "
    "following this link: https://twelvedata.com/pricing. If you believe that everything is "
    "correct, you can contact us at https://twelvedata.com/contact/customer"
)
BAD_GATEWAY = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    "</body>\r\n</html>\r\n"
)


@dataclass(frozen=True)
class SimulatorConfig:
    """How the simulator behaves. The defaults: no key, no limits, no faults, real time.

    Example:
        >>> SimulatorConfig(credits_per_minute=8, daily_credits=800).error_rate
        0.0
    """

    api_key: str | None = None
    """None: accept any or no key; else require it (401 otherwise)."""
    credits_per_minute: int | None = None
    """Credits per minute window; None = unlimited."""
    daily_credits: int | None = None
    """Credits per UTC day; None = unlimited."""
    minute_seconds: float = 60.0
    """Length of the credit window (aligned to the epoch)."""
    error_rate: float = 0.0
    """Fraction of requests answered with an injected fault."""
    faults: tuple[str, ...] = FAULT_KINDS
    """Fault kinds drawn from when injecting (any of FAULT_KINDS and EXTRA_FAULT_KINDS)."""
    latency_ms: float = 0.0
    """Added to every response."""
    legacy_errors: bool = False
    """Answer errors with HTTP 200 and the error body, as the API historically did."""
    seed: int = 42
    """Seed of the market data and of the fault draws."""
    now: dt.datetime | None = None
    """Fixed clock for the data (UTC); None = real time. The newest bar is the one open at now."""
    timeout_seconds: float = 60.0
    """How long an injected 'timeout' fault stalls before answering."""

    def __repr__(self) -> str:
        shown = "None" if self.api_key is None else "'***'"
        return (
            f"SimulatorConfig(api_key={shown}, credits_per_minute={self.credits_per_minute}, "
            f"daily_credits={self.daily_credits}, error_rate={self.error_rate}, seed={self.seed})"
        )


_REQUEST_ENDPOINTS = {
    "symbol_search": reference.symbol_search,
    "market_state": reference.market_state,
    "earliest_timestamp": reference.earliest_timestamp,
}
_SYMBOL_ENDPOINTS: dict[str, SymbolEndpoint] = {
    **MARKET_ENDPOINTS,
    **reference.FUNDAMENTAL_ENDPOINTS,
}
_NEEDS_INTERVAL = {"time_series", *INDICATORS}


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


class Simulator:
    """State shared by the requests of one app: data, credits, fault draws and stats."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.catalog = default_catalog()
        self.market = Market(config.seed)
        self.ledger = CreditLedger(
            config.credits_per_minute, config.daily_credits, config.minute_seconds
        )
        self.stopping = threading.Event()
        self.connections: Callable[[], Iterable[Any]] | None = None
        """The server's open connections (uvicorn protocols), for the ``reset`` fault."""
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Zero the stats and credit windows; restart the fault draws from the seed."""
        with self._lock:
            self._rng = random.Random(self.config.seed)
            self._requests = 0
            self._statuses: Counter[str] = Counter()
            self._faults: Counter[str] = Counter()
            self._endpoints: Counter[str] = Counter()
        self.ledger.reset()

    def stats(self) -> dict[str, Any]:
        """``{"requests", "credits_used", "responses_by_status", "faults", "by_endpoint"}``."""
        with self._lock:
            return {
                "requests": self._requests,
                "credits_used": self.ledger.total,
                "responses_by_status": dict(self._statuses),
                "faults": dict(self._faults),
                "by_endpoint": dict(self._endpoints),
            }

    def now(self) -> dt.datetime:
        """The data clock (fixed when configured)."""
        if self.config.now is None:
            return dt.datetime.now(dt.UTC)
        fixed = self.config.now
        return fixed if fixed.tzinfo is not None else fixed.replace(tzinfo=dt.UTC)

    def _draw_fault(self) -> str | None:
        with self._lock:
            if not self.config.faults or self._rng.random() >= self.config.error_rate:
                return None
            kind = self._rng.choice(self.config.faults)
            self._faults[kind] += 1
            return kind

    def _authorized(self, request: Request, q: Query) -> bool:
        expected = self.config.api_key
        if expected is None:
            return True
        header = request.headers.get("authorization", "")
        given = header[7:].strip() if header.lower().startswith("apikey ") else q.get("apikey")
        return hmac.compare_digest(given.encode(), expected.encode())

    def _respond(self, status: int, body: bytes, media: str = "application/json") -> Response:
        if self.config.legacy_errors and status >= 400 and media == "application/json":
            status = 200
        used, left, _ = self.ledger.usage(time.time())
        with self._lock:
            self._statuses[str(status)] += 1
        headers = {"api-credits-used": str(used), "api-credits-left": str(left)}
        return Response(body, status_code=status, media_type=media, headers=headers)

    async def handle(self, endpoint: str, request: Request) -> Response:
        """Answer one API request (see the module docstring for the steps)."""
        q = Query(request.query_params)
        with self._lock:
            self._requests += 1
            self._endpoints[endpoint] += 1
        if self.config.latency_ms > 0:
            await asyncio.sleep(self.config.latency_ms / 1000)
        if not self._authorized(request, q):
            return self._respond(401, _dumps(error_body(401, BAD_KEY)))
        symbol_bound = endpoint in _SYMBOL_ENDPOINTS
        known = symbol_bound or endpoint in _REQUEST_ENDPOINTS or endpoint in reference.CATALOGUES
        if not known and endpoint != "api_usage":
            message = f"Endpoint /{endpoint} not found. See https://twelvedata.com/docs"
            return self._respond(404, _dumps(error_body(404, message)))
        symbols = q.symbols() if symbol_bound else []
        if len(symbols) > MAX_SYMBOLS:
            message = "Input parameter array exceeds the allowed length"
            return self._respond(414, _dumps(error_body(414, message)))
        fault = self._draw_fault()
        if fault == "500":
            return self._respond(500, _dumps(error_body(500, "Internal server error")))
        if fault == "502":
            return self._respond(502, BAD_GATEWAY.encode(), "text/html")
        if fault == "429":
            return self._respond(429, _dumps(error_body(429, STORM_429)))
        if fault == "reset" and await self._abort(request):
            return Response(b"", status_code=500)  # never delivered: the connection is gone
        if fault == "reset":  # no server to reach the socket through (a test client)
            return self._respond(502, BAD_GATEWAY.encode(), "text/html")
        if fault == "timeout":
            await self._stall(request)
        elif fault == "slow":
            await asyncio.sleep(SLOW_SECONDS)
        if fault is None:
            rejection = self.ledger.charge(cost(endpoint, len(symbols)), time.time())
            if rejection is not None:
                return self._respond(429, _dumps(error_body(429, rejection.message)))
        try:
            payload = self._payload(endpoint, symbols, q)
            status, body = 200, _dumps(payload)
        except ApiProblem as problem:
            status, body = problem.code, _dumps(problem.body())
        if fault == "truncated":
            status, body = 200, body[: len(body) // 2]
        return self._respond(status, body)

    async def _abort(self, request: Request) -> bool:
        """Abort the request's TCP connection with an RST (SO_LINGER 0); False if unreachable."""
        client = request.scope.get("client")
        if self.connections is None or client is None:
            return False
        for protocol in list(self.connections()):
            transport = getattr(protocol, "transport", None)
            if transport is None or tuple(getattr(protocol, "client", None) or ()) != tuple(client):
                continue
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
            await asyncio.sleep(0.01)  # let the server see the connection is lost
            return True
        return False

    async def _stall(self, request: Request) -> None:
        """Wait ``timeout_seconds``, or less when the server stops or the client goes away."""
        deadline = time.monotonic() + self.config.timeout_seconds
        while not self.stopping.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
            if await request.is_disconnected():
                return

    def _payload(self, endpoint: str, symbols: list[str], q: Query) -> Any:
        ctx = Context(self.catalog, self.market, self.now())
        if endpoint == "api_usage":
            return self._usage()
        if endpoint in reference.CATALOGUES:
            return reference.catalogue(endpoint, q, ctx)
        if endpoint in _REQUEST_ENDPOINTS:
            return _REQUEST_ENDPOINTS[endpoint](q, ctx)
        handler = _SYMBOL_ENDPOINTS[endpoint]
        if endpoint in _NEEDS_INTERVAL:
            q.interval()  # a bad interval is one top-level error, even in a batch
        if len(symbols) <= 1:
            inst = self.catalog.lookup(symbols[0]) if symbols else None
            if inst is None:
                raise ApiProblem(404, BAD_SYMBOL)
            return handler(inst, q, ctx)
        out: dict[str, Any] = {}
        for symbol in symbols:
            inst = self.catalog.lookup(symbol)
            try:
                if inst is None:
                    raise ApiProblem(404, BAD_SYMBOL)
                out[symbol] = handler(inst, q, ctx)
            except ApiProblem as problem:
                out[symbol] = problem.body()
        return out

    def _usage(self) -> dict[str, Any]:
        used, _, daily = self.ledger.usage(time.time())
        out: dict[str, Any] = {
            "timestamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
            "current_usage": used,
            "plan_limit": self.config.credits_per_minute or UNLIMITED_LEFT,
        }
        if self.config.daily_credits is not None:
            out.update(daily_usage=daily, plan_daily_limit=self.config.daily_credits)
        return out


def create_app(config: SimulatorConfig) -> Starlette:
    """The Starlette app of a simulator; its state is ``app.state.simulator``.

    Example:
        >>> app = create_app(SimulatorConfig(seed=7))
        >>> app.state.simulator.stats()["requests"]
        0
    """
    simulator = Simulator(config)

    async def api(request: Request) -> Response:
        return await simulator.handle(request.path_params["endpoint"].strip("/"), request)

    async def stats(_: Request) -> Response:
        return Response(_dumps(simulator.stats()), media_type="application/json")

    async def reset(_: Request) -> Response:
        simulator.reset()
        return Response(_dumps({"status": "ok"}), media_type="application/json")

    app = Starlette(
        routes=[
            Route("/simulator/stats", stats, methods=["GET"]),
            Route("/simulator/reset", reset, methods=["POST"]),
            Route("/{endpoint:path}", api, methods=["GET"]),
        ]
    )
    app.state.simulator = simulator
    return app


def simulator_of(app: Any) -> Simulator:
    """The :class:`Simulator` behind an app made by :func:`create_app`."""
    sim = app.state.simulator
    assert isinstance(sim, Simulator)
    return sim
