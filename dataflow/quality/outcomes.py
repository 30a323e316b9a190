"""The outcome of an evaluation, with Glue Data Quality's field names.

``RuleResult.to_glue()`` is a ``DataQualityRuleResult`` of the Glue API (``Name``, ``Description``,
``Result``, ``EvaluationMessage``, ``EvaluatedMetrics``, ``Labels``); ``EvaluationResult.to_glue()``
is the body of ``GetDataQualityResult`` (``Score``, ``RuleResults``, ``AnalyzerResults``,
``AggregatedMetrics``, ...). See ``shared/reference/aws-semantics.md`` §1.8.

Example:
    >>> RuleResult("Rule_0", "RowCount > 0", "PASS", None, {"Dataset.*.RowCount": 3.0}).to_glue()
    {'Name': 'Rule_0', 'Description': 'RowCount > 0', 'Result': 'PASS', \
'EvaluatedMetrics': {'Dataset.*.RowCount': 3.0}, 'Labels': {}}
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

Result: TypeAlias = Literal["PASS", "FAIL", "ERROR"]

DEFAULT_CONTEXT = "default_context"
"""Glue's ``dataQualityEvaluationContext`` when none is given."""


@dataclass
class RuleResult:
    """One top-level rule's outcome (``DataQualityRuleResult``)."""

    name: str
    description: str
    result: Result
    message: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)

    def to_glue(self) -> dict[str, Any]:
        """The outcome with Glue's field names (no ``EvaluationMessage`` on a plain PASS)."""
        data: dict[str, Any] = {
            "Name": self.name,
            "Description": self.description,
            "Result": self.result,
        }
        if self.message is not None:
            data["EvaluationMessage"] = self.message
        data["EvaluatedMetrics"] = dict(self.metrics)
        data["Labels"] = dict(self.labels)
        return data


@dataclass
class AnalyzerResult:
    """An analyzer's metrics (``DataQualityAnalyzerResult``): no outcome."""

    name: str
    description: str
    metrics: dict[str, float] = field(default_factory=dict)
    message: str | None = None

    def to_glue(self) -> dict[str, Any]:
        """The metrics with Glue's field names."""
        data: dict[str, Any] = {"Name": self.name, "Description": self.description}
        if self.message is not None:
            data["EvaluationMessage"] = self.message
        data["EvaluatedMetrics"] = dict(self.metrics)
        return data


@dataclass
class EvaluationResult:
    """One evaluation of a ruleset over a dataset.

    Attributes:
        rule_results: one per top-level rule, named ``Rule_0``, ``Rule_1``, ... in document order.
        analyzer_results: one per analyzer.
        rows: rows in the dataset; ``rows_passed`` / ``rows_failed`` by the row-level rules
            (None without row-level rules). When some row-level rule failed a row, the count
            takes a query of its own, run on first access (``count_passed``).
        queries: the SQL statements the evaluation ran, in order (the scan plan is the first).
        count_passed: counts the rows passed when ``rows_passed`` is first read (then dropped).
    """

    ruleset_name: str
    dataset: str
    rule_results: list[RuleResult]
    analyzer_results: list[AnalyzerResult] = field(default_factory=list)
    rows: int = 0
    known_rows_passed: int | None = None
    evaluation_context: str = DEFAULT_CONTEXT
    started_on: dt.datetime | None = None
    completed_on: dt.datetime | None = None
    result_id: str | None = None
    run_id: str | None = None
    snapshot_id: str | None = None
    ruleset_hash: str | None = None
    queries: list[str] = field(default_factory=list)
    count_passed: Callable[[], int] | None = field(default=None, repr=False, compare=False)

    @property
    def rows_passed(self) -> int | None:
        """Rows for which every row-level rule passed (None without row-level rules)."""
        if self.count_passed is not None:
            # Only asked for when someone reads it: the evaluation itself does not need it.
            self.known_rows_passed, self.count_passed = self.count_passed(), None
        return self.known_rows_passed

    @rows_passed.setter
    def rows_passed(self, value: int | None) -> None:
        self.known_rows_passed, self.count_passed = value, None

    @property
    def rows_failed(self) -> int | None:
        """Rows for which some row-level rule failed (None without row-level rules)."""
        passed = self.rows_passed
        return None if passed is None else self.rows - passed

    @property
    def score(self) -> float:
        """Rules passed / rules evaluated (1.0 with no rules)."""
        if not self.rule_results:
            return 1.0
        return self.count("PASS") / len(self.rule_results)

    @property
    def passed(self) -> bool:
        """Every rule passed."""
        return all(r.result == "PASS" for r in self.rule_results)

    def count(self, result: Result) -> int:
        """How many rules have this result."""
        return sum(r.result == result for r in self.rule_results)

    def summary(self) -> dict[str, Any]:
        """One line of ``dataflow dq history``: ids, score and rule counts.

        ``CompletedOn`` is the datetime itself: each caller writes it as its output needs.
        """
        return {
            "ResultId": self.result_id,
            "CompletedOn": self.completed_on,
            "RulesetName": self.ruleset_name,
            "EvaluationContext": self.evaluation_context,
            "Score": self.score,
            "RulesPassed": self.count("PASS"),
            "RulesFailed": self.count("FAIL"),
            "RulesErrored": self.count("ERROR"),
            "Rows": self.rows,
            "SnapshotId": self.snapshot_id,
            "RunId": self.run_id,
        }

    def aggregated_metrics(self) -> dict[str, float]:
        """Glue's ``AggregatedMetrics``."""
        passed = self.rows if self.rows_passed is None else self.rows_passed
        return {
            "TotalRowsProcessed": float(self.rows),
            "TotalRowsPassed": float(passed),
            "TotalRowsFailed": float(self.rows - passed),
            "TotalRulesProcessed": float(len(self.rule_results)),
            "TotalRulesPassed": float(self.count("PASS")),
            "TotalRulesFailed": float(self.count("FAIL") + self.count("ERROR")),
        }

    def metrics(self) -> dict[str, float]:
        """Every metric of the evaluation (rules then analyzers), by Glue metric key."""
        found: dict[str, float] = {}
        for rule in self.rule_results:
            found.update(rule.metrics)
        for analyzer in self.analyzer_results:
            found.update(analyzer.metrics)
        return found

    def to_glue(self) -> dict[str, Any]:
        """The evaluation as ``GetDataQualityResult`` returns it (the subset that applies)."""
        data: dict[str, Any] = {
            "ResultId": self.result_id,
            "Score": self.score,
            "DataSource": self.dataset,
            "RulesetName": self.ruleset_name,
            "EvaluationContext": self.evaluation_context,
            "StartedOn": self.started_on.isoformat() if self.started_on else None,
            "CompletedOn": self.completed_on.isoformat() if self.completed_on else None,
            "JobRunId": self.run_id,
            "RuleResults": [r.to_glue() for r in self.rule_results],
            "AnalyzerResults": [a.to_glue() for a in self.analyzer_results],
            "AggregatedMetrics": self.aggregated_metrics(),
        }
        return data


__all__ = ["DEFAULT_CONTEXT", "AnalyzerResult", "EvaluationResult", "Result", "RuleResult"]
