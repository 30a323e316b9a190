"""Credit-aware rate limiting: spend the plan's credits fully without ever causing a 429.

Twelve Data counts credits per fixed minute window on *its* clock, whose phase we cannot see, and a
request is counted when it *arrives*, somewhere between the moment we send it and the moment its
answer comes back. So a request's credits count against our window from the moment it is sent until
its response time plus one window. At send time a request is admitted when::

    credits in flight + credits answered within the last window + cost <= per_minute

Every server window ``[s, s + W)`` that saw a request arrive also contains the instant just
before ``s + W``, when all those requests were live in our count at once, and our count never
exceeds ``per_minute`` — so no server window of any phase sees more than ``per_minute``. Credits
are reused one window after their answer, so long runs use ~``W / (W + latency)`` of the budget
(≈100% for a minute).

The daily budget is counted per UTC day (``day_seconds`` shortens it for tests). A request that
would exceed it raises :class:`~dataflow.errors.DailyLimitError` at once: waiting hours helps
nobody.

Example:
    >>> import asyncio
    >>> async def demo():
    ...     limiter = CreditLimiter(per_minute=8, per_day=800)
    ...     ticket = await limiter.acquire(3)
    ...     limiter.complete(ticket)
    ...     return limiter.used_total, limiter.used_today
    >>> asyncio.run(demo())
    (3, 3)
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from dataflow.errors import ConfigError, DailyLimitError

log = logging.getLogger("dataflow.sources.twelvedata")

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[Any]]


@dataclass(frozen=True)
class Ticket:
    """Credits reserved for one request, from :meth:`CreditLimiter.acquire` to ``complete``."""

    id: int
    credits: int
    sent_at: float
    day: int


class CreditLimiter:
    """Admit requests against a per-minute and a per-day credit budget.

    Args:
        per_minute: credits per window, or ``None`` for no per-minute limit.
        per_day: credits per day, or ``None`` for no daily limit.
        window: length of the credit window in seconds (60 on the real API).
        clock: monotonic time in seconds (a fake clock in tests).
        sleep: the coroutine used to wait (paired with ``clock`` in tests).
        day_used: credits already spent today (e.g. read from ``/api_usage``).
        day_seconds: length of the daily budget period (86400: the UTC day).
        day_clock: wall-clock seconds since the epoch, for the day boundary.

    Example:
        >>> limiter = CreditLimiter(per_minute=8, per_day=None)
        >>> limiter.stats()["per_minute"]
        8
    """

    def __init__(
        self,
        per_minute: int | None,
        per_day: int | None,
        *,
        window: float = 60.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        day_used: int = 0,
        day_seconds: float = 86400.0,
        day_clock: Clock = time.time,
    ) -> None:
        if per_minute is not None and per_minute < 1:
            raise ConfigError(f"credits per minute must be at least 1, not {per_minute}")
        if per_day is not None and per_day < 1:
            raise ConfigError(f"credits per day must be at least 1, not {per_day}")
        if window <= 0:
            raise ConfigError(f"the credit window must be positive, not {window}")
        self.per_minute = per_minute
        self.per_day = per_day
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._day_seconds = day_seconds
        self._day_clock = day_clock
        self._day = self._day_index()
        self.used_today = day_used
        self.used_total = 0
        self._in_flight: dict[int, Ticket] = {}
        # (expiry time, credits) of answered requests, in completion order = expiry order
        self._answered: deque[tuple[float, int]] = deque()
        self._blocked_until = -math.inf
        self._lock = asyncio.Lock()  # FIFO: a large request is not starved by small ones
        self._changed = asyncio.Event()
        self._next_id = 0
        self._waits = 0
        self._waited_s = 0.0
        self._penalties = 0

    # --- public -------------------------------------------------------------------------------

    async def acquire(self, credits: int) -> Ticket:
        """Wait until ``credits`` can be sent without exceeding any budget, and reserve them.

        Raises:
            ConfigError: ``credits`` exceeds the per-minute budget (lower the batch size).
            DailyLimitError: the daily budget cannot pay for this request.

        Example:
            >>> import asyncio
            >>> asyncio.run(CreditLimiter(8, None).acquire(2)).credits
            2
        """
        if credits < 1:
            raise ConfigError(f"a request costs at least 1 credit, not {credits}")
        if self.per_minute is not None and credits > self.per_minute:
            raise ConfigError(
                f"one request costs {credits} credits but the plan allows {self.per_minute} per "
                "minute — lower sources.twelvedata.batch_size or raise credits_per_minute"
            )
        async with self._lock:
            started = self._clock()
            waited = False
            while True:
                now = self._clock()
                self._check_day(credits)
                delay = self._delay(now, credits)
                if delay <= 0:
                    break
                waited = True
                if math.isinf(delay):
                    # everything that blocks us is still in flight: wait for an answer
                    self._changed.clear()
                    await self._changed.wait()
                else:
                    await self._sleep(delay)
            now = self._clock()
            if waited:
                self._waits += 1
                self._waited_s += now - started
            self._next_id += 1
            ticket = Ticket(self._next_id, credits, now, self._day)
            self._in_flight[ticket.id] = ticket
            self.used_today += credits
            return ticket

    def complete(self, ticket: Ticket, *, charged: bool = True, sent: bool = True) -> None:
        """The answer to ``ticket`` arrived (or the attempt failed).

        The credits stay in the window for one more window either way: the server may have
        counted the request even when it failed (a 5xx, a lost connection), and a cheap
        conservative hold is what keeps us free of 429s. ``charged=False`` only returns the
        credits to the daily budget and keeps them out of ``used_total``. ``sent=False`` (no
        connection could even be opened, so the server cannot have counted anything) gives the
        credits back entirely: to the daily budget *and* to the window, at once.

        Example:
            >>> import asyncio
            >>> limiter = CreditLimiter(per_minute=8, per_day=800)
            >>> ticket = asyncio.run(limiter.acquire(8))
            >>> limiter.complete(ticket, charged=False, sent=False)
            >>> limiter.used_today, limiter._delay(0.0, 8)
            (0, 0.0)
        """
        if self._in_flight.pop(ticket.id, None) is None:
            return
        now = self._clock()
        if not sent:
            charged = False
        elif self.per_minute is not None:
            self._answered.append((now + self.window, ticket.credits))
        if charged:
            self.used_total += ticket.credits
        elif ticket.day == self._day:
            self.used_today = max(0, self.used_today - ticket.credits)
        self._changed.set()

    def penalize(self, until_window_end: bool = True) -> None:
        """React to an unexpected 429 for the minute: the server's window is full.

        With ``until_window_end`` no request is sent for one whole window from now — whatever the
        phase of the server's window, it has ended by then. Otherwise only the count is kept.
        """
        self._penalties += 1
        if until_window_end:
            self._blocked_until = max(self._blocked_until, self._clock() + self.window)
            log.warning("rate limited by the server: pausing %.1f s", self.window)

    def lower_limit(self, per_minute: int) -> None:
        """Adopt a smaller per-minute limit the server reported (e.g. in a 429 message)."""
        if per_minute >= 1 and (self.per_minute is None or per_minute < self.per_minute):
            log.warning("the server's limit is %d credits per window: adopting it", per_minute)
            self.per_minute = per_minute

    def stats(self) -> dict[str, Any]:
        """Budgets, credits used, and how long requests waited for credits."""
        return {
            "per_minute": self.per_minute,
            "per_day": self.per_day,
            "window_s": self.window,
            "used_total": self.used_total,
            "used_today": self.used_today,
            "in_flight": sum(t.credits for t in self._in_flight.values()),
            "waits": self._waits,
            "waited_s": round(self._waited_s, 3),
            "penalties": self._penalties,
        }

    # --- internals ----------------------------------------------------------------------------

    def _day_index(self) -> int:
        return int(self._day_clock() // self._day_seconds)

    def _check_day(self, credits: int) -> None:
        day = self._day_index()
        if day != self._day:
            self._day = day
            self.used_today = sum(t.credits for t in self._in_flight.values())
        if self.per_day is not None and self.used_today + credits > self.per_day:
            raise DailyLimitError(
                f"the daily budget of {self.per_day} credits is spent ({self.used_today} used, "
                f"{credits} more needed) — ingestion resumes after the next UTC day starts",
                code=429,
            )

    def _delay(self, now: float, credits: int) -> float:
        """Seconds until ``credits`` may be sent: 0 now, ``inf`` when only an answer can help."""
        if self._blocked_until > now:
            return self._blocked_until - now
        if self.per_minute is None:
            return 0.0
        answered = self._answered
        while answered and answered[0][0] <= now:
            answered.popleft()
        live = sum(t.credits for t in self._in_flight.values()) + sum(c for _, c in answered)
        excess = live + credits - self.per_minute
        if excess <= 0:
            return 0.0
        freed = 0
        for expires, amount in answered:
            freed += amount
            if freed >= excess:
                return expires - now
        return math.inf


__all__ = ["CreditLimiter", "Ticket"]
