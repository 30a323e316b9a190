"""The data-quality stage: Glue Data Quality (DQDL) rulesets run locally.

Only the parser exists so far (``dataflow.quality.dqdl``); the evaluator will compile a parsed
ruleset to SQL.

Example:
    >>> from dataflow.quality import parse_ruleset
    >>> len(parse_ruleset("Rules = [ RowCount > 0 ]").rules)
    1
"""

from __future__ import annotations

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

__all__ = [
    "Analyzer",
    "CompositeRule",
    "DqdlParseError",
    "Rule",
    "RuleNode",
    "Ruleset",
    "format_rule",
    "format_ruleset",
    "load_ruleset",
    "parse_rule",
    "parse_ruleset",
]
