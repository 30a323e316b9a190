"""Request parameters as the real API reads them, and its error bodies.

Parameter names are case-insensitive; values keep their case. Parsing errors raise
:class:`ApiProblem`, which the app turns into ``{"code":…, "message":…, "status":"error"}``.

Example:
    >>> q = Query({"symbol": "AAPL,EUR/USD", "outputsize": "5"})
    >>> q.symbols(), q.integer("outputsize", 30, 1, 5000)
    (['AAPL', 'EUR/USD'], 5)
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dataflow.sources.twelvedata.simulator.calendar import INTERVALS
from dataflow.sources.twelvedata.simulator.catalog import Instrument

BAD_SYMBOL = (
    "**symbol** or **figi** parameter is missing or invalid. Please provide a valid symbol "
    "according to API documentation: https://twelvedata.com/docs#reference-data"
)
NO_DATA = "No data is available on the specified dates. Try setting different start/end dates."
MAX_SYMBOLS = 120


class ApiProblem(Exception):
    """An error answer: code (also the HTTP status), message and optional ``meta``."""

    def __init__(self, code: int, message: str, meta: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.meta = meta

    def body(self) -> dict[str, Any]:
        """The JSON body the API sends for this error."""
        body: dict[str, Any] = {"code": self.code, "message": self.message, "status": "error"}
        if self.meta is not None:
            body["meta"] = dict(self.meta)
        return body


def error_body(code: int, message: str) -> dict[str, Any]:
    """``{"code": code, "message": message, "status": "error"}``."""
    return ApiProblem(code, message).body()


class Query:
    """The query string of one request, with typed accessors that raise the API's 400s."""

    def __init__(self, params: Mapping[str, str]) -> None:
        self.params = {k.lower(): v for k, v in params.items()}

    def get(self, name: str, default: str = "") -> str:
        """A raw value ('' when absent)."""
        return self.params.get(name, default).strip()

    def symbols(self) -> list[str]:
        """The comma-separated ``symbol`` list, as requested (empty entries dropped)."""
        return [s.strip() for s in self.get("symbol").split(",") if s.strip()]

    def meta(self, interval: str | None = None) -> dict[str, str]:
        """The ``meta`` object the API attaches to parameter errors of symbol endpoints."""
        return {
            "symbol": self.get("symbol"),
            "interval": self.get("interval") if interval is None else interval,
            "exchange": self.get("exchange"),
        }

    def invalid(self, name: str, value: str, hint: str = "") -> ApiProblem:
        """The 400 for a bad parameter value."""
        text = f"Invalid **{name}** provided: {value}." + (f" {hint}" if hint else "")
        return ApiProblem(400, text, self.meta())

    def interval(self, default: str | None = None) -> str:
        """The bar interval, validated with the real API's message."""
        value = self.get("interval") or default
        if value is None:
            raise ApiProblem(400, "**interval** parameter is required.", self.meta(""))
        if value not in INTERVALS:
            raise ApiProblem(
                400,
                f"Invalid **interval** provided: {value}. Supported intervals: "
                + ", ".join(INTERVALS),
                self.meta(value),
            )
        return value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        """An integer parameter within [low, high]."""
        raw = self.get(name)
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise self.invalid(name, raw, f"Must be an integer between {low} and {high}.") from None
        if not low <= value <= high:
            raise self.invalid(name, raw, f"Must be an integer between {low} and {high}.")
        return value

    def number(self, name: str, default: float | None = None) -> float:
        """A non-negative number; required when there is no default."""
        raw = self.get(name)
        if not raw and default is not None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ApiProblem(
                400, f"**{name}** parameter is missing or invalid.", self.meta()
            ) from None
        if value < 0 or math.isnan(value):
            raise ApiProblem(400, f"**{name}** parameter is missing or invalid.", self.meta())
        return value

    def flag(self, name: str) -> bool:
        """A boolean parameter (``true``/``false``)."""
        raw = self.get(name).lower()
        if raw in ("", "false", "0"):
            return False
        if raw in ("true", "1"):
            return True
        raise self.invalid(name, raw, "Use true or false.")

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        """One of a fixed set of values (case-insensitive)."""
        value = self.get(name).lower() or default
        if value not in allowed:
            raise self.invalid(name, value, "Supported values: " + ", ".join(allowed) + ".")
        return value

    def timezone(self, inst: Instrument) -> dt.tzinfo:
        """``Exchange`` (default: the instrument's zone), ``UTC`` or an IANA name."""
        name = self.get("timezone") or "Exchange"
        if name.lower() == "exchange":
            name = inst.timezone
        if name.upper() == "UTC":
            return dt.UTC
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise self.invalid("timezone", name) from None

    def moment(self, name: str) -> dt.datetime | None:
        """``YYYY-MM-DD`` or ``YYYY-MM-DD[T ]HH:MM[:SS]`` as a naive datetime, or None."""
        raw = self.get(name)
        if not raw:
            return None
        try:
            value = dt.datetime.fromisoformat(raw)
        except ValueError:
            raise self.invalid(name, raw, "Use YYYY-MM-DD or YYYY-MM-DD HH:MM:SS.") from None
        return value.replace(tzinfo=None)

    def day(self, tz: dt.tzinfo, now: dt.datetime) -> dt.date | None:
        """The ``date`` parameter: a day, ``today`` or ``yesterday`` (in the zone)."""
        raw = self.get("date").lower()
        if not raw:
            return None
        today = now.astimezone(tz).date()
        if raw == "today":
            return today
        if raw == "yesterday":
            return today - dt.timedelta(days=1)
        try:
            return dt.date.fromisoformat(raw[:10])
        except ValueError:
            raise self.invalid("date", raw, "Use YYYY-MM-DD, today or yesterday.") from None
