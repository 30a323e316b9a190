"""Trading calendars: when each kind of market is open, and the bars an interval cuts them into.

Three calendars:

* ``us_equity`` — weekdays 09:30-16:00 America/New_York, closed on the NYSE full-day holidays:
  New Year's Day, Martin Luther King Jr. Day, Washington's Birthday, Good Friday, Memorial Day,
  Juneteenth (from 2022), Independence Day, Labor Day, Thanksgiving and Christmas, with the usual
  observance (Saturday -> Friday before, Sunday -> Monday after; a Saturday New Year's Day is not
  observed). Early closes (13:00) are not modelled: those days are full sessions.
* ``forex`` — 24/5: one session per UTC weekday, none on Saturday or Sunday.
* ``crypto`` — 24/7: one session per UTC day.

Intraday bars start at the session open and are labelled by their open time (1h bars of a US
stock: 09:30, 10:30, ..., 15:30; the last one ends at the close). Daily bars are labelled by the
session's day, weekly bars by the Monday of their week, monthly bars by the 1st of the month.

Example:
    >>> import datetime as dt
    >>> s = session("us_equity", dt.date(2024, 7, 4))
    >>> s is None  # Independence Day
    True
    >>> s = session("us_equity", dt.date(2024, 7, 5))
    >>> [b.open - s.open for b in intraday_spans(s, 60)][:3]
    [0, 3600, 7200]
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterator
from typing import NamedTuple
from zoneinfo import ZoneInfo

INTRADAY_MINUTES = {
    "1min": 1, "5min": 5, "15min": 15, "30min": 30, "45min": 45,
    "1h": 60, "2h": 120, "4h": 240, "8h": 480,
}  # fmt: skip
PERIODIC = ("1day", "1week", "1month")
INTERVALS = (*INTRADAY_MINUTES, *PERIODIC)
"""Every interval the API accepts, in the order its error message lists them."""

# Nominal length of each interval in minutes (daily+ as trading-day equivalents), for scaling
# volumes and wick sizes.
NOMINAL_MINUTES = {**INTRADAY_MINUTES, "1day": 1440, "1week": 7200, "1month": 30000}


class Session(NamedTuple):
    """One trading session: its day and its open/close as Unix seconds (close exclusive)."""

    day: dt.date
    open: int
    close: int


class Span(NamedTuple):
    """The time a bar covers: Unix seconds [open, end), and the day label of daily+ bars."""

    label: dt.date | None
    open: int
    end: int


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> dt.date:
    """The n-th (1-based; -1 = last) given weekday of a month."""
    if n > 0:
        first = dt.date(year, month, 1)
        return first + dt.timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    nxt = dt.date(year + month // 12, month % 12 + 1, 1)
    last = nxt - dt.timedelta(days=1)
    return last - dt.timedelta(days=(last.weekday() - weekday) % 7)


def _easter(year: int) -> dt.date:
    """Western Easter Sunday (anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l_) // 451
    month, day = divmod(h + l_ - 7 * m + 114, 31)
    return dt.date(year, month, day + 1)


def _observed(day: dt.date) -> dt.date:
    if day.weekday() == 5:
        return day - dt.timedelta(days=1)
    if day.weekday() == 6:
        return day + dt.timedelta(days=1)
    return day


@functools.cache
def us_holidays(year: int) -> frozenset[dt.date]:
    """NYSE full-day holidays of a year (see the module docstring for the list)."""
    days = {
        _nth_weekday(year, 1, 0, 3),  # Martin Luther King Jr. Day
        _nth_weekday(year, 2, 0, 3),  # Washington's Birthday
        _easter(year) - dt.timedelta(days=2),  # Good Friday
        _nth_weekday(year, 5, 0, -1),  # Memorial Day
        _observed(dt.date(year, 7, 4)),
        _nth_weekday(year, 9, 0, 1),  # Labor Day
        _nth_weekday(year, 11, 3, 4),  # Thanksgiving
        _observed(dt.date(year, 12, 25)),
    }
    if dt.date(year, 1, 1).weekday() != 5:  # NYSE does not observe a Saturday New Year's Day
        days.add(_observed(dt.date(year, 1, 1)))
    if year >= 2022:
        days.add(_observed(dt.date(year, 6, 19)))
    return frozenset(days)


_NEW_YORK = ZoneInfo("America/New_York")


def _local_epoch(day: dt.date, hour: int, minute: int, tz: dt.tzinfo) -> int:
    return int(dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz).timestamp())


@functools.lru_cache(maxsize=65536)
def session(calendar: str, day: dt.date) -> Session | None:
    """The session of a calendar on a day (local date of the calendar), or None when closed."""
    if calendar == "us_equity":
        if day.weekday() >= 5 or day in us_holidays(day.year):
            return None
        return Session(
            day, _local_epoch(day, 9, 30, _NEW_YORK), _local_epoch(day, 16, 0, _NEW_YORK)
        )
    if calendar == "forex" and day.weekday() >= 5:
        return None
    if calendar in ("forex", "crypto"):
        start = _local_epoch(day, 0, 0, dt.UTC)
        return Session(day, start, start + 86400)
    raise ValueError(f"unknown calendar {calendar!r}")


def calendar_timezone(calendar: str) -> dt.tzinfo:
    """The zone whose local dates name a calendar's sessions."""
    return _NEW_YORK if calendar == "us_equity" else dt.UTC


def intraday_spans(sess: Session, minutes: int) -> list[Span]:
    """The intraday bars of one session, oldest first; the last one ends at the close."""
    step = minutes * 60
    return [
        Span(None, start, min(start + step, sess.close))
        for start in range(sess.open, sess.close, step)
    ]


def _period_start(day: dt.date, interval: str) -> dt.date:
    if interval == "1week":
        return day - dt.timedelta(days=day.weekday())
    if interval == "1month":
        return day.replace(day=1)
    return day


def _next_period(start: dt.date, interval: str) -> dt.date:
    if interval == "1week":
        return start + dt.timedelta(days=7)
    if interval == "1month":
        return dt.date(start.year + start.month // 12, start.month % 12 + 1, 1)
    return start + dt.timedelta(days=1)


def _previous_period(start: dt.date, interval: str) -> dt.date:
    if interval == "1month":
        return (start - dt.timedelta(days=1)).replace(day=1)
    return start - dt.timedelta(days=7 if interval == "1week" else 1)


def spans_backward(
    calendar: str, interval: str, last_day: dt.date, first_day: dt.date
) -> Iterator[Span]:
    """Bars of an interval from the period containing ``last_day`` back to ``first_day``.

    Newest first. Days are local dates of the calendar's zone. A daily+ bar spans its sessions
    from the first open to the last close; periods without a session are skipped.
    """
    minutes = INTRADAY_MINUTES.get(interval)
    if minutes is not None:
        day = last_day
        while day >= first_day:
            sess = session(calendar, day)
            if sess is not None:
                yield from reversed(intraday_spans(sess, minutes))
            day -= dt.timedelta(days=1)
        return
    if interval == "1day":
        day = last_day
        while day >= first_day:
            sess = session(calendar, day)
            if sess is not None:
                yield Span(day, sess.open, sess.close)
            day -= dt.timedelta(days=1)
        return
    start = _period_start(last_day, interval)
    while _next_period(start, interval) > first_day:
        stop = _next_period(start, interval)
        day, sessions = start, []
        while day < stop:
            sess = session(calendar, day)
            if sess is not None:
                sessions.append(sess)
            day += dt.timedelta(days=1)
        if sessions:
            yield Span(start, sessions[0].open, sessions[-1].close)
        start = _previous_period(start, interval)
