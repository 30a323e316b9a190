"""API-credit accounting: endpoint weights, the per-minute window and the daily budget.

Weights follow the reference (§3): symbol-bound endpoints cost their weight once per requested
symbol (a symbol that errors inside a batch still costs its credit), catalogues cost their weight
per request. Minute windows are aligned to the epoch (``floor(time / minute_seconds)``), days to
UTC midnight. A request that does not fit is rejected whole and consumes nothing.

Example:
    >>> ledger = CreditLedger(per_minute=8, per_day=None, minute_seconds=60.0)
    >>> ledger.charge(5, now=0.0) is None
    True
    >>> ledger.charge(5, now=1.0).message[:55]
    'You have run out of API credits for the current minute.'
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

SYMBOL_WEIGHTS = {
    "time_series": 1, "quote": 1, "price": 1, "eod": 1, "exchange_rate": 1,
    "currency_conversion": 1, "earnings": 20, "dividends": 20, "splits": 20, "profile": 10,
    "statistics": 50,
}  # fmt: skip
"""Credits per symbol. Technical indicators cost 1 per symbol."""
REQUEST_WEIGHTS = {
    "stocks": 1, "etfs": 1, "forex_pairs": 1, "cryptocurrencies": 1, "exchanges": 1,
    "symbol_search": 1, "earliest_timestamp": 1, "market_state": 1, "api_usage": 1,
    "technical_indicators": 1,
}  # fmt: skip
"""Credits per request, whatever the parameters."""
UNLIMITED_LEFT = 1_000_000_000
"""``api-credits-left`` when no limit is configured (the header is always sent)."""

_PRICING = "consider switching to a higher tier plan at https://twelvedata.com/pricing"


def cost(endpoint: str, symbols: int) -> int:
    """Credits a request costs: weight x symbols, or the per-request weight.

    Example:
        >>> cost("time_series", 3), cost("stocks", 1), cost("rsi", 2)
        (3, 1, 2)
    """
    if endpoint in REQUEST_WEIGHTS:
        return REQUEST_WEIGHTS[endpoint]
    return SYMBOL_WEIGHTS.get(endpoint, 1) * max(symbols, 1)


@dataclass(frozen=True)
class Rejection:
    """Why a request does not fit the budget, with the API's exact 429 message."""

    daily: bool
    used: int
    limit: int

    @property
    def message(self) -> str:
        """The real API's wording (``used`` counts this request's credits too)."""
        if self.daily:
            return (
                "You have run out of API credits for the current day. "
                f"{self.used} API credits were used, with the current limit being {self.limit}. "
                f"Wait for the next day or {_PRICING}"
            )
        return (
            "You have run out of API credits for the current minute. "
            f"{self.used} API credits were used, with the current limit being {self.limit}. "
            f"Wait for the next minute or {_PRICING}"
        )


class CreditLedger:
    """Credits used in the current minute window and UTC day. Thread-safe."""

    def __init__(self, per_minute: int | None, per_day: int | None, minute_seconds: float) -> None:
        self.per_minute = per_minute
        self.per_day = per_day
        self.minute_seconds = minute_seconds
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget all usage (both windows)."""
        with self._lock:
            self._minute = -1
            self._minute_used = 0
            self._day = -1
            self._day_used = 0
            self.total = 0

    def _roll(self, now: float) -> None:
        minute, day = int(now // self.minute_seconds), int(now // 86400)
        if minute != self._minute:
            self._minute, self._minute_used = minute, 0
        if day != self._day:
            self._day, self._day_used = day, 0

    def charge(self, credits: int, now: float) -> Rejection | None:
        """Consume credits, or return why they do not fit (consuming nothing)."""
        with self._lock:
            self._roll(now)
            if self.per_day is not None and self._day_used + credits > self.per_day:
                return Rejection(True, self._day_used + credits, self.per_day)
            if self.per_minute is not None and self._minute_used + credits > self.per_minute:
                return Rejection(False, self._minute_used + credits, self.per_minute)
            self._minute_used += credits
            self._day_used += credits
            self.total += credits
            return None

    def usage(self, now: float) -> tuple[int, int, int]:
        """(used this minute, left, used today): for the headers and ``api_usage``."""
        with self._lock:
            self._roll(now)
            left = [UNLIMITED_LEFT]
            if self.per_minute is not None:
                left.append(self.per_minute - self._minute_used)
            if self.per_day is not None:
                left.append(self.per_day - self._day_used)
            return self._minute_used, max(0, min(left)), self._day_used
