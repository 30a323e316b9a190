"""Compile DQDL rules to SQL: every dataset-level metric of a table in ONE aggregate query.

Each rule adds the aggregates it needs to a :class:`ScanPlan`; identical expressions are shared
(``IsComplete "c"`` and ``Completeness "c" > 0.9`` read one ``count``), ``where`` clauses become
``FILTER (WHERE ...)`` of their aggregates. Value frequencies (Uniqueness, UniqueValueRatio,
Entropy, IsPrimaryKey) are window counts, which are costly: the scan counts the key's distinct
values instead, and when every counted key is unique the frequencies are all 1 (each metric is
its aggregate with the frequency replaced by 1); only keys with duplicates get the window::

    SELECT count(*) AS __m0, count(DISTINCT "id") AS __m1, ... FROM "primary"
    -- only when "id" has duplicates:
    WITH __dq_base AS (SELECT *, count(*) OVER (PARTITION BY "id", ...) AS __w0 FROM "primary")
    SELECT count(*) FILTER (WHERE ... AND __w0 = 1) AS __m4, ... FROM __dq_base

Row-level rule types also get a per-row predicate (``LeafPlan.row_sql``) used by the row-level
outcomes. Semantics follow ``shared/reference/aws-semantics.md`` §1.7; the where clauses and
CustomSql statements are Spark SQL, translated to DuckDB by sqlglot.

Example:
    >>> from dataflow.quality.dqdl import parse_rule
    >>> plan = ScanPlan()
    >>> schema = Schema({"close": "DOUBLE"})
    >>> leaf = compile_leaf(parse_rule('IsComplete "close"'), schema, plan, now=NOW)
    >>> plan.query("primary")
    'SELECT count(*) AS __m0, count("close")::DOUBLE / nullif(count(*), 0) AS __m1 FROM "primary"'
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Literal

from dataflow.errors import QualityError
from dataflow.quality.dqdl.ast import Comparison, Rule
from dataflow.quality.predicates import NOW, duration_hours, row_predicate
from dataflow.query.views import quote_identifier

__all__ = ["NOW", "LeafPlan", "ScanPlan", "Schema", "compile_leaf", "spark_sql"]

Judge = Literal["number", "ratio", "flag", "compliance", "length", "fail", "special"]

#: Rule types evaluated outside the one scan: they read another dataset or run their own SQL.
SPECIAL_TYPES = frozenset(
    {
        "CustomSql",
        "ReferentialIntegrity",
        "DatasetMatch",
        "RowCountMatch",
        "SchemaMatch",
        "AggregateMatch",
        "DetectAnomalies",
        "FileFreshness",
        "FileSize",
        "FileMatch",
        "FileUniqueness",
    }
)

_NUMERIC = re.compile(
    r"^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|UHUGEINT"
    r"|FLOAT|DOUBLE|REAL|DECIMAL.*)$"
)
_TYPE_TESTS = {
    # Spark casts; DuckDB's TRY_CAST rounds "1.5" to an integer where Spark would not accept it.
    "INTEGER": r"regexp_full_match(trim({v}), '[+-]?\d+') AND TRY_CAST({v} AS INTEGER) IS NOT NULL",
    "LONG": r"regexp_full_match(trim({v}), '[+-]?\d+') AND TRY_CAST({v} AS BIGINT) IS NOT NULL",
    "DOUBLE": "TRY_CAST({v} AS DOUBLE) IS NOT NULL",
    "FLOAT": "TRY_CAST({v} AS FLOAT) IS NOT NULL",
    "BOOLEAN": "lower(trim({v})) IN ('t','true','y','yes','1','f','false','n','no','0')",
    "DATE": "TRY_CAST({v} AS DATE) IS NOT NULL",
    "TIMESTAMP": "TRY_CAST({v} AS TIMESTAMP) IS NOT NULL",
}


class Schema:
    """The columns of a dataset (name -> DuckDB type), looked up case-insensitively as Spark does.

    Example:
        >>> Schema({"Close": "DOUBLE"}).resolve("close")
        'Close'
    """

    def __init__(self, columns: dict[str, str]) -> None:
        self.columns = dict(columns)
        self._lower = {name.lower(): name for name in columns}

    def resolve(self, name: str) -> str | None:
        """The column's real name, or None when the dataset has no such column."""
        return self._lower.get(name.lower())

    def is_numeric(self, name: str) -> bool:
        """The column holds numbers."""
        return bool(_NUMERIC.match(self.columns[name].upper()))


@dataclass
class ScanPlan:
    """The aggregates (and window counts) of the scan, deduplicated by their SQL.

    A window count (a value's frequency, for Uniqueness and its kin) is costly: each one comes
    with the distinct and counted keys of its rows (:meth:`window`), and every aggregate over it
    with a shortcut, the same aggregate with the window replaced by 1 (:meth:`add` ``over=``).
    :meth:`scan_query` computes everything but the windows; when a key has as many distinct
    values as counted rows every frequency IS 1 and the shortcuts are the exact values, otherwise
    :meth:`followup_query` computes the aggregates over the windows that are needed.
    """

    aggregates: dict[str, str] = field(default_factory=dict)
    windows: dict[str, str] = field(default_factory=dict)
    keys: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Window alias -> aliases of its key's distinct count and of its counted rows."""
    shortcuts: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Alias of an aggregate over a window -> (alias of its shortcut, the window's alias)."""

    def add(self, sql: str, *, over: str | None = None) -> str:
        """The alias of the aggregate ``sql`` in the scan's result (added once).

        ``over``: the window alias ``sql`` reads, if any (see :meth:`window`).
        """
        if sql not in self.aggregates:
            alias = self.aggregates[sql] = f"__m{len(self.aggregates)}"
            if over is not None:
                shortcut = re.sub(rf"\b{over}\b", "1", sql)
                self.shortcuts[alias] = (self.add(shortcut), over)
        return self.aggregates[sql]

    def window(self, sql: str, *, distinct: str, counted: str) -> str:
        """The column holding the per-row window count ``sql`` (added once).

        ``distinct`` and ``counted`` are the aggregates counting the distinct keys of the rows it
        counts and those rows: when they are equal, the count is 1 on every such row.
        """
        if sql not in self.windows:
            alias = self.windows[sql] = f"__w{len(self.windows)}"
            self.keys[alias] = (self.add(distinct), self.add(counted))
        return self.windows[sql]

    def query(self, source: str) -> str:
        """The one statement computing every aggregate, windows included, over ``source``."""
        return self._select(source, list(self.aggregates), list(self.windows))

    def scan_query(self, source: str) -> str:
        """The statement computing every aggregate but those over windows (:meth:`scan_names`)."""
        return self._select(
            source, [s for s, a in self.aggregates.items() if a not in self.shortcuts], []
        )

    def scan_names(self) -> list[str]:
        """The aliases of the columns of :meth:`scan_query`, in order."""
        return [a for a in self.aggregates.values() if a not in self.shortcuts]

    def followup_query(self, source: str, aggregates: list[str], windows: list[str]) -> str:
        """The statement computing the aggregates ``aggregates`` (SQL) over the ``windows``."""
        return self._select(
            source, aggregates, [s for s, a in self.windows.items() if a in windows]
        )

    def _select(self, source: str, aggregates: list[str], windows: list[str]) -> str:
        table = quote_identifier(source)
        named = (
            f"{sql} AS {self.aggregates.get(sql, f'__x{i}')}" for i, sql in enumerate(aggregates)
        )
        selects = ", ".join(named)
        if not windows:
            return f"SELECT {selects or 'count(*) AS __m'} FROM {table}"
        extra = ", ".join(f"{sql} AS {self.windows[sql]}" for sql in windows)
        return (
            f"WITH __dq_base AS (SELECT *, {extra} FROM {table}) "
            f"SELECT {selects or 'count(*) AS __m'} FROM __dq_base"
        )


@dataclass
class LeafPlan:
    """How one (non-composite) rule is judged once the scan has run.

    Attributes:
        rule: the rule.
        judge: ``number`` / ``ratio`` (metric vs condition), ``flag`` (metric must be 1.0),
            ``compliance`` (fraction of complying rows vs threshold, else 1.0), ``length``
            (ColumnLength min/max), ``fail`` (a failure known before the scan: ``message``),
            ``special`` (evaluated by ``dataflow.quality.special``).
        value: alias of the judged metric.
        metrics: EvaluatedMetrics key -> alias (or a constant number).
        rows: alias of the count of rows the rule looks at (after ``where``).
        row_sql: per-row predicate for row-level outcomes (row-level rule types only).
        where_sql: the translated where clause, if any.
        message: the failure message of a ``fail`` judge.
        result: the result of a ``fail`` judge (FAIL, or ERROR when the rule cannot run).
    """

    rule: Rule
    judge: Judge
    value: str | float | None = None
    metrics: dict[str, str | float] = field(default_factory=dict)
    rows: str | None = None
    row_sql: str | None = None
    where_sql: str | None = None
    message: str | None = None
    result: Literal["FAIL", "ERROR"] = "FAIL"
    extra: dict[str, str] = field(default_factory=dict)


def spark_sql(text: str, *, expression: bool = False) -> str:
    """Spark SQL (Glue's where clauses and CustomSql) as DuckDB SQL.

    Raises:
        QualityError: sqlglot cannot parse the text.

    Example:
        >>> spark_sql("select count(*) from primary")
        'SELECT COUNT(*) FROM "primary"'
        >>> spark_sql("name rlike '^a'", expression=True)
        "REGEXP_MATCHES(name, '^a')"
    """
    import sqlglot

    try:
        tree = sqlglot.parse_one(text, read="spark")
    except sqlglot.errors.SqlglotError as exc:
        raise QualityError(str(exc).splitlines()[0]) from exc
    if expression and isinstance(tree, sqlglot.exp.Query):
        raise QualityError("a where clause is a predicate, not a query")
    return tree.sql("duckdb")


def _filter(where: str | None, extra: str | None = None) -> str:
    parts = [p for p in (where, extra) if p]
    return f" FILTER (WHERE {' AND '.join(parts)})" if parts else ""


def _key(names: list[str]) -> str:
    return ",".join(names)


def compile_leaf(rule: Rule, schema: Schema, plan: ScanPlan, *, now: dt.datetime) -> LeafPlan:
    """Add what ``rule`` needs to ``plan`` and say how to judge it.

    The rule's condition must already have its dynamic expressions (``avg(last(3))``) resolved.
    A ``where`` clause that cannot be translated makes the rule an ERROR, as in Glue.
    """
    kind = rule.rule_type
    if kind in SPECIAL_TYPES:
        return LeafPlan(rule, "special")
    where: str | None = None
    if rule.where is not None:
        try:
            where = f"({spark_sql(rule.where, expression=True)})"
        except QualityError as exc:
            return LeafPlan(rule, "fail", result="ERROR", message=invalid_where(rule, str(exc)))
    if kind == "ColumnCount":
        return LeafPlan(
            rule,
            "number",
            value=float(len(schema.columns)),
            metrics={"Dataset.*.ColumnCount": float(len(schema.columns))},
        )
    if kind == "ColumnNamesMatchPattern":
        pattern = rule.args[0]
        names = list(schema.columns)
        ratio = sum(bool(re.fullmatch(pattern, n)) for n in names) / len(names) if names else 1.0
        return LeafPlan(
            rule, "flag", value=ratio, metrics={"Dataset.*.ColumnNamesPatternMatchRatio": ratio}
        )
    if kind == "ColumnExists":
        found = 1.0 if schema.resolve(rule.args[0]) else 0.0
        return LeafPlan(
            rule,
            "flag",
            value=found,
            metrics={f"Dataset.{rule.args[0]}.ColumnExists": found},
            message=None if found else f"Column {rule.args[0]} does not exist in the dataset",
        )
    rows = plan.add(f"count(*){_filter(where)}")
    if kind == "RowCount":
        return LeafPlan(rule, "number", value=rows, metrics={"Dataset.*.RowCount": rows}, rows=rows)
    columns: list[str] = []
    for name in _column_args(rule):
        real = schema.resolve(name)
        if real is None:
            return LeafPlan(rule, "fail", message=f"Input data does not include column {name}!")
        columns.append(real)
    leaf = _compile_columns(rule, columns, schema, plan, where, now)
    leaf.rows, leaf.where_sql = rows, where
    if leaf.row_sql is not None and where is not None:
        # Rows the where clause filters out are labelled Passed (Glue's default row label).
        leaf.row_sql = f"(NOT coalesce({where}, false) OR {leaf.row_sql})"
    return leaf


def invalid_where(rule: Rule, error: str) -> str:
    """Glue's message for a where clause that is not valid SQL."""
    return (
        f'Rule {rule.rule_type} where "{rule.where}" has provided an invalid where clause : {error}'
    )


def _column_args(rule: Rule) -> list[str]:
    if rule.rule_type == "ColumnDataType":
        return [rule.args[0]]
    return list(rule.args)


def _compile_columns(
    rule: Rule, cols: list[str], schema: Schema, plan: ScanPlan, where: str | None, now: dt.datetime
) -> LeafPlan:
    kind = rule.rule_type
    q = [quote_identifier(c) for c in cols]
    name = _key(cols)
    col = q[0]
    if kind in ("Completeness", "IsComplete"):
        ratio = plan.add(
            f"count({col}){_filter(where)}::DOUBLE / nullif(count(*){_filter(where)}, 0)"
        )
        judge: Judge = "ratio" if kind == "Completeness" else "flag"
        return LeafPlan(
            rule,
            judge,
            value=ratio,
            metrics={f"Column.{name}.Completeness": ratio},
            row_sql=f"({col} IS NOT NULL)",
        )
    if kind in ("Mean", "Sum", "StandardDeviation", "Variance"):
        if not schema.is_numeric(cols[0]):
            return LeafPlan(
                rule,
                "fail",
                result="ERROR",
                message=f"Expected type of column {cols[0]} to be numeric, but found "
                f"{schema.columns[cols[0]]} instead!",
            )
        fn = {"Mean": "avg", "Sum": "sum", "StandardDeviation": "stddev_pop", "Variance": "var_pop"}
        value = plan.add(f"{fn[kind]}({col}::DOUBLE){_filter(where)}")
        return LeafPlan(rule, "number", value=value, metrics={f"Column.{name}.{kind}": value})
    if kind == "ColumnCorrelation":
        value = plan.add(f"corr({q[0]}::DOUBLE, {q[1]}::DOUBLE){_filter(where)}")
        return LeafPlan(
            rule, "number", value=value, metrics={f"Multicolumn.{name}.ColumnCorrelation": value}
        )
    if kind == "DistinctValuesCount":
        value = plan.add(f"count(DISTINCT {col}){_filter(where)}")
        return LeafPlan(
            rule, "number", value=value, metrics={f"Column.{name}.DistinctValuesCount": value}
        )
    if kind in ("Uniqueness", "IsUnique", "IsPrimaryKey", "UniqueValueRatio", "Entropy"):
        return _frequency_rule(rule, cols, q, plan, where)
    if kind == "ColumnLength":
        length = f"coalesce(length(CAST({col} AS VARCHAR)), 0)"
        assert rule.condition is not None
        ok = row_predicate(length, rule.condition, numeric=True, now=now)
        lo = plan.add(f"min({length}){_filter(where)}")
        hi = plan.add(f"max({length}){_filter(where)}")
        compliance = _compliance(plan, ok, where)
        by_bounds = isinstance(rule.condition, Comparison) and rule.condition.op != "!="
        by_bounds = by_bounds or type(rule.condition).__name__ == "Between"
        by_bounds = by_bounds and not getattr(rule.condition, "negated", False)
        metrics: dict[str, str | float] = {
            f"Column.{name}.MaximumLength": hi,
            f"Column.{name}.MinimumLength": lo,
        }
        if not by_bounds:
            metrics[f"Column.{name}.LengthCompliance"] = compliance
        judge = "length" if by_bounds else "compliance"
        return LeafPlan(
            rule,
            judge,
            value=compliance,
            metrics=metrics,
            row_sql=ok,
            extra={"min": lo, "max": hi},
        )
    if kind == "ColumnValues":
        assert rule.condition is not None
        numeric = schema.is_numeric(cols[0])
        ok = row_predicate(col, rule.condition, numeric=numeric, now=now)
        compliance = _compliance(plan, ok, where)
        metrics = {f"Column.{name}.ColumnValues.Compliance": compliance}
        cond = rule.condition
        if numeric and (
            (isinstance(cond, Comparison) and cond.op != "!=")
            or (type(cond).__name__ == "Between" and not getattr(cond, "negated", False))
        ):
            metrics[f"Column.{name}.Maximum"] = plan.add(f"max({col}::DOUBLE){_filter(where)}")
            metrics[f"Column.{name}.Minimum"] = plan.add(f"min({col}::DOUBLE){_filter(where)}")
        if type(cond).__name__ == "Matches":
            metrics[f"Column.{name}.PatternMatch"] = compliance
        return LeafPlan(rule, "compliance", value=compliance, metrics=metrics, row_sql=ok)
    if kind == "ColumnDataType":
        wanted = rule.args[1] if len(rule.args) > 1 else _condition_text(rule)
        castable = _castable(col, wanted)
        if castable is None:
            return LeafPlan(
                rule, "fail", result="ERROR", message=f"Unsupported data type: {wanted}"
            )
        negated = isinstance(rule.condition, Comparison) and rule.condition.op == "!="
        ok = f"({col} IS NULL OR coalesce({'NOT ' if negated else ''}({castable}), false))"
        compliance = _compliance(plan, ok, where)
        return LeafPlan(
            rule,
            "compliance",
            value=compliance,
            metrics={f"Column.{name}.ColumnDataType.Compliance": compliance},
            row_sql=ok,
        )
    if kind == "DataFreshness":
        assert rule.condition is not None
        age = (
            f"(epoch(TIMESTAMP '{now.astimezone(dt.UTC).replace(tzinfo=None).isoformat(sep=' ')}')"
            f" - epoch(TRY_CAST({col} AS TIMESTAMP))) / 3600.0"
        )
        ok = row_predicate(age, _hours(rule), numeric=True, now=now)
        compliance = _compliance(plan, ok, where)
        return LeafPlan(
            rule,
            "compliance",
            value=compliance,
            metrics={f"Column.{name}.DataFreshness.Compliance": compliance},
            row_sql=ok,
        )
    raise QualityError(f"rule type {kind} cannot be compiled")


def _compliance(plan: ScanPlan, ok: str, where: str | None) -> str:
    return plan.add(f"count(*){_filter(where, ok)}::DOUBLE / nullif(count(*){_filter(where)}, 0)")


def _frequency_rule(
    rule: Rule, cols: list[str], q: list[str], plan: ScanPlan, where: str | None
) -> LeafPlan:
    """Uniqueness, IsUnique, IsPrimaryKey, UniqueValueRatio and Entropy over value frequencies.

    As Deequ does, only rows with at least one non-NULL key column count (``inc``); the
    frequency of each row's key is a window count partitioned by the key and by ``inc``.
    """
    kind, name = rule.rule_type, _key(cols)
    inc = "(" + " OR ".join(f"{c} IS NOT NULL" for c in q) + ")"
    if where:
        inc = f"({inc} AND coalesce({where}, false))"
    # count(DISTINCT) groups NULLs of a multi-column key as PARTITION BY does: (1, NULL) twice is
    # one key; the key of a counted row is never NULL (inc needs one non-NULL column).
    key = q[0] if len(q) == 1 else f"({', '.join(q)})"
    # One column, no where: count(DISTINCT) skips NULLs itself, and is faster without a filter.
    distinct = f"count(DISTINCT {key})" + (
        "" if len(q) == 1 and not where else f" FILTER (WHERE {inc})"
    )
    freq = plan.window(
        f"count(*) OVER (PARTITION BY {', '.join(q)}, {inc})",
        distinct=distinct,
        counted=counted_sql(inc),
    )
    counted = plan.add(counted_sql(inc))
    singles = plan.add(f"count(*) FILTER (WHERE {inc} AND {freq} = 1)", over=freq)
    unique_row = f"(NOT {inc} OR {freq} = 1)"
    if kind in ("Uniqueness", "IsUnique"):
        value = plan.add(
            f"count(*) FILTER (WHERE {inc} AND {freq} = 1)::DOUBLE / nullif({counted_sql(inc)}, 0)",
            over=freq,
        )
        return LeafPlan(
            rule,
            "ratio" if kind == "Uniqueness" else "flag",
            value=value,
            metrics={f"Column.{name}.Uniqueness": value},
            row_sql=unique_row if kind == "IsUnique" else None,
            extra={"singles": singles, "counted": counted},
        )
    if kind == "IsPrimaryKey":
        metrics: dict[str, str | float] = {}
        for real, quoted in zip(cols, q, strict=True):
            metrics[f"Column.{real}.Completeness"] = plan.add(
                f"count({quoted}){_filter(where)}::DOUBLE / nullif(count(*){_filter(where)}, 0)"
            )
        uniqueness = plan.add(
            f"count(*) FILTER (WHERE {inc} AND {freq} = 1)::DOUBLE / nullif({counted_sql(inc)}, 0)",
            over=freq,
        )
        metrics[f"Column.{name}.Uniqueness"] = uniqueness
        complete = " AND ".join(f"{c} IS NOT NULL" for c in q)
        # Complete AND unique: the first completeness below 1.0 is the value reported.
        checks = {f"check{i}": str(alias) for i, alias in enumerate(metrics.values())}
        return LeafPlan(
            rule,
            "flag",
            value=uniqueness,
            metrics=metrics,
            row_sql=f"({complete} AND {freq} = 1)",
            extra=checks,
        )
    if kind == "UniqueValueRatio":
        value = plan.add(
            f"count(*) FILTER (WHERE {inc} AND {freq} = 1)::DOUBLE"
            f" / nullif(round(sum(1.0 / {freq}) FILTER (WHERE {inc})), 0)",
            over=freq,
        )
        return LeafPlan(
            rule, "ratio", value=value, metrics={f"Column.{name}.UniqueValueRatio": value}
        )
    # Entropy = -sum(p ln p) over values = ln(n) - sum_rows(ln f) / n, with n the counted rows.
    counted_rows = counted_sql(inc)
    value = plan.add(
        f"ln({counted_rows}) - sum(ln({freq})) FILTER (WHERE {inc}) / nullif({counted_rows}, 0)",
        over=freq,
    )
    return LeafPlan(rule, "number", value=value, metrics={f"Column.{name}.Entropy": value})


def counted_sql(inc: str) -> str:
    return f"count(*) FILTER (WHERE {inc})"


def _condition_text(rule: Rule) -> str:
    operand = getattr(rule.condition, "operand", None)
    return str(getattr(operand, "value", ""))


def _castable(col: str, wanted: str) -> str | None:
    value = f"CAST({col} AS VARCHAR)"
    upper = wanted.strip().upper()
    decimal = re.fullmatch(r"DECIMAL\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)", upper)
    if decimal:
        return f"TRY_CAST({value} AS DECIMAL({decimal[1]}, {decimal[2]})) IS NOT NULL"
    test = _TYPE_TESTS.get(upper)
    return test.format(v=value) if test else None


def _hours(rule: Rule) -> Comparison:
    """The DataFreshness condition with its durations as numbers of hours."""
    from dataclasses import replace

    from dataflow.quality.dqdl.ast import Between, Duration, NumberLiteral

    def hours(operand: object) -> object:
        return NumberLiteral(duration_hours(operand)) if isinstance(operand, Duration) else operand

    cond = rule.condition
    if isinstance(cond, Comparison):
        return replace(cond, operand=hours(cond.operand))  # type: ignore[arg-type]
    if isinstance(cond, Between):
        return replace(cond, low=hours(cond.low), high=hours(cond.high))  # type: ignore[arg-type,return-value]
    raise QualityError(f"DataFreshness takes a duration condition, not {cond!r}")
