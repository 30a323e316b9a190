"""The data-quality stage: Glue Data Quality (DQDL) rulesets run locally.

``dataflow.quality.dqdl`` parses the language; the evaluator compiles a parsed ruleset to SQL (all
simple aggregates of a table in one scan), judges each rule as Glue does and records every
evaluation, whose history dynamic rules (``last(k)``) and DetectAnomalies read.

Example:
    >>> from dataflow.quality import parse_ruleset
    >>> len(parse_ruleset("Rules = [ RowCount > 0 ]").rules)
    1
"""

from __future__ import annotations

from dataflow.quality.check import CheckOutcome, check_ruleset
from dataflow.quality.dqdl import (
    Analyzer,
    CompositeRule,
    DqdlParseError,
    Rule,
    RuleNode,
    Ruleset,
    format_rule,
    format_ruleset,
    load_ruleset,
    parse_rule,
    parse_ruleset,
)
from dataflow.quality.evaluate import Evaluator
from dataflow.quality.history import HistoryStore
from dataflow.quality.outcomes import EvaluationResult

__all__ = [
    "Analyzer",
    "CheckOutcome",
    "CompositeRule",
    "DqdlParseError",
    "EvaluationResult",
    "Evaluator",
    "HistoryStore",
    "Rule",
    "RuleNode",
    "Ruleset",
    "check_ruleset",
    "format_rule",
    "format_ruleset",
    "load_ruleset",
    "parse_rule",
    "parse_ruleset",
]
