"""AWS cron expressions: ``cron(Minutes Hours Day-of-month Month Day-of-week Year)``.

The grammar and meaning are EventBridge's (https://docs.aws.amazon.com/eventbridge/latest/
userguide/eb-cron-expressions.html, the same for EventBridge Scheduler), which differ from Unix
cron: six fields with a year, day-of-week ``1`` = Sunday, and exactly one of Day-of-month /
Day-of-week must be ``?``.

| Field        | Values              | Wildcards         |
|--------------|---------------------|-------------------|
| Minutes      | 0-59                | ``, - * /``       |
| Hours        | 0-23                | ``, - * /``       |
| Day-of-month | 1-31                | ``, - * ? / L W`` |
| Month        | 1-12 or JAN-DEC     | ``, - * /``       |
| Day-of-week  | 1-7 or SUN-SAT      | ``, - * ? L #``   |
| Year         | 1970-2199           | ``, - * /``       |

``a-b`` with ``a > b`` wraps (hours ``22-2`` = 22, 23, 0, 1, 2; ``FRI-MON``). ``a/n`` is every
n-th value from ``a`` to the end of the field (``1/10`` minutes = 1, 11, 21, 31, 41, 51: "every
tenth minute, starting from the first minute"); ``*/n`` starts at the field's minimum and
``a-b/n`` steps through the range. ``L`` is the last day of the month (Day-of-month) or of the
week, Saturday (Day-of-week); ``6L`` the last Friday; ``3W`` the weekday nearest the 3rd (never
crossing into another month); ``LW`` the last weekday; ``3#2`` the second Tuesday.

This module only parses and matches *local* calendar values; time zones and DST are handled by
:func:`dataflow.schedule.expressions.next_fire_times`.

Example:
    >>> spec = parse_cron("0/15 13-21 ? * MON-FRI *")
    >>> sorted(spec.minutes), sorted(spec.hours)[:2], spec.days_in(2024, 6)[:3]
    ([0, 15, 30, 45], [13, 14], [3, 4, 5])
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from dataflow.errors import ConfigError

MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
#: AWS numbering: 1 = SUN ... 7 = SAT.
WEEKDAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")

BOTH_STAR = "you cannot use * in both the Day-of-month and Day-of-week fields; use ? in one of them"
BOTH_VALUES = (
    "you cannot specify both the Day-of-month and Day-of-week fields; "
    "if you specify a value or * in one of them, you must use ? in the other"
)
BOTH_ANY = (
    "you cannot use ? in both the Day-of-month and Day-of-week fields; "
    "one of them must be a value or *"
)


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    wildcards: str
    names: tuple[str, ...] = ()

    @property
    def allowed(self) -> str:
        return " ".join(self.wildcards)


_MINUTES = _Field("Minutes", 0, 59, ",-*/")
_HOURS = _Field("Hours", 0, 23, ",-*/")
_DOM = _Field("Day-of-month", 1, 31, ",-*?/LW")
_MONTH = _Field("Month", 1, 12, ",-*/", MONTHS)
_DOW = _Field("Day-of-week", 1, 7, ",-*?L#", WEEKDAYS)
_YEAR = _Field("Year", 1970, 2199, ",-*/")

_NUMBER = re.compile(r"\d+")

#: Builds the error for a broken rule, with the expression quoted.
_Fail = Callable[[str], ConfigError]


@dataclass(frozen=True)
class CronSpec:
    """A parsed cron expression: the local calendar values it fires on.

    ``dom`` is ``None`` when Day-of-month is ``?``; ``dow`` is ``None`` when Day-of-week is.
    """

    minutes: frozenset[int]
    hours: frozenset[int]
    months: frozenset[int]
    years: frozenset[int]
    dom: _DaysOfMonth | None
    dow: _DaysOfWeek | None

    def days_in(self, year: int, month: int) -> list[int]:
        """The days of ``month`` this expression fires on, ascending.

        Example:
            >>> parse_cron("0 0 ? * 6#3 *").days_in(2024, 5)  # third Friday of May 2024
            [17]
        """
        if self.dom is not None:
            return self.dom.days_in(year, month)
        assert self.dow is not None  # parse_cron guarantees exactly one of the two
        return self.dow.days_in(year, month)

    def local_times(self, start: dt.datetime) -> Iterator[dt.datetime]:
        """Naive local datetimes matching the expression, ascending, from ``start`` (inclusive).

        Example:
            >>> it = parse_cron("30 22-2 ? * FRI-MON *").local_times(dt.datetime(2024, 6, 7))
            >>> [t.strftime("%a %H:%M") for t in (next(it), next(it))]
            ['Fri 00:30', 'Fri 01:30']
        """
        start = start.replace(second=0, microsecond=0)
        first_day = start.date()
        for year in sorted(y for y in self.years if y >= start.year):
            for month in sorted(self.months):
                if (year, month) < (start.year, start.month):
                    continue
                for day in self.days_in(year, month):
                    date = dt.date(year, month, day)
                    if date < first_day:
                        continue
                    for hour in sorted(self.hours):
                        if date == first_day and hour < start.hour:
                            continue
                        for minute in sorted(self.minutes):
                            when = dt.datetime(year, month, day, hour, minute)
                            if when >= start:
                                yield when


@dataclass(frozen=True)
class _DaysOfMonth:
    days: frozenset[int]
    last: bool
    last_weekday: bool
    nearest_weekday: frozenset[int]

    def days_in(self, year: int, month: int) -> list[int]:
        length = calendar.monthrange(year, month)[1]
        out = {d for d in self.days if d <= length}
        if self.last:
            out.add(length)
        if self.last_weekday:
            out.add(_nearest_weekday(year, month, length, length))
        for day in self.nearest_weekday:
            if day <= length:  # 31W in a 30-day month: no such day, no fire
                out.add(_nearest_weekday(year, month, day, length))
        return sorted(out)


@dataclass(frozen=True)
class _DaysOfWeek:
    weekdays: frozenset[int]  # AWS numbers, 1 = SUN
    last_of: frozenset[int]  # 6L: the last Friday of the month
    nth: tuple[int, int] | None  # (3, 2) for 3#2: the second Tuesday

    def days_in(self, year: int, month: int) -> list[int]:
        length = calendar.monthrange(year, month)[1]
        out: set[int] = set()
        for day in range(1, length + 1):
            weekday = aws_weekday(dt.date(year, month, day))
            if weekday in self.weekdays:
                out.add(day)
            if weekday in self.last_of and day + 7 > length:
                out.add(day)
            if (
                self.nth is not None
                and weekday == self.nth[0]
                and (day - 1) // 7 + 1 == self.nth[1]
            ):
                out.add(day)
        return sorted(out)


def aws_weekday(date: dt.date) -> int:
    """AWS's day-of-week number of a date: 1 = Sunday ... 7 = Saturday.

    Example:
        >>> aws_weekday(dt.date(2024, 6, 2)), aws_weekday(dt.date(2024, 6, 8))  # Sun, Sat
        (1, 7)
    """
    return (date.weekday() + 1) % 7 + 1


def _nearest_weekday(year: int, month: int, day: int, length: int) -> int:
    # Quartz/AWS "W": the weekday nearest the day, without leaving the month: a Saturday 1st
    # moves to Monday the 3rd, a Sunday last day to Friday.
    weekday = dt.date(year, month, day).weekday()  # Monday = 0
    if weekday == 5:
        return day - 1 if day > 1 else day + 2
    if weekday == 6:
        return day + 1 if day < length else day - 2
    return day


def parse_cron(fields_text: str, *, expression: str | None = None) -> CronSpec:
    """Parse the inside of ``cron(...)``.

    Args:
        fields_text: the six fields, e.g. ``"0 12 * * ? *"``.
        expression: the whole expression, quoted in error messages (default ``cron(<fields>)``).

    Raises:
        ConfigError: one line quoting the expression and the AWS rule it breaks.

    Example:
        >>> sorted(parse_cron("0 12 ? JAN,JUL 2L 2030").months)
        [1, 7]
    """
    quoted = expression or f"cron({fields_text})"

    def fail(rule: str) -> ConfigError:
        return ConfigError(f"{quoted}: {rule}")

    parts = fields_text.split()
    if len(parts) != 6:
        raise fail(
            f"cron expressions have six required fields separated by white space "
            f"(Minutes Hours Day-of-month Month Day-of-week Year); found {len(parts)}"
        )
    minute, hour, dom, month, dow, year = parts
    if dom == "?" and dow == "?":
        raise fail(BOTH_ANY)
    if dom == "*" and dow == "*":
        raise fail(BOTH_STAR)
    if dom != "?" and dow != "?":
        raise fail(BOTH_VALUES)
    return CronSpec(
        minutes=_numbers(minute, _MINUTES, fail),
        hours=_numbers(hour, _HOURS, fail),
        months=_numbers(month, _MONTH, fail),
        years=_numbers(year, _YEAR, fail),
        dom=None if dom == "?" else _days_of_month(dom, fail),
        dow=None if dow == "?" else _days_of_week(dow, fail),
    )


def _check_wildcards(text: str, field: _Field, fail: _Fail) -> str:
    """Replace month/day names by numbers and reject wildcards the field does not allow."""
    upper = text.upper()
    for index, name in enumerate(field.names, start=field.low):
        upper = re.sub(rf"(?<![A-Z]){name}(?![A-Z])", str(index), upper)
    for char in upper:
        if char.isdigit():
            continue
        if char in ",-*/?LW#":
            if char not in field.wildcards:
                raise fail(
                    f"the {char} wildcard is not allowed in the {field.name} field "
                    f"(allowed: {field.allowed})"
                )
            continue
        raise fail(f"{text!r} is not a valid {field.name} value ({_describe(field)})")
    if "?" in upper and upper != "?":
        raise fail(f"? must be the whole {field.name} field, not part of {text!r}")
    return upper


def _describe(field: _Field) -> str:
    names = f" or {field.names[0]}-{field.names[-1]}" if field.names else ""
    return f"{field.low}-{field.high}{names}"


def _value(token: str, field: _Field, fail: _Fail) -> int:
    if not _NUMBER.fullmatch(token):
        raise fail(f"{token!r} is not a valid {field.name} value ({_describe(field)})")
    value = int(token)
    if not field.low <= value <= field.high:
        raise fail(f"{value} is out of range for the {field.name} field ({_describe(field)})")
    return value


def _span(low: int, high: int, field: _Field) -> list[int]:
    # Ranges may wrap: hours 22-2 is 22, 23, 0, 1, 2 (the AWS docs' "ranges that wrap").
    if low <= high:
        return list(range(low, high + 1))
    return list(range(low, field.high + 1)) + list(range(field.low, high + 1))


def _item(item: str, field: _Field, fail: _Fail) -> list[int]:
    if item == "":
        raise fail(f"empty value in the {field.name} field (a stray ,)")
    base, slash, step_text = item.partition("/")
    if base == "*":
        values = list(range(field.low, field.high + 1))
    elif "-" in base:
        low_text, _, high_text = base.partition("-")
        values = _span(_value(low_text, field, fail), _value(high_text, field, fail), field)
    else:
        start = _value(base, field, fail)
        values = list(range(start, field.high + 1)) if slash else [start]
    if not slash:
        return values
    if not _NUMBER.fullmatch(step_text) or int(step_text) == 0:
        raise fail(f"the increment after / in the {field.name} field must be a positive integer")
    return values[:: int(step_text)]


def _numbers(text: str, field: _Field, fail: _Fail) -> frozenset[int]:
    upper = _check_wildcards(text, field, fail)
    out: set[int] = set()
    for item in upper.split(","):
        out.update(_item(item, field, fail))
    return frozenset(out)


def _days_of_month(text: str, fail: _Fail) -> _DaysOfMonth:
    upper = _check_wildcards(text, _DOM, fail)
    days: set[int] = set()
    nearest: set[int] = set()
    last = last_weekday = False
    for item in upper.split(","):
        if item == "L":
            last = True
        elif item == "LW":
            last_weekday = True
        elif item.endswith("W"):
            nearest.add(_value(item[:-1], _DOM, fail))
        elif "L" in item or "W" in item:
            raise fail(
                f"{item!r}: in the Day-of-month field L and W are used as L, LW or a day with W "
                "(3W: the weekday nearest the 3rd)"
            )
        else:
            days.update(_item(item, _DOM, fail))
    return _DaysOfMonth(frozenset(days), last, last_weekday, frozenset(nearest))


def _days_of_week(text: str, fail: _Fail) -> _DaysOfWeek:
    upper = _check_wildcards(text, _DOW, fail)
    items = upper.split(",")
    if "#" in upper and len(items) > 1:
        raise fail(
            "if you use the # character, you can define only one expression in the "
            "Day-of-week field (3#1,6#3 is not valid)"
        )
    weekdays: set[int] = set()
    last_of: set[int] = set()
    nth: tuple[int, int] | None = None
    for item in items:
        if item == "L":
            weekdays.add(7)  # L alone is the last day of the week: Saturday
        elif item.endswith("L"):
            last_of.add(_value(item[:-1], _DOW, fail))
        elif "#" in item:
            day_text, _, count_text = item.partition("#")
            if not _NUMBER.fullmatch(count_text) or not 1 <= int(count_text) <= 5:
                raise fail(f"{item!r}: the number after # is the week of the month, 1-5")
            nth = (_value(day_text, _DOW, fail), int(count_text))
        elif "L" in item:
            raise fail(f"{item!r}: in the Day-of-week field L is used alone or as 6L")
        else:
            weekdays.update(_item(item, _DOW, fail))
    return _DaysOfWeek(frozenset(weekdays), frozenset(last_of), nth)
