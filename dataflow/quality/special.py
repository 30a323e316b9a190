"""Rules evaluated outside the one scan: CustomSql and the rules against reference datasets.

Reference datasets are views of the same DuckDB connection named by their alias (``--reference
ref=market.quotes`` registers ``"ref"``); the primary dataset is the view ``"primary"``, which is
also what CustomSql statements name. Each function returns a :class:`LeafPlan` whose values are
already numbers, judged like any other rule.

Semantics (``shared/reference/aws-semantics.md`` §1.7):

* ``CustomSql "select count(*) from primary" > 3``: the statement returns one number.
  ``CustomSql "select id from primary where x > 0" [with threshold > 0.9]``: the rows the
  statement returns pass, the others fail; the compliance is their share of the rows.
* ``RowCountMatch "ref"``: rows(primary) / rows(ref).
* ``SchemaMatch "ref"``: columns with the same name (case-insensitive) and type in both, over
  the columns of either (1.0 = same schema).
* ``ReferentialIntegrity "a,b" "ref.{x,y}"``: share of primary rows whose key is in ref (a key
  with a NULL is not found).
* ``DatasetMatch "ref" "k->rk" ["m->rm"]``: share of primary rows whose match columns equal
  the ref row of the same key; the keys must be unique and non-NULL on both sides.
* ``AggregateMatch "sum(c)" "sum(ref.c)"``: aggregate over aggregate, 0/0 = 1.0.

File rules (FileFreshness, FileSize, FileMatch, FileUniqueness) check files, not rows: they are
evaluated by ``dataflow.quality.files`` on the local files they name or the dataset was read from.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any

import duckdb

from dataflow.errors import QualityError
from dataflow.quality.compile import LeafPlan, Schema, spark_sql
from dataflow.quality.dqdl.ast import Rule
from dataflow.quality.files import evaluate_file_rule
from dataflow.query.views import quote_identifier

if TYPE_CHECKING:
    from dataflow.config import S3Settings

__all__ = ["PRIMARY", "describe", "evaluate_special", "first_row"]

PRIMARY = "primary"
"""The view name of the dataset under test (Glue's alias for it in CustomSql)."""

_AGGREGATE = re.compile(r"^\s*(sum|avg|count|min|max)\s*\(\s*([^)]*?)\s*\)\s*$", re.IGNORECASE)


def describe(con: duckdb.DuckDBPyConnection, view: str) -> Schema:
    """The columns of a view, without reading its rows."""
    relation = con.sql(f"SELECT * FROM {quote_identifier(view)} LIMIT 0")
    return Schema(
        {name: str(kind) for name, kind in zip(relation.columns, relation.types, strict=True)}
    )


def evaluate_special(
    rule: Rule,
    con: duckdb.DuckDBPyConnection,
    schema: Schema,
    references: set[str],
    rows: int,
    queries: list[str],
    *,
    now: dt.datetime | None = None,
    s3: S3Settings | None = None,
) -> LeafPlan:
    """Evaluate a rule that needs its own query; failures to run are ERROR outcomes.

    ``now`` is the instant FileFreshness measures from (default: the current time); ``s3``
    says how file rules read ``s3://`` paths (None: the standard AWS sources).
    """
    kind = rule.rule_type
    try:
        if kind == "CustomSql":
            return _custom_sql(rule, con, rows, queries)
        if kind.startswith("File"):
            return evaluate_file_rule(rule, con, now=now or dt.datetime.now(dt.UTC), s3=s3)
        alias = _alias(rule)
        if alias.lower() not in {r.lower() for r in references}:
            return LeafPlan(rule, "fail", message=f"Reference dataset '{alias}' not found")
        ref_schema = describe(con, alias)
        if kind == "RowCountMatch":
            ref_rows = _scalar(con, f"SELECT count(*) FROM {quote_identifier(alias)}", queries)
            value = 1.0 if rows == ref_rows == 0 else (rows / ref_rows if ref_rows else None)
            return _ratio(rule, value, f"Dataset.{alias}.RowCountMatch")
        if kind == "SchemaMatch":
            mine = {n.lower(): t for n, t in schema.columns.items()}
            theirs = {n.lower(): t for n, t in ref_schema.columns.items()}
            union = set(mine) | set(theirs)
            same = sum(1 for n in union if mine.get(n) == theirs.get(n))
            return _ratio(rule, same / len(union) if union else 1.0, f"Dataset.{alias}.SchemaMatch")
        if kind == "ReferentialIntegrity":
            return _referential(rule, con, schema, ref_schema, alias, queries)
        if kind == "DatasetMatch":
            return _dataset_match(rule, con, schema, ref_schema, alias, queries)
        if kind == "AggregateMatch":
            return _aggregate_match(rule, con, schema, ref_schema, queries)
    except (duckdb.Error, QualityError) as exc:
        return _error(rule, str(exc).strip().splitlines()[0])
    return _error(rule, f"rule type {kind} is not supported")


def _alias(rule: Rule) -> str:
    if rule.rule_type == "ReferentialIntegrity":
        return rule.args[1].split(".", 1)[0]
    if rule.rule_type == "AggregateMatch":
        return _aggregate_source(rule.args[1])[0] or PRIMARY
    return rule.args[0]


def first_row(rows: list[tuple[Any, ...]]) -> tuple[Any, ...] | None:
    """The first row of a result (DuckDB 2 relations have no fetchone)."""
    return rows[0] if rows else None


def _error(rule: Rule, message: str) -> LeafPlan:
    return LeafPlan(rule, "fail", result="ERROR", message=message)


def _ratio(rule: Rule, value: float | None, key: str) -> LeafPlan:
    metrics: dict[str, str | float] = {} if value is None else {key: value}
    return LeafPlan(rule, "ratio", value=value, metrics=metrics)


def _scalar(con: duckdb.DuckDBPyConnection, sql: str, queries: list[str]) -> float:
    queries.append(sql)
    row = first_row(con.execute(sql).fetchall())
    return float(row[0]) if row and row[0] is not None else 0.0


def _custom_sql(
    rule: Rule, con: duckdb.DuckDBPyConnection, rows: int, queries: list[str]
) -> LeafPlan:
    sql = _select_statement(spark_sql(rule.args[0]))
    if rule.condition is None:
        # Row form: the returned rows pass; compliance is their share of the dataset.
        count = _scalar(con, f"SELECT count(*) FROM ({sql})", queries)
        compliance = count / rows if rows else 1.0
        names = list(con.sql(f"SELECT * FROM ({sql}) LIMIT 0").columns)
        match = " AND ".join(
            f"__dq_custom.{q} IS NOT DISTINCT FROM __dq_base.{q}"
            for q in (quote_identifier(n) for n in names)
        )
        return LeafPlan(
            rule,
            "compliance",
            value=compliance,
            metrics={"Dataset.*.CustomSQL.Compliance": compliance},
            row_sql=f"EXISTS (SELECT 1 FROM ({sql}) AS __dq_custom WHERE {match or 'true'})",
        )
    queries.append(sql)
    relation = con.sql(sql)
    result = relation.fetchall()
    if len(result) != 1 or len(result[0]) != 1:
        return _error(
            rule,
            f"Custom SQL must return one row with one number; it returned {len(result)} row(s) "
            f"of {len(relation.columns)} column(s)",
        )
    cell = result[0][0]
    if cell is not None and not isinstance(cell, int | float):
        try:
            cell = float(cell)
        except (TypeError, ValueError):
            return _error(rule, f"Custom SQL returned {cell!r}, which is not a number")
    value = None if cell is None else float(cell)
    metrics: dict[str, str | float] = {} if value is None else {"Dataset.*.CustomSQL": value}
    return LeafPlan(rule, "number", value=value, metrics=metrics)


def _select_statement(sql: str) -> str:
    """The one SELECT statement of a CustomSql rule (COPY, ATTACH, SET, ... are refused)."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise QualityError(
            f"Custom SQL does not parse: {str(exc).strip().splitlines()[0]}"
        ) from exc
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        raise QualityError("Custom SQL must be one SELECT statement (it may only read the data)")
    return statements[0].query.strip().rstrip(";").strip()


def _columns(text: str, schema: Schema, where: str) -> list[str]:
    names = [c.strip() for c in text.strip().strip("{}").split(",") if c.strip()]
    found = []
    for name in names:
        real = schema.resolve(name)
        if real is None:
            raise QualityError(f"Input data does not include column {name}! ({where})")
        found.append(real)
    return found


def _referential(
    rule: Rule,
    con: duckdb.DuckDBPyConnection,
    schema: Schema,
    ref_schema: Schema,
    alias: str,
    queries: list[str],
) -> LeafPlan:
    mine = _columns(rule.args[0], schema, "primary")
    theirs = _columns(rule.args[1].split(".", 1)[1], ref_schema, alias)
    if len(mine) != len(theirs):
        return _error(rule, "ReferentialIntegrity needs as many reference columns as columns")
    on = " AND ".join(
        f"r.{quote_identifier(b)} = p.{quote_identifier(a)}"
        for a, b in zip(mine, theirs, strict=True)
    )
    sql = (
        f"SELECT count(*) FILTER (WHERE EXISTS (SELECT 1 FROM {quote_identifier(alias)} r "
        f"WHERE {on}))::DOUBLE / nullif(count(*), 0) FROM {quote_identifier(PRIMARY)} p"
    )
    queries.append(sql)
    row = first_row(con.execute(sql).fetchall())
    value = 1.0 if row is None or row[0] is None else float(row[0])
    return _ratio(rule, value, f"Column.{alias}.ReferentialIntegrity")


def _mapping(text: str, schema: Schema, ref_schema: Schema, alias: str) -> list[tuple[str, str]]:
    pairs = []
    for part in text.split(","):
        left, _, right = part.partition("->")
        a = _columns(left, schema, "primary")[0]
        b = _columns(right or left, ref_schema, alias)[0]
        pairs.append((a, b))
    return pairs


def _dataset_match(
    rule: Rule,
    con: duckdb.DuckDBPyConnection,
    schema: Schema,
    ref_schema: Schema,
    alias: str,
    queries: list[str],
) -> LeafPlan:
    keys = _mapping(rule.args[1], schema, ref_schema, alias)
    if len(rule.args) > 2:
        matched = _mapping(rule.args[2], schema, ref_schema, alias)
    else:
        taken = {a for a, _ in keys}
        matched = [
            (c, ref_real)
            for c in schema.columns
            if c not in taken and (ref_real := ref_schema.resolve(c)) is not None
        ]
    p_keys = ", ".join(quote_identifier(a) for a, _ in keys)
    r_keys = ", ".join(quote_identifier(b) for _, b in keys)
    for view, cols in ((PRIMARY, p_keys), (alias, r_keys)):
        nulls = " OR ".join(f"{c.strip()} IS NULL" for c in cols.split(", "))
        check = (
            f"SELECT count(*) = count(DISTINCT ({cols})) AND count(*) FILTER (WHERE {nulls}) = 0 "
            f"FROM {quote_identifier(view)}"
        )
        queries.append(check)
        row = first_row(con.execute(check).fetchall())
        if not (row and row[0]):
            return LeafPlan(
                rule, "fail", message="Provided key map not suitable for given data frames"
            )
    on = " AND ".join(f"p.{quote_identifier(a)} = r.{quote_identifier(b)}" for a, b in keys)
    same = (
        " AND ".join(
            f"p.{quote_identifier(a)} IS NOT DISTINCT FROM r.{quote_identifier(b)}"
            for a, b in matched
        )
        or "true"
    )
    sql = (
        f"SELECT count(r.{quote_identifier(keys[0][1])}) FILTER (WHERE {same})::DOUBLE "
        f"/ nullif(count(*), 0) FROM {quote_identifier(PRIMARY)} p "
        f"LEFT JOIN {quote_identifier(alias)} r ON {on}"
    )
    queries.append(sql)
    row = first_row(con.execute(sql).fetchall())
    value = 1.0 if row is None or row[0] is None else float(row[0])
    return _ratio(rule, value, f"Dataset.{alias}.DatasetMatch")


def _aggregate_source(expression: str) -> tuple[str | None, str, str]:
    """``sum(ref.c)`` -> ("ref", "c", "sum"); ``avg(c)`` -> (None, "c", "avg")."""
    found = _AGGREGATE.match(expression)
    if not found:
        raise QualityError(f"AggregateMatch takes sum(col) or avg(col), not {expression!r}")
    fn, target = found[1].lower(), found[2]
    alias, _, column = target.rpartition(".")
    return alias or None, column, fn


def _aggregate_match(
    rule: Rule,
    con: duckdb.DuckDBPyConnection,
    schema: Schema,
    ref_schema: Schema,
    queries: list[str],
) -> LeafPlan:
    values: list[float] = []
    names: list[str] = []
    for expression in rule.args:
        alias, column, fn = _aggregate_source(expression)
        view, view_schema = (alias, ref_schema) if alias else (PRIMARY, schema)
        real = _columns(column, view_schema, view)[0]
        names.append(real)
        values.append(
            _scalar(
                con, f"SELECT {fn}({quote_identifier(real)}) FROM {quote_identifier(view)}", queries
            )
        )
    first, second = values
    value = 1.0 if first == second == 0 else (first / second if second else None)
    key = names[0] if names[0] == names[1] else ",".join(names)
    return _ratio(rule, value, f"Column.{key}.AggregateMatch")
