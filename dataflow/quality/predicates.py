"""DQDL conditions as SQL (per row) and as Python checks (per dataset metric).

Glue's NULL rules (``shared/reference/aws-semantics.md`` §1.3-1.4) are applied here, once:

* a NULL value fails every operator except ``!=`` and ``not in``, which pass on NULL;
* ``= NULL`` is ``IS NULL``, ``EMPTY`` is ``= ''``, ``WHITESPACES_ONLY`` is a non-empty string
  of only whitespace; ``in [...]`` ORs its members, ``not in [...]`` ANDs their negations, so
  ``not in [21, NULL]`` fails nulls;
* ``between`` is exclusive at both ends and ``not between`` is its complement (NULL fails);
* ``matches`` matches the whole string (``regexp_full_match``);
* a date literal compares at day precision (``CAST(col AS DATE)``), ``now()`` as a timestamp.

Every SQL predicate returned is never NULL (``coalesce``), so it can be counted and combined.

Example:
    >>> from dataflow.quality.dqdl import parse_rule
    >>> rule = parse_rule('ColumnValues "age" != 3')
    >>> row_predicate('"age"', rule.condition, numeric=True, now=NOW)
    'coalesce(("age" != 3), true)'
"""

from __future__ import annotations

import datetime as dt
import math
import re

from dataflow.errors import QualityError
from dataflow.quality.dqdl.ast import (
    Between,
    Comparison,
    Condition,
    DateLiteral,
    Duration,
    Empty,
    In,
    Matches,
    Now,
    NullKeyword,
    NumberLiteral,
    Operand,
    StringLiteral,
    TimeLiteral,
    VariableRef,
    WhitespacesOnly,
)
from dataflow.query.views import quote_literal

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
"""A fixed instant for examples and tests."""

_KEYWORDS = (NullKeyword, Empty, WhitespacesOnly)


def now_value(operand: Now, now: dt.datetime) -> dt.datetime:
    """The instant ``now()`` or ``(now() - 3 days)`` stands for, in UTC.

    Example:
        >>> now_value(Now("-", Duration(1, "days")), NOW).isoformat()
        '2025-12-31T00:00:00+00:00'
    """
    if operand.sign is None or operand.offset is None:
        return now
    delta = duration_delta(operand.offset)
    return now - delta if operand.sign == "-" else now + delta


def duration_delta(duration: Duration) -> dt.timedelta:
    """``24 hours`` as a timedelta."""
    return dt.timedelta(**{duration.unit: duration.amount})


def duration_hours(duration: Duration) -> float:
    """``3 days`` -> 72.0 (DataFreshness compares ages in hours)."""
    return duration_delta(duration).total_seconds() / 3600


# --- per-row SQL ---------------------------------------------------------------------------------


def row_predicate(value: str, condition: Condition, *, numeric: bool, now: dt.datetime) -> str:
    """A SQL predicate (never NULL) saying whether the row's ``value`` meets ``condition``.

    Args:
        value: a SQL expression, e.g. a quoted column name.
        condition: the rule's condition, with dynamic operands already resolved to numbers.
        numeric: the value is of a numeric type (string operands then compare as text).
        now: the instant ``now()`` stands for.
    """
    match condition:
        case Comparison(op, operand):
            if isinstance(operand, _KEYWORDS):
                test = _keyword(value, operand)
                return f"coalesce({test}, false)" if op == "=" else f"coalesce(NOT {test}, true)"
            lhs, rhs = _sides(value, operand, numeric=numeric, now=now)
            return f"coalesce(({lhs} {op} {rhs}), {'true' if op == '!=' else 'false'})"
        case Between(low, high, negated):
            lo_l, lo_r = _sides(value, low, numeric=numeric, now=now)
            hi_l, hi_r = _sides(value, high, numeric=numeric, now=now)
            inside = f"({lo_l} > {lo_r} AND {hi_l} < {hi_r})"
            return f"coalesce(NOT {inside}, false)" if negated else f"coalesce({inside}, false)"
        case In(values, negated):
            members = _members(values)
            plain = [m for m in members if not isinstance(m, _KEYWORDS)]
            keywords = [m for m in members if isinstance(m, _KEYWORDS)]
            parts: list[str] = []
            if plain:
                lhs, _ = _sides(value, plain[0], numeric=numeric, now=now)
                rhs = ", ".join(_sides(value, m, numeric=numeric, now=now)[1] for m in plain)
                parts.append(
                    f"coalesce({lhs} NOT IN ({rhs}), true)"
                    if negated
                    else f"coalesce({lhs} IN ({rhs}), false)"
                )
            for keyword in keywords:
                test = _keyword(value, keyword)
                parts.append(
                    f"coalesce(NOT {test}, true)" if negated else f"coalesce({test}, false)"
                )
            if not parts:
                return "true" if negated else "false"
            return "(" + (" AND " if negated else " OR ").join(parts) + ")"
        case Matches(pattern, negated):
            test = f"regexp_full_match(CAST({value} AS VARCHAR), {quote_literal(pattern)})"
            return f"coalesce(NOT {test}, false)" if negated else f"coalesce({test}, false)"
    raise QualityError(f"unsupported condition {condition!r}")


def _members(values: tuple[Operand, ...] | VariableRef) -> list[Operand]:
    if isinstance(values, VariableRef):
        items = values.value if isinstance(values.value, tuple) else (values.value,)
        return [StringLiteral(item) for item in items]
    return [StringLiteral(_text(m)) if isinstance(m, VariableRef) else m for m in values]


def _text(ref: VariableRef) -> str:
    return ref.value if isinstance(ref.value, str) else ",".join(ref.value)


def _keyword(value: str, keyword: Operand) -> str:
    text = f"CAST({value} AS VARCHAR)"
    if isinstance(keyword, NullKeyword):
        return f"({value} IS NULL)"
    if isinstance(keyword, Empty):
        return f"({text} = '')"
    return f"(length(trim({text})) = 0 AND length({text}) > 0)"


def _sides(value: str, operand: Operand, *, numeric: bool, now: dt.datetime) -> tuple[str, str]:
    """The value cast for comparing with ``operand``, and the operand as SQL."""
    match operand:
        case NumberLiteral(number):
            lhs = value if numeric else f"TRY_CAST({value} AS DOUBLE)"
            return lhs, repr(number)
        case StringLiteral(text):
            return f"CAST({value} AS VARCHAR)", quote_literal(text)
        case VariableRef() as ref:
            return f"CAST({value} AS VARCHAR)", quote_literal(_text(ref))
        case DateLiteral(day):
            return f"TRY_CAST({value} AS DATE)", f"DATE '{day.isoformat()}'"
        case TimeLiteral(_, time):
            return f"TRY_CAST({value} AS TIME)", f"TIME '{time.isoformat()}'"
        case Now() as instant:
            at = now_value(instant, now).astimezone(dt.UTC).replace(tzinfo=None)
            return f"TRY_CAST({value} AS TIMESTAMP)", f"TIMESTAMP '{at.isoformat(sep=' ')}'"
    raise QualityError(f"cannot compare a column with {type(operand).__name__}")


# --- per-dataset checks in Python ----------------------------------------------------------------


def check_value(value: float | None, condition: Condition, *, now: dt.datetime) -> bool:
    """Whether a dataset metric meets a condition (a NULL metric only meets ``= NULL``).

    Example:
        >>> from dataflow.quality.dqdl import parse_rule
        >>> check_value(4.0, parse_rule("ColumnCount between 3 and 4").condition, now=NOW)
        False
    """
    match condition:
        case Comparison(op, NullKeyword()):
            return (value is None) == (op == "=")
        case Comparison(op, operand):
            if value is None:
                return op == "!="
            other = _number(operand, now)
            return {
                "=": value == other,
                "!=": value != other,
                ">": value > other,
                ">=": value >= other,
                "<": value < other,
                "<=": value <= other,
            }[op]
        case Between(low, high, negated):
            if value is None:
                return False
            inside = _number(low, now) < value < _number(high, now)
            return not inside if negated else inside
        case In(values, negated):
            members = _members(values)
            if value is None:
                found = any(isinstance(m, NullKeyword) for m in members)
            else:
                found = any(
                    not isinstance(m, _KEYWORDS) and value == _number(m, now) for m in members
                )
            return not found if negated else found
        case Matches(pattern, negated):
            text = "" if value is None else format_java(value)
            found = re.fullmatch(pattern, text) is not None
            return not found if negated else found
    raise QualityError(f"unsupported condition {condition!r}")


def _number(operand: Operand, now: dt.datetime) -> float:
    match operand:
        case NumberLiteral(number):
            return float(number)
        case StringLiteral(text):
            return float(text)
        case VariableRef() as ref:
            return float(_text(ref))
        case Duration() as duration:
            return duration_hours(duration)
        case Now() as instant:
            return now_value(instant, now).timestamp()
    raise QualityError(f"{type(operand).__name__} is not a number here")


def format_java(value: float) -> str:
    """A number as Java's ``Double.toString`` prints it (Glue's messages are made in Scala).

    Example:
        >>> format_java(4), format_java(0.5), format_java(12345678.0), format_java(0.0001)
        ('4.0', '0.5', '1.2345678E7', '1.0E-4')
    """
    number = float(value)
    if math.isnan(number) or math.isinf(number):
        return {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}[repr(number)]
    if number == 0 or 1e-3 <= abs(number) < 1e7:
        text = repr(number)
        return text if "." in text or "e" in text else text + ".0"
    exponent = int(f"{number:e}".split("e")[1])
    shortest = repr(number)
    if "e" in shortest:  # repr is already the shortest digits: only the layout differs
        digits = shortest.split("e")[0]
        digits = digits if "." in digits else digits + ".0"
    else:
        digits = repr(round(number / 10**exponent, 15))
    return f"{digits}E{int(exponent)}"


__all__ = [
    "NOW",
    "check_value",
    "duration_delta",
    "duration_hours",
    "format_java",
    "now_value",
    "row_predicate",
]
