"""DQDL nested absurdly deep is a parse error with its position, not a RecursionError."""

from __future__ import annotations

import pytest

from dataflow.errors import DqdlParseError
from dataflow.quality.dqdl import parse_ruleset
from dataflow.quality.dqdl.parser import MAX_NESTING


def nested(depth: int) -> dict[str, str]:
    return {
        "rules": "Rules = [ " + "(" * depth + "RowCount > 0" + ")" * depth + " ]",
        "operand": 'Rules = [ Mean "x" > ' + "(" * depth + "1" + ")" * depth + " ]",
        "function": 'Rules = [ Mean "x" > ' + "abs(" * depth + "1" + ")" * depth + " ]",
    }


@pytest.mark.parametrize("kind", ["rules", "operand", "function"])
def test_nesting_up_to_the_limit_parses(kind: str) -> None:
    assert len(parse_ruleset(nested(MAX_NESTING)[kind]).rules) == 1


@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 5_000, 100_000])
@pytest.mark.parametrize("kind", ["rules", "operand", "function"])
def test_deeper_nesting_is_a_parse_error(kind: str, depth: int) -> None:
    with pytest.raises(DqdlParseError, match=r"Nested more than 50 levels deep \(line 1, col"):
        parse_ruleset(nested(depth)[kind])
