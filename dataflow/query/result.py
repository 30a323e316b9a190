"""The result of one query: column names, DuckDB type names, rows, and how to render them.

Rendering is kept here, not in the CLI, so that every consumer (the command line today, the
Athena-style result files and the dashboard later) prints the same values the same way:

* JSON: an array of row objects; timestamps, dates and times as ISO-8601 strings, decimals and
  floats as numbers (NaN and infinities, which JSON cannot hold, as ``null``), nested lists and
  structs as JSON arrays and objects, blobs as hex.
* CSV: a header row, then one line per row; NULL is an empty field, booleans ``true``/``false``,
  nested values as compact JSON.

Example:
    >>> import io
    >>> result = QueryResult(columns=["n", "ok"], types=["INTEGER", "BOOLEAN"], rows=[(1, True)])
    >>> result.to_json_rows()
    [{'n': 1, 'ok': True}]
    >>> out = io.StringIO()
    >>> result.to_csv(out)
    >>> out.getvalue().splitlines()
    ['n,ok', '1,true']
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import json
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO


@dataclass(frozen=True)
class QueryResult:
    """What a query returned.

    Attributes:
        columns: the column names, in order (DuckDB allows duplicates; see :meth:`to_json_rows`).
        types: DuckDB's type of each column, e.g. ``TIMESTAMP WITH TIME ZONE``.
        rows: the rows as tuples of Python values (``datetime`` with UTC for timestamptz).
        elapsed: seconds the query took, fetching included.
        truncated: True when the query was run with a row limit and had more rows than that.
    """

    columns: list[str]
    types: list[str]
    rows: list[tuple[Any, ...]]
    elapsed: float = 0.0
    truncated: bool = False

    @property
    def row_count(self) -> int:
        """How many rows the result holds (after any row limit)."""
        return len(self.rows)

    def json_keys(self) -> list[str]:
        """Column names made unique for row objects: a repeated name gets ``_2``, ``_3``, ...

        Example:
            >>> QueryResult(columns=["a", "a", "b"], types=[], rows=[]).json_keys()
            ['a', 'a_2', 'b']
        """
        seen: dict[str, int] = {}
        keys: list[str] = []
        for name in self.columns:
            count = seen.get(name, 0) + 1
            seen[name] = count
            keys.append(name if count == 1 else f"{name}_{count}")
        return keys

    def to_json_rows(self) -> list[dict[str, Any]]:
        """The rows as JSON-ready objects (only str, int, float, bool, None, list, dict).

        Example:
            >>> import datetime as dt, decimal
            >>> row = (dt.datetime(2024, 1, 2, tzinfo=dt.UTC), decimal.Decimal("1.50"))
            >>> QueryResult(columns=["ts", "px"], types=[], rows=[row]).to_json_rows()
            [{'ts': '2024-01-02T00:00:00+00:00', 'px': 1.5}]
        """
        keys = self.json_keys()
        return [
            {key: json_value(value) for key, value in zip(keys, row, strict=True)}
            for row in self.rows
        ]

    def to_csv(self, stream: TextIO) -> None:
        """Write a header row, then the rows, as CSV (RFC 4180 quoting, ``\\r\\n`` line ends).

        Example:
            >>> import io
            >>> out = io.StringIO()
            >>> QueryResult(columns=["s", "x"], types=[], rows=[("a,b", None)]).to_csv(out)
            >>> out.getvalue().splitlines()
            ['s,x', '"a,b",']
        """
        writer = csv.writer(stream)
        writer.writerow(self.columns)
        for row in self.rows:
            writer.writerow([csv_value(value) for value in row])


def json_value(value: Any) -> Any:
    """One value as JSON-ready data (see the module docstring for the rules).

    Example:
        >>> json_value(float("nan")), json_value([1, {"a": b"\\x01"}])
        (None, [1, {'a': '01'}])
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return None
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return _duration(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(key): json_value(item) for key, item in value.items()}
    if isinstance(value, Sequence | set | frozenset):
        return [json_value(item) for item in value]
    return str(value)


def csv_value(value: Any) -> Any:
    """One value as a CSV field: empty for NULL, ``true``/``false``, ISO-8601 times, JSON nests.

    Example:
        >>> csv_value(True), csv_value(None), csv_value([1, 2])
        ('true', '', '[1,2]')
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # keeps nan/inf, which JSON would turn into null
    if isinstance(value, dict | list | tuple):
        return json.dumps(json_value(value), separators=(",", ":"))
    simple = json_value(value)
    return "" if simple is None else simple


def _duration(value: dt.timedelta) -> str:
    # ISO-8601 duration (PnDTnS), so an INTERVAL reads back unambiguously.
    seconds = value.seconds + value.microseconds / 1_000_000
    text = f"P{value.days}D" if value.days else "P"
    if seconds or not value.days:
        text += f"T{seconds:g}S"
    return text


__all__ = ["QueryResult", "csv_value", "json_value"]
