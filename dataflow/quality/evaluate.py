"""Evaluate a DQDL ruleset over a dataset in DuckDB, with Glue's outcomes.

The dataset is the view ``"primary"`` of a DuckDB connection (reference datasets are views
named by their alias; see ``dataflow.quality.datasets``). Evaluation:

1. compile every rule (inside composites too) and analyzer into one :class:`ScanPlan`, after
   resolving dynamic expressions (``last(k)``) from the metric's history;
2. run the plan: ONE aggregate query for every dataset-level metric of the table (plus one for
   the value frequencies of keys that have duplicates, see ``dataflow.quality.compile``);
   the rows passing every row-level rule are known from the metrics when all pass, else counted
   (in that second query, or on first read of ``EvaluationResult.rows_passed``);
3. run the rules that need their own query (CustomSql, reference-dataset rules);
4. judge each rule (PASS / FAIL / ERROR with Glue's messages), combine composites (COLUMN
   mode: each operand judged over the whole dataset), and name them ``Rule_0``, ``Rule_1``, ...

If the scan fails (e.g. a where clause naming a missing column), each rule's part of it is tried
alone on zero rows to find the culprits; they become ERROR and the scan runs again without them.

Example:
    >>> import duckdb
    >>> from dataflow.quality.dqdl import parse_ruleset
    >>> con = duckdb.connect()
    >>> _ = con.execute('CREATE VIEW "primary" AS SELECT * FROM range(5) t(x)')
    >>> result = evaluate(parse_ruleset('Rules = [ RowCount = 5, Mean "x" > 3 ]'), con, now=NOW)
    >>> [(r.name, r.result) for r in result.rule_results]
    [('Rule_0', 'PASS'), ('Rule_1', 'FAIL')]
    >>> result.rule_results[1].message
    'Value: 2.0 does not meet the constraint requirement!'
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

import duckdb

from dataflow.quality import anomalies
from dataflow.quality.compile import (
    NOW,
    LeafPlan,
    ScanPlan,
    Schema,
    compile_leaf,
)
from dataflow.quality.dqdl.ast import (
    Comparison,
    CompositeRule,
    NumberLiteral,
    Rule,
    RuleNode,
    Ruleset,
    format_analyzer,
    format_rule,
)
from dataflow.quality.dynamic import DynamicRuleError, is_dynamic, resolve_condition
from dataflow.quality.outcomes import (
    DEFAULT_CONTEXT,
    AnalyzerResult,
    EvaluationResult,
    Result,
    RuleResult,
)
from dataflow.quality.predicates import check_value, format_java
from dataflow.quality.special import PRIMARY, describe, evaluate_special, first_row
from dataflow.query.sandbox import lock_views
from dataflow.query.views import quote_identifier, quote_literal

if TYPE_CHECKING:
    from dataflow.config import S3Settings

__all__ = ["NOW", "Evaluator", "MetricHistory", "evaluate"]


class MetricHistory(Protocol):
    """Earlier values of a metric for this dataset, ruleset and evaluation context."""

    def values(self, key: str, limit: int) -> list[float]:
        """Up to ``limit`` earlier values of metric ``key``, most recent first."""
        ...


class _NoHistory:
    def values(self, key: str, limit: int) -> list[float]:  # noqa: ARG002 - protocol signature
        return []


@dataclass
class _Outcome:
    result: Result
    message: str | None
    metrics: dict[str, float]


class Evaluator:
    """One evaluation of a ruleset over the view ``"primary"`` of a DuckDB connection.

    Args:
        ruleset: the parsed ruleset.
        con: a DuckDB connection holding the view ``"primary"`` (and the reference views).
        references: the aliases of the reference datasets registered on ``con``.
        history: earlier metric values, for dynamic rules and DetectAnomalies.
        now: the instant ``now()`` and DataFreshness measure from (default: the current time).
        s3: how file rules read ``s3://`` paths: the project's ``storage.s3`` (None: the
            standard AWS sources).

    Example:
        >>> evaluator = Evaluator(ruleset, con)  # doctest: +SKIP
        >>> result = evaluator.run(dataset="market.time_series")  # doctest: +SKIP
        >>> con.sql(evaluator.row_level_sql()).df()  # doctest: +SKIP
    """

    def __init__(
        self,
        ruleset: Ruleset,
        con: duckdb.DuckDBPyConnection,
        *,
        references: Iterable[str] = (),
        history: MetricHistory | None = None,
        now: dt.datetime | None = None,
        s3: S3Settings | None = None,
    ) -> None:
        self.ruleset = ruleset
        self.s3 = s3
        self.con = con
        self.references = set(references)
        self.history = history or _NoHistory()
        self.now = now or dt.datetime.now(dt.UTC)
        self.queries: list[str] = []
        self.schema = describe(con, PRIMARY)
        self._leaves: dict[int, LeafPlan] = {}
        self._inner: dict[int, LeafPlan] = {}  # DetectAnomalies: the watched metric's plan
        self._errors: dict[int, str] = {}
        self._values: dict[str, Any] = {}
        self._plan = ScanPlan()
        self._rows_alias = ""
        self._rows_passed: int | None = None
        self._rows_passed_sql: str | None = None

    # --- public ----------------------------------------------------------------------------------

    def run(
        self,
        *,
        dataset: str = PRIMARY,
        ruleset_name: str = "",
        evaluation_context: str = DEFAULT_CONTEXT,
    ) -> EvaluationResult:
        """Evaluate every rule and analyzer; returns the outcomes (nothing is stored)."""
        started = dt.datetime.now(dt.UTC)
        # Rules carry user SQL (CustomSql, where clauses): from here on the connection reads
        # only what its datasets' views read, with the lockdown of `dataflow query`.
        lock_views(self.con)
        self._compile_and_scan()
        rows = int(self._values.get(self._rows_alias) or 0)
        for leaf_id, leaf in list(self._leaves.items()):
            if leaf.judge == "special":
                self._leaves[leaf_id] = evaluate_special(
                    leaf.rule,
                    self.con,
                    self.schema,
                    self.references,
                    rows,
                    self.queries,
                    now=self.now,
                    s3=self.s3,
                )
        results = []
        for index, node in enumerate(self.ruleset.rules):
            outcome = self._judge_node(node)
            results.append(
                RuleResult(
                    name=f"Rule_{index}",
                    description=format_rule(node),
                    result=outcome.result,
                    message=outcome.message,
                    metrics=outcome.metrics,
                    labels=self.ruleset.labels_for(node),
                )
            )
        analyzers = [
            AnalyzerResult(f"Analyzer_{i}", format_analyzer(a), self._analyzer_metrics(i))
            for i, a in enumerate(self.ruleset.analyzers)
        ]
        result = EvaluationResult(
            ruleset_name=ruleset_name,
            dataset=dataset,
            rule_results=results,
            analyzer_results=analyzers,
            rows=rows,
            known_rows_passed=self._rows_passed,
            evaluation_context=evaluation_context,
            started_on=started,
            completed_on=dt.datetime.now(dt.UTC),
            queries=list(self.queries),
        )
        if self._rows_passed_sql is not None:
            result.count_passed = lambda: self._count_rows_passed(result.queries)
        return result

    def row_level_sql(self) -> str:
        """The dataset with Glue's row-level outcome columns, as one SQL query (after ``run``).

        ``DataQualityRulesPass`` / ``Fail`` / ``Skip`` list rule texts (Glue's Descriptions);
        rules that are not row-level (RowCount, Mean, ...) are in Skip. A composite rule is
        row-level when all its operands are, combined per row. Rows a ``where`` clause filters
        out pass that rule (Glue's default row label).
        """
        passes, fails, skips = [], [], []
        for node in self.ruleset.rules:
            text = quote_literal(format_rule(node))
            predicate = self._row_sql(node)
            if predicate is None:
                skips.append(text)
                continue
            passes.append(f"CASE WHEN {predicate} THEN {text} END")
            fails.append(f"CASE WHEN NOT ({predicate}) THEN {text} END")

        def listing(items: list[str]) -> str:
            if not items:
                return "[]::VARCHAR[]"
            return f"list_filter([{', '.join(items)}], lambda x: x IS NOT NULL)"

        columns = ", ".join(f"__dq_base.{quote_identifier(c)}" for c in self.schema.columns)
        fail_list = listing(fails)
        body = (
            f"{columns}, {listing(passes)} AS DataQualityRulesPass, {fail_list} AS "
            f"DataQualityRulesFail, {listing([]) if not skips else '[' + ', '.join(skips) + ']'}"
            f" AS DataQualityRulesSkip, CASE WHEN len({fail_list}) = 0 THEN 'Passed' ELSE "
            "'Failed' END AS DataQualityEvaluationResult"
        )
        windows = "".join(f", {sql} AS {alias}" for sql, alias in self._plan.windows.items())
        return (
            f"WITH __dq_base AS (SELECT *{windows} FROM {quote_identifier(PRIMARY)}) "
            f"SELECT {body} FROM __dq_base"
        )

    # --- compiling and the scan ------------------------------------------------------------------

    def _leaves_of(self) -> list[Rule]:
        found: list[Rule] = []

        def visit(node: RuleNode) -> None:
            if isinstance(node, CompositeRule):
                for child in node.children:
                    visit(child)
            else:
                found.append(node)

        for node in self.ruleset.rules:
            visit(node)
        return found

    def _compile_and_scan(self) -> None:
        failed: dict[int, str] = {}
        for _attempt in range(2):
            self._compile(skip=failed)
            try:
                self._scan()
            except duckdb.Error:
                if failed:
                    raise
                failed = self._find_broken()
                continue
            self._errors.update(failed)
            return

    def _scan(self) -> None:
        """Run the plan: the one scan, then the window counts only for keys with duplicates.

        The rows passed are known from the metrics when every row-level rule passed every row;
        otherwise they are counted in the follow-up query when there is one, else by a query of
        their own when first read (``EvaluationResult.rows_passed``).
        """
        plan = self._plan
        sql = plan.scan_query(PRIMARY)
        self.queries.append(sql)
        row = first_row(self.con.execute(sql).fetchall())
        assert row is not None
        self._values = dict(zip(plan.scan_names(), row, strict=True))
        unique = {w for w, (d, c) in plan.keys.items() if self._values[d] == self._values[c]}
        pending: dict[str, str] = {}
        for sql, alias in plan.aggregates.items():
            if alias in plan.shortcuts:
                shortcut, window = plan.shortcuts[alias]
                if window in unique:
                    # Every counted row's key is unique: its frequency is 1, as in the shortcut.
                    self._values[alias] = self._values[shortcut]
                else:
                    pending[sql] = window
        self._rows_passed, self._rows_passed_sql = self._derive_rows_passed(unique)
        if not pending:
            return
        aggregates = list(pending)
        if self._rows_passed_sql is not None:
            aggregates.append(self._rows_passed_sql)
        sql = plan.followup_query(PRIMARY, aggregates, self._windows_in(aggregates))
        self.queries.append(sql)
        row = first_row(self.con.execute(sql).fetchall())
        assert row is not None
        self._values.update(zip((plan.aggregates[s] for s in pending), row, strict=False))
        if self._rows_passed_sql is not None:
            self._rows_passed, self._rows_passed_sql = int(row[-1]), None

    def _windows_in(self, aggregates: list[str]) -> list[str]:
        """The aliases of the window counts the aggregates read."""
        text = " ".join(aggregates)
        return [a for a in self._plan.windows.values() if re.search(rf"\b{a}\b", text)]

    def _derive_rows_passed(self, unique: set[str]) -> tuple[int | None, str | None]:
        """The rows passing every row-level rule when the metrics tell; else the SQL counting them.

        A row-level rule's metric (a compliance, completeness or uniqueness over the rows its
        where clause keeps; the checks of IsPrimaryKey) is 1.0, or NULL for no such rows, exactly
        when its per-row predicate holds on every row: then every row passes all of them. A
        metric over a window not computed yet (a key with duplicates) is below 1.0.
        """
        row_level = [leaf for leaf in self._leaves.values() if leaf.row_sql]
        if not row_level:
            return None, None
        for leaf in row_level:
            checks = [a for k, a in leaf.extra.items() if k.startswith("check")]
            for alias in [leaf.value, *checks]:
                if not isinstance(alias, str) or alias not in self._values:
                    break
                got = self._values[alias]
                if got is not None and float(got) != 1.0:
                    break
            else:
                continue
            predicate = " AND ".join(str(leaf.row_sql) for leaf in row_level)
            # A unique key's frequency is 1 on every row its predicates read (the counted rows).
            for window in unique:
                predicate = re.sub(rf"\b{window}\b", "1", predicate)
            return None, f"count(*) FILTER (WHERE {predicate})"
        return int(self._values.get(self._rows_alias) or 0), None

    def _count_rows_passed(self, queries: list[str]) -> int:
        """Count the rows passing every row-level rule (a query of its own, run when asked)."""
        assert self._rows_passed_sql is not None
        aggregates = [self._rows_passed_sql]
        sql = self._plan.followup_query(PRIMARY, aggregates, self._windows_in(aggregates))
        self.queries.append(sql)
        queries.append(sql)
        row = first_row(self.con.execute(sql).fetchall())
        return int(row[0]) if row and row[0] is not None else 0

    def _compile(self, skip: Mapping[int, str]) -> None:
        self._plan = ScanPlan()
        self._leaves, self._inner = {}, {}
        self._rows_alias = self._plan.add("count(*)")
        for rule in self._leaves_of():
            if id(rule) in skip:
                continue
            self._leaves[id(rule)] = self._compile_rule(rule, self._plan)
        self._analyzer_plans = [
            [self._compile_rule(r, self._plan) for r in _analyzer_rules(a, self.schema)]
            for a in self.ruleset.analyzers
        ]

    def _compile_rule(self, rule: Rule, plan: ScanPlan) -> LeafPlan:
        if rule.rule_type == "DetectAnomalies":
            inner = Rule(rule.args[0], rule.parameters[1:])
            leaf = compile_leaf(inner, self.schema, plan, now=self.now)
            self._inner[id(rule)] = leaf
            return LeafPlan(rule, "special" if leaf.judge == "special" else "number")
        try:
            rule = self._resolve(rule)
        except DynamicRuleError as exc:
            return LeafPlan(rule, "fail", result="ERROR", message=str(exc))
        return compile_leaf(rule, self.schema, plan, now=self.now)

    def _resolve(self, rule: Rule) -> Rule:
        """The rule with its dynamic expressions replaced by numbers from the history."""
        if not (is_dynamic(rule.condition) or is_dynamic(rule.threshold)):
            return rule
        probe = replace(
            rule,
            condition=_static(rule.condition),
            threshold=_static(rule.threshold),
        )
        leaf = compile_leaf(probe, self.schema, ScanPlan(), now=self.now)
        main = _main_key(leaf)
        if is_dynamic(rule.condition) and rule.condition is not None and main is not None:
            rule = replace(
                rule, condition=resolve_condition(rule.condition, self._history_of(main))
            )
        compliance = next((k for k, a in leaf.metrics.items() if a == leaf.value), main)
        if is_dynamic(rule.threshold) and rule.threshold is not None and compliance:
            rule = replace(
                rule, threshold=resolve_condition(rule.threshold, self._history_of(compliance))
            )
        return rule

    def _history_of(self, key: str) -> Callable[[int], list[float]]:
        return lambda k: self.history.values(key, k)

    def _find_broken(self) -> dict[int, str]:
        """Leaves whose SQL does not bind, each tried alone on zero rows."""
        self.con.execute(
            f"CREATE OR REPLACE TEMP VIEW __dq_empty AS SELECT * FROM {quote_identifier(PRIMARY)} "
            "LIMIT 0"
        )
        broken: dict[int, str] = {}
        for rule in self._leaves_of():
            plan = ScanPlan()
            try:
                self._compile_rule(rule, plan)
                self.con.sql(plan.query("__dq_empty")).fetchall()
            except duckdb.Error as exc:
                message = str(exc).strip().splitlines()[0]
                if rule.where is not None:
                    message = (
                        f'Rule {rule.rule_type} where "{rule.where}" has provided an invalid '
                        f"where clause : {message}"
                    )
                broken[id(rule)] = message
        return broken

    # --- judging ---------------------------------------------------------------------------------

    def _value(self, ref: str | float | None) -> float | None:
        if ref is None or isinstance(ref, float | int):
            return None if ref is None else float(ref)
        raw = self._values.get(ref)
        return None if raw is None else float(raw)

    def _metrics(self, leaf: LeafPlan) -> dict[str, float]:
        found: dict[str, float] = {}
        for key, ref in leaf.metrics.items():
            value = self._value(ref)
            if value is not None:
                found[key] = value
        return found

    def _judge_node(self, node: RuleNode) -> _Outcome:
        if isinstance(node, Rule):
            if id(node) in self._errors:
                return _Outcome("ERROR", self._errors[id(node)], {})
            if node.rule_type == "DetectAnomalies":
                return self._judge_anomaly(node)
            return self._judge_leaf(self._leaves[id(node)])
        children = [self._judge_node(child) for child in node.children]
        metrics: dict[str, float] = {}
        for child in children:
            metrics.update(child.metrics)
        results = [c.result for c in children]
        if "ERROR" in results:
            result: Result = "ERROR"
        elif node.op == "AND":
            result = "PASS" if all(r == "PASS" for r in results) else "FAIL"
        else:
            result = "PASS" if "PASS" in results else "FAIL"
        messages = [c.message for c in children if c.result != "PASS" and c.message]
        message = "\n".join(messages) if result != "PASS" and messages else None
        return _Outcome(result, message, metrics)

    def _judge_leaf(self, leaf: LeafPlan) -> _Outcome:
        rule, metrics = leaf.rule, self._metrics(leaf)
        if leaf.judge == "fail":
            return _Outcome(leaf.result, leaf.message, metrics)
        if leaf.where_sql is not None and leaf.rows and self._value(leaf.rows) == 0:
            return _Outcome("PASS", "No rows matched the filter", metrics)
        value = self._value(leaf.value)
        if leaf.judge == "flag":
            checked = [self._value(a) for k, a in leaf.extra.items() if k.startswith("check")]
            for got in checked or [value]:
                if got != 1.0:
                    return _Outcome("FAIL", leaf.message or _ratio_message(got), metrics)
            return _Outcome("PASS", None, metrics)
        if leaf.judge == "compliance":
            if value is None:
                value = 1.0  # no rows: nothing fails
            threshold = rule.threshold
            ok = check_value(value, threshold, now=self.now) if threshold else value == 1.0
            message = None if ok else f"{value * 100:.2f} % of rows passed the threshold"
            return _Outcome("PASS" if ok else "FAIL", message, metrics)
        assert rule.condition is not None
        if leaf.judge == "length":
            for bound in ("max", "min"):
                length = self._value(leaf.extra[bound])
                if length is not None and not check_value(length, rule.condition, now=self.now):
                    return _Outcome("FAIL", _number_message(length), metrics)
            return _Outcome("PASS", None, metrics)
        ok = check_value(value, rule.condition, now=self.now)
        if ok:
            return _Outcome("PASS", None, metrics)
        message = _ratio_message(value) if leaf.judge == "ratio" else _number_message(value)
        return _Outcome("FAIL", message, metrics)

    def _judge_anomaly(self, rule: Rule) -> _Outcome:
        inner = self._inner[id(rule)]
        if inner.judge == "special":
            inner = evaluate_special(
                inner.rule,
                self.con,
                self.schema,
                self.references,
                int(self._values.get(self._rows_alias) or 0),
                self.queries,
            )
        if inner.judge == "fail":
            return _Outcome("ERROR", inner.message, {})
        metrics = self._metrics(inner)
        key = _main_key(inner)
        value = self._value(inner.value)
        if key is None or value is None:
            return _Outcome("ERROR", f"DetectAnomalies: {rule.args[0]} gave no metric", metrics)
        verdict = anomalies.detect(value, self.history.values(key, anomalies.WINDOW))
        result: Result = "FAIL" if verdict.anomalous else "PASS"
        return _Outcome(result, verdict.message, metrics)

    def _analyzer_metrics(self, index: int) -> dict[str, float]:
        found: dict[str, float] = {}
        for leaf in self._analyzer_plans[index]:
            found.update(self._metrics(leaf))
        # The stand-in conditions of AllStatistics only serve to get min and max.
        return {k: v for k, v in found.items() if not k.endswith("Compliance")}

    def _row_sql(self, node: RuleNode) -> str | None:
        if isinstance(node, Rule):
            if id(node) in self._errors or id(node) not in self._leaves:
                return None
            return self._leaves[id(node)].row_sql
        parts = [self._row_sql(child) for child in node.children]
        if any(p is None for p in parts):
            return None
        return "(" + f" {node.op} ".join(f"({p})" for p in parts) + ")"


def _static(condition: Any) -> Any:
    """A condition of the same shape with every dynamic operand set to 0 (to learn metric keys)."""
    if condition is None or not is_dynamic(condition):
        return condition
    return resolve_condition(condition, lambda k: [0.0] * k)


def _main_key(leaf: LeafPlan) -> str | None:
    """The metric a dynamic rule compares with its history: the one the rule judges."""
    for key, ref in leaf.metrics.items():
        if ref == leaf.value:
            return key
    cond = leaf.rule.condition
    if leaf.rule.rule_type == "ColumnValues" and isinstance(cond, Comparison):
        suffix = ".Minimum" if cond.op in (">", ">=") else ".Maximum"
        return next((k for k in leaf.metrics if k.endswith(suffix)), None)
    return next(iter(leaf.metrics), None)


def _analyzer_rules(analyzer: Any, schema: Schema) -> list[Rule]:
    from dataflow.quality.dqdl.ast import Parameter

    kind, params = analyzer.analyzer_type, analyzer.parameters
    if kind == "AllStatistics":
        column = schema.resolve(params[0].value) or params[0].value
        param = (Parameter(column),)
        rules = [Rule("RowCount"), Rule("ColumnCount")]
        rules += [Rule(t, param) for t in ("Completeness", "Uniqueness", "Entropy")]
        if schema.resolve(column) and schema.is_numeric(column):
            rules += [Rule(t, param) for t in ("Mean", "StandardDeviation", "Sum")]
            rules.append(Rule("ColumnValues", param, Comparison(">", NumberLiteral(0))))
        else:
            rules.append(Rule("ColumnLength", param, Comparison(">=", NumberLiteral(0))))
        return rules
    if kind == "ColumnLength":
        return [Rule(kind, params, Comparison(">=", NumberLiteral(0)))]
    return [Rule(kind, params)]


def _number_message(value: float | None) -> str:
    shown = "NULL" if value is None else format_java(value)
    return f"Value: {shown} does not meet the constraint requirement!"


def _ratio_message(value: float | None) -> str:
    shown = "NULL" if value is None else format_java(value)
    return f"Value: {shown} does not meet the constraint requirement."


def evaluate(
    ruleset: Ruleset,
    con: duckdb.DuckDBPyConnection,
    *,
    references: Iterable[str] = (),
    history: MetricHistory | None = None,
    now: dt.datetime | None = None,
    dataset: str = PRIMARY,
    ruleset_name: str = "",
    evaluation_context: str = DEFAULT_CONTEXT,
) -> EvaluationResult:
    """Evaluate ``ruleset`` over the view ``"primary"`` of ``con`` (see :class:`Evaluator`)."""
    evaluator = Evaluator(ruleset, con, references=references, history=history, now=now)
    return evaluator.run(
        dataset=dataset, ruleset_name=ruleset_name, evaluation_context=evaluation_context
    )
