"""Dashboard parameters: control values checked, typed and bound to the visuals' ``$names``.

The page (or ``--param k=v`` on the command line) sends one value per parameter, by name;
:func:`resolve` checks each against its control and type — unknown names, wrong types and
values that are not among a dropdown's options are refused with a one-line error — and fills in
the defaults. :func:`bindings` turns the values into the mapping given to DuckDB as
prepared-statement parameters: a ``date-range`` ``period`` becomes ``$period_from`` and
``$period_to``, a ``multi-select`` a list. Values are never pasted into SQL text.

Dates may be relative: ``today``, ``-30d``, ``-12w``, ``-6m``, ``-1y`` (UTC days).

Example:
    >>> from dataflow.dashboard.spec import Parameter
    >>> period = Parameter(name="period", control="date-range", default=["-7d", "today"])
    >>> today = dt.date(2024, 5, 10)
    >>> resolve_value(period, None, today=today)
    (datetime.date(2024, 5, 3), datetime.date(2024, 5, 10))
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dataflow.errors import ConfigError

if TYPE_CHECKING:
    from dataflow.dashboard.spec import Dashboard, Option, Parameter

DEFAULT_RANGE = ("-365d", "today")
"""A date range without a default: the last year."""
MAX_TEXT = 1000
"""The longest text a parameter takes."""

_RELATIVE = re.compile(r"^([+-]?\d{1,5})\s*([dwmy])$")


def relative_date(text: str, *, today: dt.date | None = None) -> dt.date:
    """A date from ``YYYY-MM-DD``, ``today`` or ``±N`` days/weeks/months/years.

    Raises:
        ValueError: anything else (the caller names the parameter).

    Example:
        >>> relative_date("-1m", today=dt.date(2024, 3, 31)), relative_date("2024-01-02")
        (datetime.date(2024, 2, 29), datetime.date(2024, 1, 2))
    """
    today = today or dt.datetime.now(dt.UTC).date()
    value = text.strip().lower()
    if value == "today":
        return today
    match = _RELATIVE.match(value)
    if match is None:
        return dt.date.fromisoformat(value[:10] if "t" in value else value)
    count, unit = int(match.group(1)), match.group(2)
    if unit == "d":
        return today + dt.timedelta(days=count)
    if unit == "w":
        return today + dt.timedelta(weeks=count)
    months = count if unit == "m" else 12 * count
    year, month = divmod(today.month - 1 + months, 12)
    year += today.year
    day = min(today.day, _days_in_month(year, month + 1))
    return dt.date(year, month + 1, day)


def _days_in_month(year: int, month: int) -> int:
    following = dt.date(year + month // 12, month % 12 + 1, 1)
    return (following - dt.timedelta(days=1)).day


def typed(param: Parameter, value: Any, *, today: dt.date | None = None) -> Any:
    """One value of ``param``'s type (strings are parsed, so ``--param n=5`` works too).

    Raises:
        ConfigError: the value does not have, or parse as, the type.

    Example:
        >>> from dataflow.dashboard.spec import Parameter
        >>> typed(Parameter(name="n", control="text", type="integer"), "5")
        5
    """
    kind = param.type
    try:
        if kind == "date":
            if isinstance(value, dt.datetime):
                return value.date()
            if isinstance(value, dt.date):
                return value
            if isinstance(value, str):
                return relative_date(value, today=today)
        elif kind == "integer":
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if isinstance(value, str) and re.fullmatch(r"[+-]?\d{1,18}", value.strip()):
                return int(value)
        elif kind == "number":
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
            if isinstance(value, str) and value.strip():
                return float(value)
        elif isinstance(value, str | int | float) and not isinstance(value, bool):
            text = str(value)
            if len(text) > MAX_TEXT:
                raise ConfigError(f"parameter {param.name}: at most {MAX_TEXT} characters")
            return text
    except ValueError:
        pass
    hint = {"date": "YYYY-MM-DD, today or -30d", "integer": "e.g. 5", "number": "e.g. 1.5"}
    expected = f"a {kind}" + (f" ({hint[kind]})" if kind in hint else "")
    raise ConfigError(f"parameter {param.name}: expected {expected}, got {_show(value)}")


def resolve_value(
    param: Parameter,
    value: Any,
    *,
    options: Sequence[Option] | None = None,
    today: dt.date | None = None,
) -> Any:
    """The checked value of one control (its default when ``value`` is None).

    A dropdown gives one value (the first option when it has no default), a multi-select a
    list (a string is split at commas), a date range a ``(from, to)`` tuple of dates, a text
    a string.

    Raises:
        ConfigError: a wrong type, a value not among the options, a reversed range.
    """
    if value is None:
        value = param.default
    if param.control == "date-range":
        return _date_range(param, value, today)
    if param.control == "multi-select":
        if value is None:
            value = [options[0].value] if options else []
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise ConfigError(f"parameter {param.name}: expected a list, got {_show(value)}")
        chosen = [typed(param, item, today=today) for item in items]
        for item in chosen:
            _check_option(param, item, options)
        return list(dict.fromkeys(chosen))
    if value is None:
        if param.control == "text":
            return ""
        if not options:
            raise ConfigError(f"parameter {param.name}: no value and no options to default to")
        value = options[0].value
    if isinstance(value, list | tuple | dict):
        raise ConfigError(f"parameter {param.name}: expected one value, got {_show(value)}")
    chosen = typed(param, value, today=today)
    if param.control == "dropdown":
        _check_option(param, chosen, options)
    return chosen


def resolve(
    dashboard: Dashboard,
    given: Mapping[str, Any] | None,
    *,
    options: Mapping[str, Sequence[Option]] | None = None,
    today: dt.date | None = None,
) -> dict[str, Any]:
    """Every parameter's checked value, by name (defaults for those not given).

    Raises:
        ConfigError: an unknown parameter name, or a bad value (see :func:`resolve_value`).

    Example:
        >>> resolve(board, {"symbol": "MSFT"})  # doctest: +SKIP
        {'symbol': 'MSFT', 'period': (datetime.date(2023, 5, 10), datetime.date(2024, 5, 10))}
    """
    given = dict(given or {})
    known = {p.name for p in dashboard.parameters}
    unknown = sorted(set(given) - known)
    if unknown:
        names = ", ".join(sorted(known)) or "none"
        raise ConfigError(
            f"dashboard {dashboard.name!r} has no parameter {unknown[0]!r} (parameters: {names})"
        )
    options = options or {}
    return {
        p.name: resolve_value(
            p, given.get(p.name), options=options.get(p.name, p.static_options()), today=today
        )
        for p in dashboard.parameters
    }


def bindings(dashboard: Dashboard, values: Mapping[str, Any]) -> dict[str, Any]:
    """The ``$name`` -> value mapping for DuckDB from :func:`resolve`'s values.

    Example:
        >>> bindings(board, {"period": (d1, d2)})  # doctest: +SKIP
        {'period_from': d1, 'period_to': d2}
    """
    bound: dict[str, Any] = {}
    for param in dashboard.parameters:
        value = values[param.name]
        if param.control == "date-range":
            bound[f"{param.name}_from"], bound[f"{param.name}_to"] = value
        else:
            bound[param.name] = value
    return bound


def placeholders(sql: str, dialect: str = "duckdb") -> list[str]:
    """The ``$names`` a statement uses, in order of first use (``?`` is not allowed here).

    Raises:
        QueryError: the SQL does not parse or is not a query.

    Example:
        >>> placeholders("SELECT * FROM t WHERE a = $x AND b = ANY($ys) OR a = $x")
        ['x', 'ys']
    """
    from sqlglot import exp

    from dataflow.query.session import prepare

    _translation, tree = prepare(sql, dialect)
    if tree is None:
        return []
    names = [str(h.this) if h.this else "?" for h in tree.find_all(exp.Placeholder)]
    return list(dict.fromkeys(names))


def used_bindings(sql: str, dialect: str, bound: Mapping[str, Any]) -> dict[str, Any] | None:
    """The part of ``bound`` a statement uses (None when it uses none).

    Raises:
        ConfigError: the statement names a ``$name`` the dashboard does not bind, or uses ``?``.
    """
    names = placeholders(sql, dialect)
    if not names:
        return None
    for name in names:
        if name == "?":
            raise ConfigError("use named parameters ($name) in dashboard SQL, not '?'")
        if name not in bound:
            known = ", ".join(f"${n}" for n in sorted(bound)) or "none"
            raise ConfigError(f"${name} is not a parameter of the dashboard (known: {known})")
    return {name: bound[name] for name in names}


def json_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """Control values as JSON (dates ISO, a range as ``[from, to]``), for the page."""
    from dataflow.query.result import json_value

    return {name: json_value(list(v) if isinstance(v, tuple) else v) for name, v in values.items()}


def _date_range(param: Parameter, value: Any, today: dt.date | None) -> tuple[dt.date, dt.date]:
    if value is None:
        value = list(DEFAULT_RANGE)
    if isinstance(value, str):
        value = re.split(r"\.\.|,", value)
    if isinstance(value, Mapping):
        value = [value.get("from"), value.get("to")]
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ConfigError(
            f"parameter {param.name}: a date range is [from, to] (or 'FROM..TO'), "
            f"got {_show(value)}"
        )
    start = typed(param, value[0] if value[0] is not None else DEFAULT_RANGE[0], today=today)
    end = typed(param, value[1] if value[1] is not None else DEFAULT_RANGE[1], today=today)
    if start > end:
        raise ConfigError(
            f"parameter {param.name}: the range starts ({start}) after it ends ({end})"
        )
    return start, end


def _check_option(param: Parameter, value: Any, options: Sequence[Option] | None) -> None:
    if options is None:
        return
    allowed = [typed(param, o.value) for o in options]
    if value not in allowed:
        shown = ", ".join(str(a) for a in allowed[:10]) + (", ..." if len(allowed) > 10 else "")
        raise ConfigError(
            f"parameter {param.name}: {_show(value)} is not one of the options ({shown})"
        )


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


__all__ = [
    "DEFAULT_RANGE",
    "bindings",
    "json_values",
    "placeholders",
    "relative_date",
    "resolve",
    "resolve_value",
    "typed",
    "used_bindings",
]
