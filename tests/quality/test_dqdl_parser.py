"""The DQDL parser as a specification: fixture rulesets -> AST, bad rulesets -> Glue's errors.

Valid cases are ``fixtures/dqdl_valid/<name>.dqdl`` with the expected tree as plain data in
``<name>.json``; invalid cases are ``fixtures/dqdl_invalid.yaml`` (text -> message, line, column).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

import dataflow.quality
from dataflow.errors import ConfigError
from dataflow.quality.dqdl import (
    RULE_TYPES,
    Between,
    BinaryOp,
    Comparison,
    CompositeRule,
    DateLiteral,
    DqdlParseError,
    FunctionCall,
    In,
    Matches,
    Now,
    NumberLiteral,
    Parameter,
    Rule,
    RuleNode,
    Ruleset,
    StringLiteral,
    VariableRef,
    format_rule,
    parse_rule,
    parse_ruleset,
    to_data,
)
from dataflow.quality.dqdl.ast import format_ruleset
from dataflow.quality.dqdl.lexer import tokenize

FIXTURES = Path(__file__).parent / "fixtures"
VALID = sorted((FIXTURES / "dqdl_valid").glob("*.dqdl"))
INVALID = yaml.safe_load((FIXTURES / "dqdl_invalid.yaml").read_text())


def leaves(node: RuleNode) -> list[Rule]:
    if isinstance(node, CompositeRule):
        return [leaf for child in node.children for leaf in leaves(child)]
    return [node]


def all_nodes(data: Any) -> list[dict[str, Any]]:
    """Every AST node (as plain data) anywhere inside ``data``."""
    found: list[dict[str, Any]] = []
    if isinstance(data, dict):
        if "node" in data:
            found.append(data)
        for value in data.values():
            found.extend(all_nodes(value))
    elif isinstance(data, list):
        for item in data:
            found.extend(all_nodes(item))
    return found


# --- valid rulesets ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", VALID, ids=[p.stem for p in VALID])
def test_valid_ruleset_parses_to_the_expected_tree(path: Path) -> None:
    expected = json.loads(path.with_suffix(".json").read_text())
    assert to_data(parse_ruleset(path.read_text())) == expected


@pytest.mark.parametrize("path", VALID, ids=[p.stem for p in VALID])
def test_every_rule_prints_back_to_dqdl_that_parses_to_the_same_tree(path: Path) -> None:
    ruleset = parse_ruleset(path.read_text())
    for rule in ruleset.rules:
        printed = format_rule(rule)
        again = parse_rule(printed, constants=ruleset.constants)
        assert again == rule, printed
        assert format_rule(again) == printed
    assert parse_ruleset(format_ruleset(ruleset)) == ruleset


def test_fixtures_cover_every_rule_type_condition_and_operand() -> None:
    nodes = [n for path in VALID for n in all_nodes(to_data(parse_ruleset(path.read_text())))]
    rule_types = {n["rule_type"] for n in nodes if n["node"] == "Rule"}
    analyzer_types = {n["analyzer_type"] for n in nodes if n["node"] == "Analyzer"}
    assert rule_types == {t.name for t in RULE_TYPES.values() if not t.analyzer_only}
    assert "AllStatistics" in analyzer_types
    kinds = {n["node"] for n in nodes}
    assert kinds >= {
        "Comparison", "Between", "In", "Matches", "NumberLiteral", "StringLiteral",
        "VariableRef", "NullKeyword", "Empty", "WhitespacesOnly", "Now", "DateLiteral",
        "TimeLiteral", "Duration", "Size", "FunctionCall", "BinaryOp", "CompositeRule",
    }  # fmt: skip
    ops = {n["op"] for n in nodes if n["node"] == "Comparison"}
    assert ops == {"=", "!=", ">", ">=", "<", "<="}
    for kind in ("Between", "In", "Matches"):
        assert {n["negated"] for n in nodes if n["node"] == kind} == {True, False}, kind
    functions = {n["name"] for n in nodes if n["node"] == "FunctionCall"}
    assert functions == {"last", "avg", "median", "min", "max", "sum", "std", "abs", "index"}
    units = {n["unit"] for n in nodes if n["node"] in ("Duration", "Size")}
    assert units == {"days", "hours", "minutes", "B", "KB", "MB", "GB", "TB"}


# --- invalid rulesets ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", INVALID, ids=[c["name"] for c in INVALID])
def test_invalid_ruleset_fails_with_glues_message_and_position(case: dict[str, Any]) -> None:
    with pytest.raises(DqdlParseError) as caught:
        parse_ruleset(case["text"])
    err = caught.value
    assert (err.reason, err.line, err.column, err.text) == (
        case["reason"],
        case["line"],
        case["column"],
        str(case["at"]),
    )
    assert str(err).startswith(f"Parsing Error: {case['reason']} (line {case['line']}, ")
    assert "\n" not in str(err)


def test_a_parse_error_is_a_config_error_that_exits_2() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_ruleset("Rules = [ Foo ]")
    assert caught.value.exit_code == 2
    assert (
        str(caught.value)
        == 'Parsing Error: Rule Type: Foo is not valid (line 1, column 11, at "Foo")'
    )


# --- semantics the goldens encode, stated once by hand ------------------------------------------


def test_and_binds_tighter_than_or() -> None:
    rule = parse_rule('(IsComplete "a") or (IsComplete "b") and (IsComplete "c")')
    assert isinstance(rule, CompositeRule)
    assert rule.op == "OR"
    assert [type(c).__name__ for c in rule.children] == ["Rule", "CompositeRule"]


def test_arithmetic_is_left_associative_without_precedence() -> None:
    rule = parse_rule("RowCount > 1 + 2 * 3")
    assert isinstance(rule, Rule)
    assert rule.condition == Comparison(
        ">",
        BinaryOp("*", BinaryOp("+", NumberLiteral(1), NumberLiteral(2)), NumberLiteral(3)),
    )
    assert format_rule(rule) == "RowCount > (1 + 2) * 3"


def test_a_quoted_date_is_a_date_and_between_keeps_its_bounds() -> None:
    rule = parse_rule('ColumnValues "d" between "2022-01-01" and (now() - 3 days)')
    assert isinstance(rule, Rule)
    assert isinstance(rule.condition, Between)
    assert rule.condition.low == DateLiteral(dt.date(2022, 1, 1))
    assert isinstance(rule.condition.high, Now)
    assert rule.condition.high.sign == "-"
    assert not rule.condition.negated


def test_constants_are_resolved_and_remembered() -> None:
    ruleset = parse_ruleset(
        'sql = "select count(*) from primary"\nok = ["a", "b"]\n'
        'Rules = [ CustomSql $sql > 0, ColumnValues "c" not in $ok ]'
    )
    custom, values = ruleset.rules
    assert isinstance(custom, Rule)
    assert isinstance(values, Rule)
    assert custom.parameters == (Parameter("select count(*) from primary", variable="sql"),)
    assert custom.args == ("select count(*) from primary",)
    assert values.condition == In(VariableRef("ok", ("a", "b")), negated=True)


def test_rule_text_is_the_source_and_is_not_compared() -> None:
    ruleset = parse_ruleset('Rules = [\n  ColumnValues   "c"  matches "[a-z]+"  # letters\n]')
    rule = ruleset.rules[0]
    assert rule.text == 'ColumnValues   "c"  matches "[a-z]+"'
    assert rule == dataclasses.replace(rule, text="something else")
    assert isinstance(rule, Rule)
    assert rule.condition == Matches("[a-z]+")


def test_labels_for_merges_default_labels_under_the_rules_own() -> None:
    ruleset = parse_ruleset(
        'DefaultLabels = ["team"="data", "severity"="low"]\n'
        'Rules = [ RowCount > 0 labels=["severity"="high"], ColumnCount > 0 ]'
    )
    assert ruleset.labels_for(ruleset.rules[0]) == {"team": "data", "severity": "high"}
    assert ruleset.labels_for(ruleset.rules[1]) == {"team": "data", "severity": "low"}


def test_dynamic_expression_tree() -> None:
    rule = parse_rule("RowCount > avg(last(10)) * 0.8")
    assert isinstance(rule, Rule)
    last = FunctionCall("last", (NumberLiteral(10),))
    assert rule.condition == Comparison(
        ">", BinaryOp("*", FunctionCall("avg", (last,)), NumberLiteral(0.8))
    )


def test_analyzers_only_document() -> None:
    ruleset = parse_ruleset('Analyzers = [ RowCount, AllStatistics "close" ]')
    assert ruleset.rules == ()
    assert [(a.analyzer_type, a.args) for a in ruleset.analyzers] == [
        ("RowCount", ()),
        ("AllStatistics", ("close",)),
    ]


def test_strings_keep_backslashes_that_are_not_escapes() -> None:
    tokens = tokenize(r'"[A-Z]\d" "say \"hi\"" "C:\\temp"')
    assert [t.value for t in tokens[:3]] == [r"[A-Z]\d", 'say "hi"', "C:\\temp"]
    rule = parse_rule(r'ColumnValues "c" = "a\\"')
    assert isinstance(rule, Rule)
    assert rule.condition == Comparison("=", StringLiteral("a\\"))
    assert parse_rule(format_rule(rule)) == rule


def test_positions_count_lines_inside_multi_line_strings() -> None:
    with pytest.raises(DqdlParseError) as caught:
        parse_ruleset('Rules = [\n  CustomSql "select 1\n  from primary" > 0,\n  Nope > 1\n]')
    assert (caught.value.line, caught.value.column) == (4, 3)


def test_rule_table_matches_the_reference() -> None:
    where = {name for name, t in RULE_TYPES.items() if t.where}
    assert where == {
        "RowCount", "Completeness", "IsComplete", "ColumnDataType", "ColumnCorrelation",
        "Uniqueness", "IsUnique", "Mean", "Sum", "StandardDeviation", "Variance", "Entropy",
        "DistinctValuesCount", "UniqueValueRatio", "ColumnLength", "IsPrimaryKey",
        "ColumnValues", "DataFreshness", "ColumnNamesMatchPattern",
    }  # fmt: skip
    threshold = {name for name, t in RULE_TYPES.items() if t.threshold}
    assert threshold == {"ColumnValues", "ColumnDataType", "CustomSql", "FileFreshness", "FileSize"}


def test_public_api_is_curated() -> None:
    assert dataflow.quality.__all__ == sorted(dataflow.quality.__all__)
    assert dataflow.quality.parse_ruleset is parse_ruleset
    assert isinstance(dataflow.quality.parse_ruleset("Rules = [ RowCount > 0 ]"), Ruleset)
