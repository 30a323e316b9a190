"""Recommend a starter DQDL ruleset for a dataset, as Glue Data Quality's recommendation runs do.

One aggregate query profiles the dataset (row count; per column: completeness, distinct count,
min/max, string lengths, the value set of low-cardinality string columns, castability of string
columns, mean and standard deviation; distinct counts of candidate composite keys), then each
column gets the rules its profile supports. The ruleset is then evaluated on the same dataset and
any rule that does not PASS is dropped, so the printed ruleset always parses and passes on the
data it came from.

The rules follow what Glue recommends (an observed Glue recommendation on a 3-row table: ``RowCount
between 1 and 6``, ``IsComplete "c0"``, ``Uniqueness "c0" > 0.95``, ``ColumnValues "c0" <= 2``,
``ColumnValues "c2" in ["0"]`` — aws-sdk-pandas tutorial 037), which in turn follow Deequ's
constraint suggestions. Our choices where Glue's are not documented:

* ``RowCount between floor(n/2) and 2n`` (Glue's bounds for 3 rows were 1 and 6);
* ``IsComplete`` for complete columns; else ``Completeness >= `` the lower end of the 95% binomial
  confidence interval of the observed completeness, rounded down to 2 places (Deequ's
  RetainCompletenessRule), when that is above 0;
* a unique, complete column of a string, integer or date/time type: ``IsPrimaryKey``; unique with
  NULLs: ``IsUnique``; a unique floating-point column gets ``Uniqueness > 0.95`` (Glue's form).
  Without a single-column key, the smallest unique combination of one date/time column with up to
  two string columns becomes ``IsPrimaryKey "a" "b" ...``;
* strings with at most :data:`MAX_VALUES` distinct values: ``ColumnValues in [...]`` (plus ``NULL``
  when the column has NULLs); lengths: ``ColumnLength = L`` when constant, else ``between`` one
  below the shortest and one above the longest (``<= longest`` when there are empty values);
  string columns whose values all cast to a type: ``ColumnDataType = "INTEGER"`` (or LONG,
  DOUBLE, DATE, TIMESTAMP, BOOLEAN);
* numbers: ``ColumnValues between`` the observed range widened by 10% of its span on each side
  (``between`` is exclusive), rounded outward; a non-negative column whose widened lower bound
  would be negative gets ``>= 0`` and ``<= upper`` instead; columns with NULLs check their
  non-NULL values (``where "c IS NOT NULL"``: ColumnValues fails NULL rows);
* dates and timestamps: ``ColumnValues >= "first day"``;
* with ``statistics``: ``Mean`` and ``StandardDeviation between`` the observed value -/+ 10%;
* columns whose name starts with ``_`` (lineage such as ``_run_id``, ``_raw_key``) only get their
  completeness rule: their values change with every run.

Example:
    >>> from dataflow.quality.datasets import connect
    >>> con = connect()
    >>> _ = con.execute(
    ...     "CREATE VIEW \\"primary\\" AS SELECT range AS id, 'A' AS sym FROM range(10)")
    >>> print(recommend(con).text)  # doctest: +NORMALIZE_WHITESPACE
    Rules = [
        RowCount between 5 and 20,
        IsComplete "id",
        IsPrimaryKey "id",
        ColumnValues "id" >= 0,
        ColumnValues "id" <= 10,
        IsComplete "sym",
        ColumnValues "sym" in ["A"],
        ColumnLength "sym" = 1
    ]
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import duckdb

from dataflow.errors import ConfigError, StorageError
from dataflow.quality.dqdl.ast import (
    Between,
    Comparison,
    DateLiteral,
    In,
    NullKeyword,
    NumberLiteral,
    Operand,
    Parameter,
    Rule,
    RuleNode,
    Ruleset,
    StringLiteral,
    format_ruleset,
)
from dataflow.quality.evaluate import Evaluator
from dataflow.quality.special import PRIMARY, describe
from dataflow.query.views import quote_identifier

if TYPE_CHECKING:
    from dataflow.config import Settings
    from dataflow.metadata.db import MetadataDB

__all__ = [
    "MAX_VALUES",
    "ColumnProfile",
    "Recommendation",
    "TableProfile",
    "profile_dataset",
    "recommend",
    "recommend_dataset",
    "recommend_rules",
]

MAX_VALUES = 20
"""A string column with at most this many distinct values gets a ``ColumnValues in [...]`` rule."""
_MAX_KEY_STRINGS = 5
_Z = 1.96  # 95% two-sided normal quantile, as Deequ's RetainCompletenessRule
_CAST_TESTS = {
    # The same tests as the evaluator's ColumnDataType (Spark's casts), most specific first.
    "INTEGER": r"regexp_full_match(trim({v}), '[+-]?\d+') AND TRY_CAST({v} AS INTEGER) IS NOT NULL",
    "LONG": r"regexp_full_match(trim({v}), '[+-]?\d+') AND TRY_CAST({v} AS BIGINT) IS NOT NULL",
    "DOUBLE": "TRY_CAST({v} AS DOUBLE) IS NOT NULL",
    "DATE": "TRY_CAST({v} AS DATE) IS NOT NULL",
    "TIMESTAMP": "TRY_CAST({v} AS TIMESTAMP) IS NOT NULL",
    "BOOLEAN": "lower(trim({v})) IN ('t','true','y','yes','1','f','false','n','no','0')",
}
_INTEGER = re.compile(r"^U?(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT)$")
_FLOAT = re.compile(r"^(FLOAT|DOUBLE|REAL|DECIMAL.*)$")
_TEMPORAL = re.compile(r"^(DATE|TIMESTAMP.*)$")
_STRING = re.compile(r"^(VARCHAR|TEXT|STRING|CHAR.*)$")

Kind = Literal["integer", "float", "string", "temporal", "boolean", "other"]


def _kind(sql_type: str) -> Kind:
    upper = sql_type.upper()
    if _INTEGER.match(upper):
        return "integer"
    if _FLOAT.match(upper):
        return "float"
    if _STRING.match(upper):
        return "string"
    if _TEMPORAL.match(upper):
        return "temporal"
    if upper == "BOOLEAN":
        return "boolean"
    return "other"


@dataclass
class ColumnProfile:
    """What one scan learnt about a column."""

    name: str
    sql_type: str
    kind: Kind
    non_null: int = 0
    distinct: int = 0
    minimum: Any = None
    maximum: Any = None
    mean: float | None = None
    stddev: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    values: tuple[str, ...] | None = None
    castable_to: str | None = None

    def completeness(self, rows: int) -> float:
        """The fraction of non-NULL rows (1.0 for no rows)."""
        return self.non_null / rows if rows else 1.0


@dataclass
class TableProfile:
    """The profile of a dataset: its rows, its columns and the composite keys that hold."""

    rows: int
    columns: list[ColumnProfile]
    composite_keys: list[tuple[str, ...]] = field(default_factory=list)


@dataclass
class Recommendation:
    """A recommended ruleset, the profile it came from and the candidate rules dropped."""

    ruleset: Ruleset
    profile: TableProfile
    dropped: list[str] = field(default_factory=list)
    header: str = ""

    @property
    def text(self) -> str:
        """The ruleset as a DQDL document (with ``#`` comment lines before it, if any)."""
        body = format_ruleset(self.ruleset)
        return f"{self.header}\n{body}" if self.header else body


# --- profiling -----------------------------------------------------------------------------------


def profile_dataset(con: duckdb.DuckDBPyConnection, view: str = PRIMARY) -> TableProfile:
    """Profile the view ``view`` of ``con`` in one aggregate query.

    Example:
        >>> con = duckdb.connect()
        >>> _ = con.execute('CREATE VIEW "primary" AS SELECT 1 AS x UNION ALL SELECT NULL')
        >>> profile = profile_dataset(con)
        >>> profile.rows, profile.columns[0].non_null, profile.columns[0].maximum
        (2, 1, 1)
    """
    schema = describe(con, view)
    columns = [ColumnProfile(name, kind, _kind(kind)) for name, kind in schema.columns.items()]
    selects: list[str] = ["count(*)"]
    slots: list[tuple[ColumnProfile | None, str]] = [(None, "rows")]

    def add(column: ColumnProfile | None, attribute: str, sql: str) -> None:
        selects.append(sql)
        slots.append((column, attribute))

    for column in columns:
        q = quote_identifier(column.name)
        add(column, "non_null", f"count({q})")
        if column.kind == "other":
            continue
        add(column, "distinct", f"count(DISTINCT {q})")
        if column.kind in ("integer", "float", "temporal"):
            add(column, "minimum", f"min({q})")
            add(column, "maximum", f"max({q})")
        if column.kind in ("integer", "float"):
            add(column, "mean", f"avg({q}::DOUBLE)")
            add(column, "stddev", f"stddev_pop({q}::DOUBLE)")
        if column.kind == "string":
            add(column, "min_length", f"min(coalesce(length({q}), 0))")
            add(column, "max_length", f"max(coalesce(length({q}), 0))")
            # The list is only kept for low-cardinality columns (decided in the same scan).
            add(
                column,
                "values",
                f"CASE WHEN count(DISTINCT {q}) <= {MAX_VALUES} "
                f"THEN list(DISTINCT {q} ORDER BY {q}) FILTER (WHERE {q} IS NOT NULL) END",
            )
            for name, test in _CAST_TESTS.items():
                ok = test.format(v=q)
                add(column, f"cast:{name}", f"count(*) FILTER (WHERE {q} IS NOT NULL AND ({ok}))")
    keys = _key_candidates(columns)
    for key in keys:
        struct = ", ".join(quote_identifier(c) for c in key)
        add(None, "key:" + "\x1f".join(key), f"count(DISTINCT ({struct}))")
    sql = f"SELECT {', '.join(selects)} FROM {quote_identifier(view)}"
    try:
        row = con.execute(sql).fetchone()
    except duckdb.Error as exc:
        raise StorageError(f"cannot profile the dataset: {str(exc).splitlines()[0]}") from exc
    assert row is not None
    rows = int(row[0])
    found_keys: list[tuple[str, ...]] = []
    for (owner, attribute), value in zip(slots, row, strict=True):
        if owner is None:
            if attribute.startswith("key:") and value == rows and rows > 0:
                found_keys.append(tuple(attribute[4:].split("\x1f")))
        elif attribute.startswith("cast:"):
            if owner.castable_to is None and owner.non_null and value == owner.non_null:
                owner.castable_to = attribute[5:]
        elif attribute == "values":
            owner.values = None if value is None else tuple(str(v) for v in value)
        else:
            setattr(owner, attribute, value)
    # A combination holding a column that is a key by itself is no new key.
    single = {c.name for c in columns if c.distinct == c.non_null == rows and rows > 1}
    found_keys = [key for key in found_keys if not single & set(key)]
    return TableProfile(rows, columns, _smallest(found_keys))


def _key_candidates(columns: list[ColumnProfile]) -> list[tuple[str, ...]]:
    """Composite keys worth testing: one date/time column with one or two string columns."""
    temporal = [c.name for c in columns if c.kind == "temporal"]
    strings = [c.name for c in columns if c.kind == "string"][:_MAX_KEY_STRINGS]
    keys: list[tuple[str, ...]] = []
    for size in (1, 2):
        for time_column in temporal:
            keys += [(*combo, time_column) for combo in itertools.combinations(strings, size)]
    return keys


def _smallest(keys: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """The unique combinations that do not contain a smaller unique one (first found kept)."""
    kept: list[tuple[str, ...]] = []
    for key in sorted(keys, key=len):
        if not any(set(small) <= set(key) for small in kept):
            kept.append(key)
    return kept[:1]


# --- rules ---------------------------------------------------------------------------------------


def _rule(kind: str, columns: tuple[str, ...] = (), condition: Any = None, **extra: Any) -> Rule:
    return Rule(kind, tuple(Parameter(c) for c in columns), condition, **extra)


def _number(value: float, integer: bool) -> NumberLiteral:
    return NumberLiteral(int(value) if integer else float(value))


def _decimals(scale: float) -> int:
    """How many decimal places show ``scale`` (a span or a magnitude) with ~2 significant digits."""
    if scale <= 0 or not math.isfinite(scale):
        return 2
    return max(0, min(6, 1 - math.floor(math.log10(scale))))


def _outward(low: float, high: float, places: int) -> tuple[float, float]:
    step = 10.0**-places
    lo = round(math.floor(low / step) * step, places)
    hi = round(math.ceil(high / step) * step, places)
    return lo, hi


def _range_rules(column: ColumnProfile, where: str | None) -> list[Rule]:
    lo_value, hi_value = float(column.minimum), float(column.maximum)
    integer = column.kind == "integer"
    span = hi_value - lo_value
    pad = span * 0.1 if span > 0 else max(abs(hi_value) * 0.1, 1.0 if integer else 0.01)
    places = 0 if integer else _decimals(span or abs(hi_value))
    lo, hi = _outward(lo_value - pad, hi_value + pad, places)
    step = 10.0**-places
    while lo >= lo_value:  # float rounding must not close the exclusive bounds
        lo = round(lo - step, places)
    while hi <= hi_value:
        hi = round(hi + step, places)
    columns = (column.name,)
    if lo_value >= 0 > lo:
        return [
            _rule("ColumnValues", columns, Comparison(">=", NumberLiteral(0)), where=where),
            _rule("ColumnValues", columns, Comparison("<=", _number(hi, integer)), where=where),
        ]
    condition = Between(_number(lo, integer), _number(hi, integer))
    return [_rule("ColumnValues", columns, condition, where=where)]


def _statistic_rules(column: ColumnProfile) -> list[Rule]:
    rules: list[Rule] = []
    for kind, value in (("Mean", column.mean), ("StandardDeviation", column.stddev)):
        if value is None or value == 0 or not math.isfinite(value):
            continue
        low, high = sorted((value * 0.9, value * 1.1))
        lo, hi = _outward(low, high, _decimals(abs(value) * 0.2))
        rules.append(_rule(kind, (column.name,), Between(NumberLiteral(lo), NumberLiteral(hi))))
    return rules


def _where_not_null(name: str) -> str:
    # Spark SQL: backticks quote an identifier that is not a plain name.
    shown = name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) else f"`{name}`"
    return f"{shown} IS NOT NULL"


def _column_rules(column: ColumnProfile, rows: int, statistics: bool) -> list[Rule]:
    name = (column.name,)
    rules: list[Rule] = []
    completeness = column.completeness(rows)
    if column.non_null == rows:
        rules.append(_rule("IsComplete", name))
    else:
        bound = completeness - _Z * math.sqrt(completeness * (1 - completeness) / rows)
        bound = math.floor(bound * 100) / 100
        if bound > 0:
            rules.append(_rule("Completeness", name, Comparison(">=", NumberLiteral(bound))))
    if column.non_null == 0 or column.kind == "other" or column.name.startswith("_"):
        return rules
    unique = column.distinct == column.non_null and rows > 1
    if unique and column.kind in ("integer", "string", "temporal"):
        rules.append(_rule("IsPrimaryKey" if column.non_null == rows else "IsUnique", name))
    elif unique and column.kind == "float":
        rules.append(_rule("Uniqueness", name, Comparison(">", NumberLiteral(0.95))))
    where = None if column.non_null == rows else _where_not_null(column.name)
    if column.kind in ("integer", "float"):
        rules += _range_rules(column, where)
        if statistics:
            rules += _statistic_rules(column)
    elif column.kind == "temporal":
        first = column.minimum
        day = first.date() if isinstance(first, dt.datetime) else first
        if isinstance(day, dt.date):
            rules.append(
                _rule("ColumnValues", name, Comparison(">=", DateLiteral(day)), where=where)
            )
    elif column.kind == "string":
        rules += _string_rules(column, rows)
    return rules


def _string_rules(column: ColumnProfile, rows: int) -> list[Rule]:
    name = (column.name,)
    rules: list[Rule] = []
    values = column.values
    if values is not None and not any(re.search(r"[\x00-\x1f]", v) for v in values):
        members: list[Operand] = [StringLiteral(v) for v in values]
        if column.non_null < rows:
            members.append(NullKeyword())
        rules.append(_rule("ColumnValues", name, In(tuple(members))))
    shortest, longest = column.min_length or 0, column.max_length or 0
    if shortest == longest and longest > 0:
        rules.append(_rule("ColumnLength", name, Comparison("=", NumberLiteral(longest))))
    elif shortest > 0:
        condition = Between(NumberLiteral(shortest - 1), NumberLiteral(longest + 1))
        rules.append(_rule("ColumnLength", name, condition))
    elif longest > 0:
        rules.append(_rule("ColumnLength", name, Comparison("<=", NumberLiteral(longest))))
    if column.castable_to is not None:
        wanted = StringLiteral(column.castable_to)
        rules.append(_rule("ColumnDataType", name, Comparison("=", wanted)))
    return rules


def recommend_rules(profile: TableProfile, *, statistics: bool = False) -> Ruleset:
    """The starter ruleset a profile supports (see the module docstring for the choices).

    Example:
        >>> profile = TableProfile(3, [ColumnProfile("c", "BIGINT", "integer", 3, 3, 0, 2)])
        >>> [r.rule_type for r in recommend_rules(profile).rules]
        ['RowCount', 'IsComplete', 'IsPrimaryKey', 'ColumnValues', 'ColumnValues']
    """
    n = profile.rows
    row_count = (
        Between(NumberLiteral(n // 2), NumberLiteral(2 * n))
        if n
        else Comparison("=", NumberLiteral(0))
    )
    rules: list[RuleNode] = [Rule("RowCount", (), row_count)]
    if n == 0:
        return Ruleset(rules=tuple(rules))  # no rows, nothing learnt about the columns
    for column in profile.columns:
        rules += _column_rules(column, n, statistics)
    for key in profile.composite_keys:
        if len(key) > 1:
            rules.append(_rule("IsPrimaryKey", key))
    return Ruleset(rules=tuple(rules))


def recommend(
    con: duckdb.DuckDBPyConnection,
    *,
    statistics: bool = False,
    verify: bool = True,
    now: dt.datetime | None = None,
    header: str = "",
) -> Recommendation:
    """Profile the view ``"primary"`` of ``con`` and recommend a ruleset that passes on it.

    Args:
        statistics: also recommend Mean and StandardDeviation ranges for numeric columns.
        verify: evaluate the ruleset on the dataset and drop any rule that does not PASS.
        now: the instant the verification evaluates at.
        header: ``#`` comment lines printed before the ruleset.
    """
    profile = profile_dataset(con, PRIMARY)
    ruleset = recommend_rules(profile, statistics=statistics)
    dropped: list[str] = []
    if verify:
        result = Evaluator(ruleset, con, now=now).run()
        keep = [r.result == "PASS" for r in result.rule_results]
        dropped = [r.description for r in result.rule_results if r.result != "PASS"]
        ruleset = replace(
            ruleset, rules=tuple(n for n, ok in zip(ruleset.rules, keep, strict=True) if ok)
        )
    return Recommendation(ruleset, profile, dropped, header)


def recommend_dataset(
    *,
    table: str | None = None,
    data: str | Path | None = None,
    settings: Settings | None = None,
    db: MetadataDB | None = None,
    statistics: bool = False,
    con: duckdb.DuckDBPyConnection | None = None,
) -> Recommendation:
    """Recommend a ruleset for a catalog table (``db.table``) or a CSV / Parquet / JSON file.

    Raises:
        ConfigError: neither or both of table and data, a table without a project.
        NoSuchTableError: no such table in the catalog.

    Example:
        >>> print(recommend_dataset(data="prices.parquet").text)  # doctest: +SKIP
    """
    from dataflow.quality.datasets import connect, register_file, register_table

    if (table is None) == (data is None):
        raise ConfigError("give either a table (--table DB.T) or a data file (--data PATH)")
    con = con or connect()
    if table is not None:
        if settings is None or db is None:
            raise ConfigError(f"profiling table {table} needs a project (--project DIR)")
        register_table(con, settings, db, table, PRIMARY)
        source = table
    else:
        assert data is not None
        register_file(con, data, PRIMARY)
        source = str(data)
    now = dt.datetime.now(dt.UTC)
    recommendation = recommend(con, statistics=statistics, now=now)
    recommendation.header = (
        f"# Recommended by `dataflow dq recommend` for {source} "
        f"({recommendation.profile.rows} rows) at {now:%Y-%m-%d %H:%M} UTC.\n"
        "# A starter: review the bounds before gating publication on them."
    )
    return recommendation
