"""The asynchronous HTTP client of the Twelve Data API.

One :meth:`TwelveDataClient.fetch` is one logical request: credits are reserved with the
:class:`~dataflow.sources.twelvedata.ratelimit.CreditLimiter`, the answer is classified from its
status *and* body (:mod:`~dataflow.sources.twelvedata.classify`), and transient failures are
retried::

    429 for the minute      wait one whole window (never hammer), then retry
    429 for the day         raise DailyLimitError (stop for the day)
    401                     raise AuthError (stop the run)
    400 403 404 414         return: the request can never succeed
    5xx, timeout, network,  exponential backoff with jitter, at most ``max_attempts`` attempts
    non-JSON body
    no connection at all    the same backoff, but after ``breaker_threshold`` consecutive
    (refused, DNS, TLS)     attempts the host's circuit opens: UnreachableError at once for
                            every request left, unsent, and no credits are spent on any of them

The API key travels only in the ``Authorization: apikey …`` header; it is never put in a URL, a log
line, an error message or a :class:`Response`.

Example:
    >>> async def main():                                   # doctest: +SKIP
    ...     async with TwelveDataClient(base_url="http://127.0.0.1:8000", api_key=None,
    ...                                 per_minute=8, per_day=800) as client:
    ...         response = await client.fetch("quote", symbols=["AAPL", "MSFT"])
    ...         return {s: r.ok for s, r in response.outcome.per_symbol.items()}
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx

from dataflow.errors import (
    AuthError,
    ConfigError,
    DailyLimitError,
    RateLimitError,
    RequestError,
    TransientError,
    TransportError,
    UnreachableError,
)
from dataflow.sources.twelvedata.breaker import (
    CONNECT_ERRORS,
    CircuitBreaker,
    connect_reason,
    unreachable,
)
from dataflow.sources.twelvedata.classify import Outcome, classify
from dataflow.sources.twelvedata.endpoints import Endpoint, EndpointKind, cost, get_endpoint
from dataflow.sources.twelvedata.ratelimit import CreditLimiter

if TYPE_CHECKING:
    from dataflow.config import TwelveDataSettings

log = logging.getLogger("dataflow.sources.twelvedata")

EventHook = Callable[..., Any]
_LIMIT_IN_MESSAGE = re.compile(r"current limit being (\d+)")
_NO_DATA = "No data is available"


@dataclass
class Response:
    """One answer of the API, as received (every attempt that reached us is one ``Response``).

    Attributes:
        endpoint: endpoint name (``time_series``).
        path: URL path (``/time_series``).
        params: the query parameters sent, never the key.
        symbols: the symbols requested.
        status_code: the HTTP status.
        headers: response headers.
        body: the body, verbatim.
        received_at: when the answer arrived (UTC).
        elapsed_s: seconds from send to answer.
        attempts: which attempt of the logical request this answer belongs to (1-based).
        credits: the credits the request was charged as.
        outcome: what the answer means.
        request_id: one id per logical request (shared by its attempts).
    """

    endpoint: str
    path: str
    params: dict[str, str]
    symbols: list[str]
    status_code: int
    headers: dict[str, str]
    body: bytes
    received_at: dt.datetime
    elapsed_s: float
    attempts: int
    credits: int
    outcome: Outcome
    request_id: str


class TwelveDataClient:
    """Pooled, rate-limited, retrying client of the Twelve Data REST API.

    Args:
        base_url: API root, e.g. ``https://api.twelvedata.com`` or the simulator's URL.
        api_key: the key, sent only in the ``Authorization`` header; ``None`` sends none.
        per_minute: credits per window (``None``: no limit).
        per_day: credits per UTC day (``None``: no limit).
        minute_seconds: the credit window's length (60 on the real API).
        max_concurrency: requests in flight at once (and pooled connections).
        connect_timeout: seconds to open a connection.
        read_timeout: seconds to wait for an answer.
        max_attempts: attempts per logical request, the first included.
        backoff_base: first backoff in seconds; doubles each retry.
        backoff_max: longest single backoff in seconds.
        on_response: called with every answer received, errors included.
        transport: an httpx transport (tests, proxies).
        event_hooks: httpx event hooks, e.g. ``{"request": [check]}``.
        limiter: a shared limiter (default: one built from the budgets above).
        seed: seed of the backoff jitter (``None``: random).
        breaker: a shared circuit breaker (default: one of ``breaker_threshold``).
        breaker_threshold: consecutive attempts that cannot connect before the host's circuit
            opens and every request left fails at once.

    Example:
        >>> client = TwelveDataClient(base_url="http://127.0.0.1:1", api_key="k",
        ...                           per_minute=8, per_day=800)
        >>> client.stats()["requests"]
        0
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None,
        per_minute: int | None,
        per_day: int | None,
        minute_seconds: float = 60.0,
        max_concurrency: int = 4,
        connect_timeout: float = 10,
        read_timeout: float = 30,
        max_attempts: int = 5,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        on_response: Callable[[Response], None] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        event_hooks: Mapping[str, list[EventHook]] | None = None,
        limiter: CreditLimiter | None = None,
        seed: int | None = None,
        breaker: CircuitBreaker | None = None,
        breaker_threshold: int = 3,
    ) -> None:
        if max_concurrency < 1 or max_attempts < 1:
            raise ConfigError("max_concurrency and max_attempts must be at least 1")
        self._api_key = api_key or None
        self._secrets = (self._api_key,) if self._api_key else ()
        self.base_url = base_url.rstrip("/")
        self.breaker = breaker or CircuitBreaker(threshold=breaker_threshold)
        self._host = _host_of(self.base_url)
        self._connect_timeout = connect_timeout
        self.limiter = limiter or CreditLimiter(per_minute, per_day, window=minute_seconds)
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.on_response = on_response
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._rng = random.Random(seed)
        headers = {"Accept": "application/json", "User-Agent": "dataflow-etl"}
        if self._api_key:
            # the header the docs recommend; a key in the query string would end up in logs
            headers["Authorization"] = f"apikey {self._api_key}"
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            limits=httpx.Limits(
                max_connections=max_concurrency, max_keepalive_connections=max_concurrency
            ),
            transport=transport,
            event_hooks={k: list(v) for k, v in (event_hooks or {}).items()},
            follow_redirects=False,
        )
        self._requests = 0
        self._attempts = 0
        self._by_status: Counter[str] = Counter()
        self._rate_limited = 0
        self._bytes = 0
        self._transport_errors = 0
        self._connect_errors = 0
        self._started: float | None = None

    def __repr__(self) -> str:
        key = "'***'" if self._api_key else "None"
        return f"TwelveDataClient(base_url={self.base_url!r}, api_key={key})"

    @classmethod
    def from_settings(
        cls, s: TwelveDataSettings, *, base_url: str | None = None, **kw: Any
    ) -> TwelveDataClient:
        """A client configured from ``sources.twelvedata`` settings.

        Args:
            s: the settings.
            base_url: overrides ``s.base_url`` (the embedded simulator's URL).
            **kw: any other constructor argument, overriding the settings.

        Example:
            >>> from dataflow.config import TwelveDataSettings
            >>> TwelveDataClient.from_settings(TwelveDataSettings(), base_url="http://127.0.0.1:9")
            TwelveDataClient(base_url='http://127.0.0.1:9', api_key=None)
        """
        per_minute, per_day = s.effective_budget()
        args: dict[str, Any] = {
            "base_url": base_url or s.base_url,
            "api_key": None if s.api_key is None else s.api_key.get_secret_value(),
            "per_minute": per_minute,
            "per_day": per_day,
            "minute_seconds": s.minute_seconds,
            "max_concurrency": s.max_concurrency,
            "connect_timeout": s.connect_timeout,
            "read_timeout": s.read_timeout,
            "max_attempts": s.retries.max_attempts,
            "backoff_base": s.retries.backoff_base,
            "backoff_max": s.retries.backoff_max,
        }
        args.update(kw)
        return cls(**args)

    async def __aenter__(self) -> TwelveDataClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._http.aclose()

    # --- requests ------------------------------------------------------------------------------

    async def fetch(
        self,
        endpoint: str,
        *,
        symbols: Sequence[str] = (),
        params: Mapping[str, Any] | None = None,
    ) -> Response:
        """Send one logical request, retrying transient failures, and return the final answer.

        Args:
            endpoint: endpoint name (see ``ENDPOINTS``).
            symbols: symbols, comma-joined into one request (several only if batchable).
            params: query parameters; values are stringified, bools as ``true``/``false``.

        Returns:
            The last answer: ok, a terminal error (``outcome.error`` set), or the last transient
            error once ``max_attempts`` are spent.

        Raises:
            AuthError: the key was rejected: stop the run.
            DailyLimitError: the daily budget is spent (ours or the server's): stop for the day.
            TransportError: no answer at all after ``max_attempts`` (timeouts, connection errors).
            ConfigError: a request that cannot be sent (unknown endpoint, missing parameter).
            UnreachableError: no connection to the host could be opened (or its circuit is
                open): nothing was sent and no credits were spent.

        Example:
            >>> r = await client.fetch("time_series", symbols=["AAPL"],  # doctest: +SKIP
            ...                        params={"interval": "1day"})
        """
        ep = get_endpoint(endpoint)
        symbols = list(dict.fromkeys(symbols))
        query = self._query(ep, symbols, params or {})
        credits = cost(ep, len(symbols))
        request_id = uuid.uuid4().hex
        self._requests += 1
        if self._started is None:
            self._started = time.monotonic()
        last: Response | None = None
        failure = "no attempt made"
        connected = False  # an attempt that got as far as sending
        for attempt in range(1, self.max_attempts + 1):
            if attempt > 1:
                level = logging.INFO if connected else logging.DEBUG
                log.log(level, "%s retry %d/%d after: %s", ep.path, attempt, self.max_attempts,
                        failure)  # fmt: skip
            answer = await self._attempt(ep, query, symbols, credits, attempt, request_id)
            if isinstance(answer, _NoConnection):
                failure = answer.reason
                await self._backoff(attempt)
                continue
            connected = True
            if isinstance(answer, str):  # nothing received: timeout, connection lost
                failure = answer
                await self._backoff(attempt)
                continue
            self._record(answer)
            last = answer
            retry, failure = self._decide(answer)
            if not retry:
                return answer
            if not isinstance(answer.outcome.error, RateLimitError):
                await self._backoff(attempt)  # a 429 waits in the limiter instead
        if last is not None:
            log.warning("%s gave up after %d attempts: %s", ep.path, self.max_attempts, failure)
            return last
        if not connected:
            raise unreachable(self._host, failure)
        raise TransportError(
            f"{ep.path}: no answer from {self.base_url} after {self.max_attempts} attempts "
            f"(last: {failure}) — check the network or raise sources.twelvedata.read_timeout"
        )

    async def _attempt(
        self,
        ep: Endpoint,
        query: dict[str, str],
        symbols: list[str],
        credits: int,
        attempt: int,
        request_id: str,
    ) -> Response | str | _NoConnection:
        """Send once: the answer, or why none came (the reservation is settled either way)."""
        self.breaker.check(self._host)
        async with self._semaphore:
            self.breaker.check(self._host)  # it may have opened while we waited for a slot
            ticket = await self.limiter.acquire(credits)
            try:
                self.breaker.check(self._host)  # ... or for credits
            except UnreachableError:
                self.limiter.complete(ticket, charged=False, sent=False)
                raise
            self._attempts += 1
            sent = time.monotonic()
            try:
                http = await self._http.get(ep.path, params=query)
                body = await http.aread()
            except CONNECT_ERRORS as exc:
                # Nothing reached the server: the credits go back, to the day and the window.
                self.limiter.complete(ticket, charged=False, sent=False)
                self._transport_errors += 1
                self._connect_errors += 1
                reason = connect_reason(exc, connect_timeout=self._connect_timeout)
                log.debug("%s attempt %d: cannot connect: %s", ep.path, attempt, reason)
                if self.breaker.failure(self._host, reason):
                    log.warning(
                        "cannot connect to %s (%s): %d attempts in a row failed; the requests "
                        "left fail at once, unsent",
                        self._host, reason, self.breaker.threshold,
                    )  # fmt: skip
                return _NoConnection(reason)
            except (httpx.TransportError, httpx.DecodingError) as exc:
                self.breaker.success(self._host)  # connected: the failure is the answer's
                self.limiter.complete(ticket, charged=False)
                self._transport_errors += 1
                failure = self._describe(exc)
                log.warning("%s attempt %d: %s", ep.path, attempt, failure)
                return failure
            except BaseException:  # cancelled mid-request: never leak the reservation
                self.limiter.complete(ticket, charged=False)
                raise
            self.breaker.success(self._host)
            elapsed = time.monotonic() - sent
            outcome = classify(
                http.status_code, body, endpoint=ep.name, requested=symbols,
                secrets=self._secrets, expect_json=query.get("format", "json").lower() != "csv",
            )  # fmt: skip
            # the server charges what it answered, not 429s, 5xx or faults (daily count only)
            charged = not isinstance(outcome.error, TransientError | AuthError)
            self.limiter.complete(ticket, charged=charged)
        return Response(
            endpoint=ep.name,
            path=ep.path,
            params=dict(query),
            symbols=list(symbols),
            status_code=http.status_code,
            headers=self._safe_headers(http.headers),
            body=body,
            received_at=dt.datetime.now(dt.UTC),
            elapsed_s=elapsed,
            attempts=attempt,
            credits=credits,
            outcome=outcome,
            request_id=request_id,
        )

    def _decide(self, response: Response) -> tuple[bool, str]:
        """(retry?, why) for one answer; raises the errors that end the run or the day."""
        outcome = response.outcome
        errors = [outcome.error] if outcome.error is not None else []
        errors += [r.error for r in outcome.per_symbol.values() if r.error is not None]
        for stop in errors:
            if isinstance(stop, AuthError | DailyLimitError):
                raise stop
        rate_limited = [e for e in errors if isinstance(e, RateLimitError)]
        if rate_limited:
            # the server's window is full (even if only one symbol of a batch says so)
            self._rate_limited += 1
            match = _LIMIT_IN_MESSAGE.search(str(rate_limited[0]))
            if match:
                self.limiter.lower_limit(int(match.group(1)))
            self.limiter.penalize()
        error = outcome.error
        if (
            error is None
            and errors
            and not any(r.ok for r in outcome.per_symbol.values())
            and all(isinstance(e, TransientError) for e in errors)
        ):
            # a batch whose every symbol failed transiently (e.g. credits ran out mid-batch)
            error = errors[0]
        if error is None or not isinstance(error, TransientError):
            return False, ""
        return True, str(error)

    async def _backoff(self, attempt: int) -> None:
        if attempt >= self.max_attempts:
            return
        self.breaker.check(self._host)  # no point waiting to retry a host known to be down
        delay = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        await asyncio.sleep(delay * self._rng.uniform(0.5, 1.5))
        self.breaker.check(self._host)

    def _query(self, ep: Endpoint, symbols: list[str], params: Mapping[str, Any]) -> dict[str, str]:
        if len(symbols) > 1 and not ep.batchable:
            raise ConfigError(
                f"{ep.name} takes one symbol per request, got {len(symbols)} — set batch size 1"
            )
        merged: dict[str, Any] = dict(ep.default_params)
        merged.update(params)
        if any(k.lower() == "apikey" for k in merged):
            raise ConfigError(
                "the API key must not be a query parameter — set sources.twelvedata.api_key "
                "(it is sent in the Authorization header)"
            )
        if symbols:
            merged["symbol"] = ",".join(symbols)
        elif ep.symbol_bound and "symbol" not in merged:
            raise ConfigError(f"{ep.name} needs a symbol — pass symbols=[...]")
        missing = [p for p in ep.required_params if merged.get(p) in (None, "")]
        if missing:
            raise ConfigError(f"{ep.name} needs parameter(s) {', '.join(missing)}")
        lower = {k.lower() for k in merged}
        if ep.kind in (EndpointKind.SERIES, EndpointKind.INDICATOR) and "timezone" not in lower:
            # Stocks are labelled in exchange time without an offset by default; UTC makes every
            # timestamp unambiguous and comparable across symbols (reference §6).
            merged["timezone"] = "UTC"
        return {k: _param(v) for k, v in merged.items() if v is not None}

    def _safe_headers(self, headers: httpx.Headers) -> dict[str, str]:
        return {
            name: "***" if any(secret in value for secret in self._secrets) else value
            for name, value in headers.items()
        }

    def _describe(self, exc: Exception) -> str:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _record(self, response: Response) -> None:
        self._by_status[str(response.status_code)] += 1
        self._bytes += len(response.body)
        log.debug(
            "%s %s -> %d (%d bytes, %.3f s, attempt %d)",
            response.path, response.params, response.status_code, len(response.body),
            response.elapsed_s, response.attempts,
        )  # fmt: skip
        if self.on_response is not None:
            self.on_response(response)

    # --- history -------------------------------------------------------------------------------

    async def fetch_history(
        self,
        endpoint: str,
        *,
        symbol: str,
        interval: str,
        start: dt.datetime | dt.date | None,
        end: dt.datetime | dt.date | None,
        params: Mapping[str, Any] | None = None,
        page_size: int = 5000,
    ) -> list[Response]:
        """Fetch ``[start, end)`` of a series, paging backwards past ``page_size`` rows.

        Each page asks for ``outputsize=page_size`` rows, newest first, with ``end_date`` = the
        oldest datetime received so far (``end_date`` is exclusive). Paging stops when a page has
        fewer than ``page_size`` rows, reaches ``start``, makes no progress, or fails. A "No data
        is available" 400 on a follow-up page just means the history ended there and is not
        returned (``on_response`` still saw it). Merge the pages with :func:`dedupe_values`.

        Aware datetimes are converted to UTC (the client asks for ``timezone=UTC``); naive ones
        are sent as they are.

        Example:
            >>> pages = await client.fetch_history("time_series", symbol="AAPL",  # doctest: +SKIP
            ...     interval="1min", start=dt.date(2024, 1, 1), end=None)
            >>> rows = dedupe_values(pages)                                      # doctest: +SKIP
        """
        ep = get_endpoint(endpoint)
        if not ep.pageable:
            raise ConfigError(f"{ep.name} has no history to page through")
        if not 1 <= page_size <= ep.max_outputsize:
            raise ConfigError(f"page_size must be 1..{ep.max_outputsize}, not {page_size}")
        base = {k: v for k, v in (params or {}).items() if k not in ("start_date", "end_date")}
        if str(base.get("order", "desc")).lower() != "desc":
            raise ConfigError("history pages backwards: order must be desc")
        base.update(interval=interval, outputsize=page_size, order="desc")
        start_s = _format_date(start) if start is not None else None
        if start_s is not None:
            base["start_date"] = start_s
        end_s = _format_date(end) if end is not None else None
        pages: list[Response] = []
        while True:
            query = dict(base)
            if end_s is not None:
                query["end_date"] = end_s
            response = await self.fetch(ep.name, symbols=[symbol], params=query)
            error = response.outcome.error
            if pages and isinstance(error, RequestError) and _NO_DATA in str(error):
                break
            pages.append(response)
            values = _values(response.outcome.payload) if response.outcome.ok else []
            if len(values) < page_size:
                break
            oldest = min(str(v["datetime"]) for v in values)
            if (start_s is not None and oldest <= start_s) or oldest == end_s:
                break
            end_s = oldest
        return pages

    def stats(self) -> dict[str, Any]:
        """Counters of this client (safe to log: no key, no URL).

        Example:
            >>> TwelveDataClient(base_url="http://127.0.0.1:1", api_key=None, per_minute=None,
            ...                  per_day=None).stats()["attempts"]
            0
        """
        return {
            "requests": self._requests,
            "attempts": self._attempts,
            "retries": self._attempts - self._requests,
            "responses_by_status": dict(self._by_status),
            "transport_errors": self._transport_errors,
            "connect_errors": self._connect_errors,
            "credits_used": self.limiter.used_total,
            "rate_limited": self._rate_limited,
            "bytes_received": self._bytes,
            "elapsed": round(time.monotonic() - self._started, 3) if self._started else 0.0,
            "limiter": self.limiter.stats(),
        }


@dataclass(frozen=True)
class _NoConnection:
    """An attempt that could not open a connection: nothing was sent."""

    reason: str


def _host_of(base_url: str) -> str:
    """``scheme://host[:port]`` of a URL, without user info or path (safe to show)."""
    url = httpx.URL(base_url)
    port = f":{url.port}" if url.port is not None else ""
    return f"{url.scheme}://{url.host}{port}"


def dedupe_values(responses: Sequence[Response]) -> list[dict[str, Any]]:
    """Merge the ``values`` of history pages: newest first, exactly once per ``datetime``.

    Example:
        >>> from dataflow.sources.twelvedata.classify import classify
        >>> def page(*days):
        ...     body = '{"meta":{},"status":"ok","values":[%s]}' % ",".join(
        ...         '{"datetime":"%s"}' % d for d in days)
        ...     out = classify(200, body, endpoint="time_series", requested=["X"])
        ...     return Response("time_series", "/time_series", {}, ["X"], 200, {}, b"",
        ...                     dt.datetime.now(dt.UTC), 0.0, 1, 1, out, "r")
        >>> [v["datetime"] for v in dedupe_values([page("03", "02"), page("02", "01")])]
        ['03', '02', '01']
    """
    seen: dict[str, dict[str, Any]] = {}
    for response in responses:
        if not response.outcome.ok:
            continue
        for value in _values(response.outcome.payload):
            seen.setdefault(str(value["datetime"]), value)
    return [seen[k] for k in sorted(seen, reverse=True)]


def _values(payload: Any) -> list[dict[str, Any]]:
    values = payload.get("values") if isinstance(payload, dict) else None
    return [v for v in values if isinstance(v, dict) and "datetime" in v] if values else []


def _format_date(value: dt.datetime | dt.date) -> str:
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return value.isoformat()


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime | dt.date):
        return _format_date(value)
    return str(value)


__all__ = ["Response", "TwelveDataClient", "dedupe_values"]
