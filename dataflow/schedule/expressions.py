"""EventBridge Scheduler schedule expressions: ``rate(...)``, ``cron(...)`` and ``at(...)``.

Semantics follow EventBridge Scheduler (reference/aws-semantics.md §7,
https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html):

- ``rate(value unit)``: value a positive integer, unit ``minute(s)``, ``hour(s)`` or ``day(s)``,
  singular for 1 and plural otherwise. Fires every ``value`` units of *elapsed* time from the start
  date (``rate(1 day)`` is every 24 h, also across a DST change), on whole minutes.
- ``cron(Minutes Hours Day-of-month Month Day-of-week Year)``: see :mod:`dataflow.schedule.cron`.
  Evaluated on the wall clock of the schedule's time zone. **DST**: a local time that does not
  exist (the skipped hour of spring-forward) is skipped — no fire that day; a local time that
  occurs twice (fall-back) fires once, at its first occurrence (the daylight-time one).
- ``at(yyyy-mm-ddThh:mm:ss)``: one fire at that wall-clock time in the schedule's zone; the start
  and end dates do not apply. A time inside a DST gap never fires; a repeated one fires at its
  first occurrence (the same rules as cron).

Fire times are returned as aware datetimes in the schedule's zone.

Example:
    >>> import datetime as dt
    >>> after = dt.datetime(2024, 3, 9, 12, tzinfo=dt.UTC)
    >>> [t.isoformat() for t in next_fire_times(
    ...     "cron(30 2 * * ? *)", tz="America/New_York", after=after, count=2)]
    ['2024-03-11T02:30:00-04:00', '2024-03-12T02:30:00-04:00']
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dataflow.errors import ConfigError
from dataflow.schedule.cron import CronSpec, parse_cron

_RATE = re.compile(r"rate\(\s*(\S+)\s+(\S+)\s*\)")
_CRON = re.compile(r"cron\((.*)\)")
_AT = re.compile(r"at\((.*)\)")
_AT_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")
_UNITS = {"minute": 60, "hour": 3600, "day": 86_400}

RATE_PLURAL_RULE = (
    "if the value is equal to 1, the unit must be singular; if the value is greater than 1, "
    "the unit must be plural (rate(1 hours) and rate(5 hour) are not valid)"
)


@dataclass(frozen=True)
class RateExpression:
    """``rate(value unit)``: a fixed interval of elapsed time."""

    text: str
    value: int
    unit: str  # minute | hour | day (singular)

    @property
    def period(self) -> dt.timedelta:
        """The interval, e.g. ``timedelta(hours=5)`` for ``rate(5 hours)``."""
        return dt.timedelta(seconds=self.value * _UNITS[self.unit])


@dataclass(frozen=True)
class CronExpression:
    """``cron(...)``: wall-clock times in the schedule's zone."""

    text: str
    spec: CronSpec


@dataclass(frozen=True)
class AtExpression:
    """``at(yyyy-mm-ddThh:mm:ss)``: one wall-clock time in the schedule's zone."""

    text: str
    when: dt.datetime  # naive local time


ScheduleExpression = RateExpression | CronExpression | AtExpression


def parse_expression(text: str) -> ScheduleExpression:
    """Parse a schedule expression.

    Raises:
        ConfigError: a one-line message quoting the expression and the AWS rule it breaks.

    Example:
        >>> parse_expression("rate(5 minutes)").period
        datetime.timedelta(seconds=300)
        >>> parse_expression("rate(5 minute)")
        Traceback (most recent call last):
        ...
        dataflow.errors.ConfigError: rate(5 minute): if the value is equal to 1, the unit must be \
singular; if the value is greater than 1, the unit must be plural (rate(1 hours) and rate(5 hour) \
are not valid)
    """
    stripped = text.strip()
    if match := _RATE.fullmatch(stripped):
        return _parse_rate(stripped, match.group(1), match.group(2))
    if match := _CRON.fullmatch(stripped):
        return CronExpression(stripped, parse_cron(match.group(1), expression=stripped))
    if match := _AT.fullmatch(stripped):
        return AtExpression(stripped, _parse_at(stripped, match.group(1).strip()))
    if stripped.startswith("rate("):
        raise ConfigError(
            f"{stripped}: a rate expression is rate(value unit), e.g. rate(5 minutes)"
        )
    raise ConfigError(
        f"{text!r}: a schedule expression is at(yyyy-mm-ddThh:mm:ss), rate(value unit) or "
        "cron(minutes hours day-of-month month day-of-week year)"
    )


def _parse_rate(text: str, value_text: str, unit_text: str) -> RateExpression:
    if not value_text.isdigit() or int(value_text) < 1:
        raise ConfigError(f"{text}: the value of a rate expression must be a positive integer")
    value = int(value_text)
    unit = unit_text.removesuffix("s")
    if unit not in _UNITS:
        raise ConfigError(
            f"{text}: valid units are minute, minutes, hour, hours, day and days "
            "(schedules faster than one minute are not supported)"
        )
    if (value == 1) == unit_text.endswith("s"):
        raise ConfigError(f"{text}: {RATE_PLURAL_RULE}")
    return RateExpression(text, value, unit)


def _parse_at(text: str, inner: str) -> dt.datetime:
    if not _AT_TIME.fullmatch(inner):
        raise ConfigError(f"{text}: a one-time schedule is at(yyyy-mm-ddThh:mm:ss)")
    try:
        return dt.datetime.strptime(inner, "%Y-%m-%dT%H:%M:%S")
    except ValueError as exc:
        raise ConfigError(f"{text}: {inner} is not a valid date and time ({exc})") from None


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``.

    Raises:
        ConfigError: unknown zone.

    Example:
        >>> zone("Europe/Paris").key
        'Europe/Paris'
    """
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"unknown time zone {name!r}: use an IANA name such as UTC or America/New_York"
        ) from None


def local_time(naive: dt.datetime, tz: ZoneInfo) -> dt.datetime | None:
    """The aware time of a wall-clock time, or ``None`` when it does not exist (a DST gap).

    A repeated wall-clock time (fall-back) gives its first occurrence.

    Example:
        >>> ny = zone("America/New_York")
        >>> local_time(dt.datetime(2024, 3, 10, 2, 30), ny) is None
        True
        >>> local_time(dt.datetime(2024, 11, 3, 1, 30), ny).isoformat()
        '2024-11-03T01:30:00-04:00'
    """
    aware = naive.replace(tzinfo=tz, fold=0)
    round_trip = aware.astimezone(dt.UTC).astimezone(tz).replace(tzinfo=None)
    return aware if round_trip == naive else None


def next_fire_times(
    expr: str | ScheduleExpression,
    *,
    tz: str = "UTC",
    after: dt.datetime,
    count: int = 10,
    start_date: dt.datetime | None = None,
    end_date: dt.datetime | None = None,
) -> list[dt.datetime]:
    """The next ``count`` fire times strictly after ``after``, as aware times in ``tz``.

    Args:
        expr: an expression (text or parsed).
        tz: the schedule's IANA zone (cron and at are read on its wall clock).
        after: an aware instant; only later fires are returned.
        count: how many fire times at most (fewer when the schedule ends).
        start_date: no fire before it (naive = UTC). For ``rate`` it is also the anchor: fires
            are ``start_date + k × period``; without it the anchor is ``after`` (on the minute).
        end_date: no fire after it (naive = UTC). Ignored, like ``start_date``, by ``at``.

    Raises:
        ConfigError: an invalid expression or zone.
        ValueError: ``after`` is naive.

    Example:
        >>> t0 = dt.datetime(2024, 1, 1, 9, 0, 30, tzinfo=dt.UTC)
        >>> [t.strftime("%H:%M") for t in next_fire_times("rate(5 minutes)", after=t0, count=2)]
        ['09:05', '09:10']
    """
    parsed = parse_expression(expr) if isinstance(expr, str) else expr
    tzinfo = zone(tz)
    if after.tzinfo is None or after.utcoffset() is None:
        raise ValueError(f"after={after.isoformat()} has no time zone; pass an aware datetime")
    if count <= 0:
        return []
    if isinstance(parsed, AtExpression):
        when = local_time(parsed.when, tzinfo)
        return [when] if when is not None and when > after else []
    start = _as_utc(start_date)
    end = _as_utc(end_date)
    if isinstance(parsed, RateExpression):
        return _rate_times(parsed, tzinfo, after, count, start, end)
    out: list[dt.datetime] = []
    lower = max(after, start) if start is not None else after
    for naive in parsed.spec.local_times(lower.astimezone(tzinfo).replace(tzinfo=None)):
        when = local_time(naive, tzinfo)
        if when is None or when <= after or (start is not None and when < start):
            continue
        if end is not None and when > end:
            break
        out.append(when)
        if len(out) == count:
            break
    return out


def _rate_times(
    rate: RateExpression,
    tzinfo: ZoneInfo,
    after: dt.datetime,
    count: int,
    start: dt.datetime | None,
    end: dt.datetime | None,
) -> list[dt.datetime]:
    # Elapsed time, not wall-clock: rate(1 day) is every 24 h, so across DST it moves by an
    # hour on the local clock (reference §7: "rate(n days) = n×24 h").
    anchor = _ceil_minute(start) if start is not None else _floor_minute(after)
    period = rate.period
    steps = 0
    if after >= anchor:
        steps = (after - anchor) // period + 1
    out: list[dt.datetime] = []
    while len(out) < count:
        when = anchor + steps * period
        if end is not None and when > end:
            break
        out.append(when.astimezone(tzinfo))
        steps += 1
    return out


def _as_utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _floor_minute(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC).replace(second=0, microsecond=0)


def _ceil_minute(value: dt.datetime) -> dt.datetime:
    floor = _floor_minute(value)
    return floor if floor == value else floor + dt.timedelta(minutes=1)
