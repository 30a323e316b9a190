"""What a query will read, decided before it runs: pruned data files, bytes, Athena's cost.

Athena bills and limits queries by the bytes of the data files they read, so the query stage
decides the files first — from the ``WHERE`` clause — and only then lets DuckDB read them:

* :func:`table_filters` finds, for each table a statement reads, the simple predicates on its
  columns (``=``, ``IN``, ``<``, ``<=``, ``>``, ``>=``, ``BETWEEN`` against constants or bound
  parameters, joined by ``AND`` at the top of a ``WHERE``; a constant is also a date or
  timestamp literal, Athena's ``TIMESTAMP '... UTC'`` included, plus or minus constant
  intervals, which is what ``date_add`` becomes) and turns them into a pyiceberg row
  filter. pyiceberg's scan planning then drops the data files whose partition values or column
  statistics (min/max) cannot match (https://iceberg.apache.org/spec/#scan-planning).
* Pruning must never drop a row the query needs: predicates are null-rejecting comparisons
  only; a table read twice gets the OR of its references' filters (an unfiltered reference
  means every file); anything not understood is simply not used to prune.
* :class:`QueryPlan` holds the chosen files per table; ``bytes_scanned`` is their size, and
  :func:`athena_cost` is what Athena would charge for it ($5 per TB, 10 MB minimum).

Example:
    >>> athena_cost(0), athena_cost(10**12)
    (4.76837158203125e-05, 4.547473508864641)
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from pyiceberg.expressions import BooleanExpression
    from pyiceberg.schema import Schema
    from sqlglot import exp

    from dataflow.query.dialects import Translation

PRICE_PER_TB = 5.0
"""Athena's price per terabyte (2^40 bytes) scanned, in USD."""
MINIMUM_BYTES = 10 * 1024 * 1024
"""Athena bills at least 10 MB per query."""


def athena_cost(bytes_scanned: int) -> float:
    """What Athena would charge for a query that scans ``bytes_scanned`` bytes, in USD.

    Example:
        >>> round(athena_cost(2**40), 2)
        5.0
    """
    return max(bytes_scanned, MINIMUM_BYTES) / 2**40 * PRICE_PER_TB


@dataclass(frozen=True)
class DataFile:
    """One file a query reads: its path, size in bytes and partition (``k=v/k=v``, or ``""``)."""

    path: str
    size: int
    partition: str = ""


@dataclass(frozen=True)
class TableScan:
    """What a query reads of one table.

    Attributes:
        database: the database (Iceberg namespace or external-table database).
        name: the table name.
        kind: ``iceberg`` or ``external``.
        files: the data files read, after pruning.
        snapshot_id: the Iceberg snapshot read (one per query), None for external tables.
        row_filter: the pruning filter, as text (``AlwaysTrue()`` when none).
        total_files: files in the snapshot before pruning (None when not counted).
        total_bytes: their size (None when not counted).
    """

    database: str
    name: str
    kind: str
    files: tuple[DataFile, ...]
    snapshot_id: int | None = None
    row_filter: str = "AlwaysTrue()"
    total_files: int | None = None
    total_bytes: int | None = None

    @property
    def full_name(self) -> str:
        """``database.name``."""
        return f"{self.database}.{self.name}"

    @property
    def bytes_scanned(self) -> int:
        """The size of the files read."""
        return sum(f.size for f in self.files)

    @property
    def partitions(self) -> list[str]:
        """The distinct partitions read, sorted."""
        return sorted({f.partition for f in self.files if f.partition})


@dataclass(frozen=True)
class QueryPlan:
    """A statement with the files each of its tables will read.

    Attributes:
        translation: the DuckDB SQL and how to run it.
        scans: one :class:`TableScan` per table read, in the order first named.
        statement_type: Athena's ``StatementType``: ``DML``, ``DDL`` or ``UTILITY``.
        substatement_type: e.g. ``SELECT``, ``CREATE_TABLE_AS_SELECT``, ``UNLOAD``.
    """

    translation: Translation
    scans: tuple[TableScan, ...] = ()
    statement_type: str = "DML"
    substatement_type: str = "SELECT"
    params: Any = field(default=None, compare=False)

    @property
    def bytes_scanned(self) -> int:
        """Bytes of every data file the query reads (Athena's ``DataScannedInBytes``)."""
        return sum(scan.bytes_scanned for scan in self.scans)

    @property
    def files_scanned(self) -> int:
        """How many data files the query reads."""
        return sum(len(scan.files) for scan in self.scans)

    @property
    def cost_usd(self) -> float:
        """What Athena would charge for it."""
        return athena_cost(self.bytes_scanned)

    @property
    def snapshots(self) -> dict[str, str]:
        """``{"db.table": "snapshot id"}`` of the Iceberg tables read (ids as text: 64-bit)."""
        return {s.full_name: str(s.snapshot_id) for s in self.scans if s.snapshot_id is not None}

    def describe(self) -> dict[str, Any]:
        """The plan as JSON-ready data (what ``--dry-run`` prints)."""
        return {
            "sql": self.translation.sql,
            "dialect": self.translation.dialect,
            "statement_type": self.statement_type,
            "substatement_type": self.substatement_type,
            "bytes_scanned": self.bytes_scanned,
            "files_scanned": self.files_scanned,
            "cost_usd": self.cost_usd,
            "tables": [
                {
                    "table": scan.full_name,
                    "kind": scan.kind,
                    "snapshot_id": None if scan.snapshot_id is None else str(scan.snapshot_id),
                    "row_filter": scan.row_filter,
                    "files": len(scan.files),
                    "bytes": scan.bytes_scanned,
                    "total_files": scan.total_files,
                    "total_bytes": scan.total_bytes,
                    "partitions": scan.partitions,
                    "paths": [f.path for f in scan.files],
                }
                for scan in self.scans
            ],
        }


# --- predicates → pyiceberg row filters ----------------------------------------------------------

Resolver = Callable[[list[str]], "tuple[str, str] | None"]
"""Maps a table name's parts to ``(database, table)`` of the catalog, or None (not ours)."""


def table_references(tree: exp.Expression) -> list[exp.Table]:
    """The table nodes of a statement that name stored tables (not CTEs, not functions)."""
    from sqlglot import exp

    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    found: list[exp.Table] = []
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            continue  # read_parquet(...) and other table functions
        if not table.args.get("db") and table.name.lower() in ctes:
            continue
        found.append(table)
    return found


def table_filters(
    tree: exp.Expression,
    resolve: Resolver,
    schemas: Mapping[tuple[str, str], Schema],
    params: Sequence[Any] | Mapping[str, Any] | None = None,
) -> dict[tuple[str, str], BooleanExpression]:
    """The pruning filter of each Iceberg table a statement reads (``schemas`` names them).

    Example:
        >>> import sqlglot
        >>> from pyiceberg.schema import Schema
        >>> from pyiceberg.types import NestedField, StringType
        >>> schema = Schema(NestedField(1, "symbol", StringType()))
        >>> tree = sqlglot.parse_one("SELECT * FROM t WHERE symbol = 'AAPL' AND 1 < 2")
        >>> table_filters(tree, lambda parts: ("market", parts[-1]), {("market", "t"): schema})
        {('market', 't'): EqualTo(term=Reference(name='symbol'), literal=literal('AAPL'))}
    """
    from pyiceberg.expressions import AlwaysTrue, And, Or

    per_table: dict[tuple[str, str], list[BooleanExpression]] = {}
    for table in table_references(tree):
        key = resolve([part.name for part in table.parts])
        if key is None or key not in schemas:
            continue
        predicates = _reference_predicates(table, schemas[key], params)
        combined: BooleanExpression = AlwaysTrue()
        for predicate in predicates:
            combined = And(combined, predicate)
        per_table.setdefault(key, []).append(combined)
    filters: dict[tuple[str, str], BooleanExpression] = {}
    for key, alternatives in per_table.items():
        result = alternatives[0]
        for other in alternatives[1:]:
            result = Or(result, other)
        filters[key] = result
    return filters


def _reference_predicates(
    table: exp.Table, schema: Schema, params: Sequence[Any] | Mapping[str, Any] | None
) -> list[BooleanExpression]:
    from sqlglot import exp

    select = table.parent.parent if table.parent is not None else None
    if not isinstance(table.parent, exp.From | exp.Join) or not isinstance(select, exp.Select):
        return []
    if isinstance(table.parent, exp.Join) and table.parent.side:
        # WHERE filters still reject the NULL-extended rows, but keep outer joins simple.
        return []
    sources = [select.args.get("from_") or select.args.get("from")]
    sources += list(select.args.get("joins") or [])
    alias = table.alias_or_name.lower()
    where = select.args.get("where")
    if where is None:
        return []
    found: list[BooleanExpression] = []
    for conjunct in where.this.flatten() if isinstance(where.this, exp.And) else [where.this]:
        predicate = _predicate(
            cast("exp.Expression", conjunct), alias, len(sources) == 1, schema, params
        )
        if predicate is not None:
            found.append(predicate)
    return found


def _predicate(
    node: exp.Expression,
    alias: str,
    only_source: bool,
    schema: Schema,
    params: Sequence[Any] | Mapping[str, Any] | None,
) -> BooleanExpression | None:
    from pyiceberg import expressions as ice
    from sqlglot import exp

    def column(expr: exp.Expression) -> str | None:
        if not isinstance(expr, exp.Column) or not isinstance(expr.this, exp.Identifier):
            return None
        qualifier = expr.table.lower()
        if (qualifier and qualifier != alias) or (not qualifier and not only_source):
            return None
        wanted = expr.name.lower()
        return next((f.name for f in schema.fields if f.name.lower() == wanted), None)

    def value(expr: exp.Expression, name: str) -> Any:
        return _coerce(_constant(expr, params), schema.find_field(name).field_type)

    comparisons: dict[type[exp.Expression], tuple[Any, Any]] = {
        exp.EQ: (ice.EqualTo, ice.EqualTo),
        exp.GT: (ice.GreaterThan, ice.LessThan),
        exp.GTE: (ice.GreaterThanOrEqual, ice.LessThanOrEqual),
        exp.LT: (ice.LessThan, ice.GreaterThan),
        exp.LTE: (ice.LessThanOrEqual, ice.GreaterThanOrEqual),
    }
    if type(node) in comparisons:
        straight, flipped = comparisons[type(node)]
        for col_side, other, make in (
            (node.this, node.expression, straight),
            (node.expression, node.this, flipped),
        ):
            name = column(col_side)
            if name is not None:
                literal = value(other, name)
                return None if literal is None else make(name, literal)
        return None
    if isinstance(node, exp.In) and not node.args.get("query") and not node.args.get("not"):
        name = column(node.this)
        if name is None or not node.expressions:
            return None
        values = [value(item, name) for item in node.expressions]
        is_in: Any = ice.In
        return None if any(v is None for v in values) else is_in(name, values)
    if isinstance(node, exp.Between):
        name = column(node.this)
        low = value(node.args["low"], name) if name else None
        high = value(node.args["high"], name) if name else None
        if name is None or low is None or high is None:
            return None
        at_least: Any = ice.GreaterThanOrEqual
        at_most: Any = ice.LessThanOrEqual
        return ice.And(at_least(name, low), at_most(name, high))
    return None


_MISSING = object()


def _constant(expr: exp.Expression, params: Sequence[Any] | Mapping[str, Any] | None) -> Any:
    """The Python value of a constant expression; ``_MISSING`` when it is not one."""
    from sqlglot import exp

    if isinstance(expr, exp.Paren):
        return _constant(expr.this, params)
    if isinstance(expr, exp.Literal):
        if expr.is_string:
            return expr.name
        text = expr.name
        try:
            return int(text)
        except ValueError:
            return float(text)
    if isinstance(expr, exp.Neg):
        inner = _constant(expr.this, params)
        return (
            -inner if isinstance(inner, int | float) and not isinstance(inner, bool) else _MISSING
        )
    if isinstance(expr, exp.Cast) and isinstance(expr.this, exp.Literal) and expr.this.is_string:
        return _temporal(expr.this.name, expr.to.this)
    if isinstance(expr, exp.Add | exp.Sub):
        return _shifted(expr, params)
    if isinstance(expr, exp.Placeholder) and params is not None:
        name = str(expr.this) if expr.this else ""
        if isinstance(params, Mapping):
            return params.get(name, _MISSING) if name else _MISSING
        return _MISSING  # positional '?' cannot be numbered reliably here
    return _MISSING


# Zone names that mean UTC, as Athena writes them (TIMESTAMP '2024-05-01 00:00:00 UTC').
# Other zone names are left alone: their DST rules are ICU's in DuckDB, not worth the risk.
_UTC_NAMES = re.compile(r"\s+(?:UTC|GMT|Zulu|UCT|Etc/UTC|Etc/GMT)$", re.IGNORECASE)
_INTERVAL_TEXT = re.compile(r"\s*([+-]?\d+)\s*([a-z]+?)s?\s*", re.IGNORECASE)
_INTERVAL_UNITS = {
    "microsecond": dt.timedelta(microseconds=1),
    "millisecond": dt.timedelta(milliseconds=1),
    "second": dt.timedelta(seconds=1),
    "minute": dt.timedelta(minutes=1),
    "hour": dt.timedelta(hours=1),
    "day": dt.timedelta(days=1),
    "week": dt.timedelta(weeks=1),
}
_MONTH_UNITS = {"month": 1, "quarter": 3, "year": 12}


def _temporal(text: str, kind: Any) -> Any:
    """``CAST('text' AS kind)`` for a date or timestamp type; ``_MISSING`` otherwise."""
    from sqlglot import exp

    try:
        if kind == exp.DataType.Type.DATE:
            return dt.date.fromisoformat(text.strip())
        name = getattr(kind, "name", "")
        if kind in exp.DataType.TEMPORAL_TYPES and name not in ("TIME", "TIMETZ"):
            named_utc = _UTC_NAMES.search(text)
            if named_utc and name not in ("TIMESTAMPTZ", "TIMESTAMPLTZ"):
                return _MISSING  # a zone on a plain TIMESTAMP: DuckDB's rules, not ours
            moment = dt.datetime.fromisoformat(text[: named_utc.start()] if named_utc else text)
            if named_utc and moment.tzinfo:
                return _MISSING  # both an offset and a zone name
            return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    except ValueError:
        return _MISSING
    return _MISSING


def _interval(node: exp.Expression, params: Any) -> tuple[int, str] | None:
    """``(count, unit)`` of a constant ``INTERVAL n UNIT`` or ``INTERVAL 'n unit'``."""
    from sqlglot import exp

    if not isinstance(node, exp.Interval):
        return None
    unit = node.args.get("unit")
    inner = node.this
    if unit is None:
        if not isinstance(inner, exp.Literal) or not inner.is_string:
            return None
        match = _INTERVAL_TEXT.fullmatch(inner.name)
        return (int(match.group(1)), match.group(2).lower()) if match else None
    count = _constant(inner, params)
    if isinstance(count, str) and re.fullmatch(r"\s*[+-]?\d+\s*", count):
        count = int(count)
    if not isinstance(count, int) or isinstance(count, bool):
        return None
    name = unit.name.lower()
    return count, name[:-1] if name.endswith("s") else name


def _shifted(node: exp.Add | exp.Sub, params: Any) -> Any:
    """A constant date/timestamp plus or minus a constant interval (``date_add`` in Athena)."""
    from sqlglot import exp

    base, shift = node.this, _interval(node.expression, params)
    if shift is None and isinstance(node, exp.Add):
        base, shift = node.expression, _interval(node.this, params)
    if shift is None:
        return _MISSING
    moment = _constant(base, params)
    if not isinstance(moment, dt.date):
        return _MISSING
    if not isinstance(moment, dt.datetime):
        moment = dt.datetime.combine(moment, dt.time())  # DATE + INTERVAL is a TIMESTAMP
    count, unit = shift
    if isinstance(node, exp.Sub):
        count = -count
    if unit in _INTERVAL_UNITS:
        return moment + count * _INTERVAL_UNITS[unit]
    if unit in _MONTH_UNITS:
        # Calendar months, the day clamped to the month's end (as DuckDB: Jan 31 + 1 month).
        months = moment.year * 12 + moment.month - 1 + count * _MONTH_UNITS[unit]
        year, month = divmod(months, 12)
        if not 1 <= year <= 9999:
            return _MISSING
        last = calendar.monthrange(year, month + 1)[1]
        return moment.replace(year=year, month=month + 1, day=min(moment.day, last))
    return _MISSING


def _coerce(value: Any, field_type: Any) -> Any:
    """``value`` as the pyiceberg literal input for a column type; None when not safe to prune."""
    from pyiceberg import types as t

    if value is _MISSING or value is None:
        return None
    if isinstance(field_type, t.TimestamptzType | t.TimestampType):
        moment = _as_datetime(value)
        if moment is None:
            return None
        if isinstance(field_type, t.TimestampType):
            return moment.replace(tzinfo=None).isoformat()
        return moment.isoformat()
    if isinstance(field_type, t.DateType):
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value.isoformat()
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value).isoformat()
            except ValueError:
                return None
        return None
    if isinstance(field_type, t.StringType):
        return value if isinstance(value, str) else None
    if isinstance(field_type, t.IntegerType | t.LongType):
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if isinstance(field_type, t.DoubleType | t.FloatType):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return float(value) if ok else None
    return None


def _as_datetime(value: Any) -> dt.datetime | None:
    # DuckDB reads a naive timestamp (or a string) against timestamptz in the session zone: UTC.
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime.combine(value, dt.time())
    elif isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    else:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)


__all__ = [
    "MINIMUM_BYTES",
    "PRICE_PER_TB",
    "DataFile",
    "QueryPlan",
    "TableScan",
    "athena_cost",
    "table_filters",
    "table_references",
]
