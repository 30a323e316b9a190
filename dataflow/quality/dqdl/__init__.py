"""DQDL, the rule language of AWS Glue Data Quality: lexer, parser, syntax tree, rule types.

Example:
    >>> from dataflow.quality.dqdl import format_rule, parse_ruleset
    >>> ruleset = parse_ruleset('Rules = [ (RowCount > 0) and (IsComplete "close") ]')
    >>> format_rule(ruleset.rules[0])
    '(RowCount > 0) AND (IsComplete "close")'
"""

from __future__ import annotations

from dataflow.errors import DqdlParseError
from dataflow.quality.dqdl.ast import (
    Analyzer,
    Between,
    BinaryOp,
    Comparison,
    CompositeRule,
    Condition,
    DateExpr,
    DateLiteral,
    Duration,
    DynamicExpr,
    Empty,
    FunctionCall,
    In,
    Matches,
    Now,
    NullKeyword,
    NumberLiteral,
    Operand,
    Parameter,
    Rule,
    RuleNode,
    Ruleset,
    Size,
    StringLiteral,
    TimeLiteral,
    VariableRef,
    WhitespacesOnly,
    format_condition,
    format_rule,
    format_ruleset,
    to_data,
)
from dataflow.quality.dqdl.parser import condition_kinds, load_ruleset, parse_rule, parse_ruleset
from dataflow.quality.dqdl.rules import FUNCTIONS, RULE_TYPES, RuleType, get_rule_type

__all__ = [
    "FUNCTIONS",
    "RULE_TYPES",
    "Analyzer",
    "Between",
    "BinaryOp",
    "Comparison",
    "CompositeRule",
    "Condition",
    "DateExpr",
    "DateLiteral",
    "DqdlParseError",
    "Duration",
    "DynamicExpr",
    "Empty",
    "FunctionCall",
    "In",
    "Matches",
    "Now",
    "NullKeyword",
    "NumberLiteral",
    "Operand",
    "Parameter",
    "Rule",
    "RuleNode",
    "RuleType",
    "Ruleset",
    "Size",
    "StringLiteral",
    "TimeLiteral",
    "VariableRef",
    "WhitespacesOnly",
    "condition_kinds",
    "format_condition",
    "format_rule",
    "format_ruleset",
    "get_rule_type",
    "load_ruleset",
    "parse_rule",
    "parse_ruleset",
    "to_data",
]
