"""Dynamic rules: ``RowCount > avg(last(10)) * 0.8`` resolved against the metric's history.

Semantics (``shared/reference/aws-semantics.md`` §1.6): ``last(k)`` is the previous k values of
the same metric for the same dataset, ruleset and evaluation context, most recent first; with no
history it is ``0.0``, with fewer than k values all there are. ``last()`` / ``last(1)`` is a
number, ``last(k)`` for k > 1 a list, and a list where a number is expected is an error.
``avg median min max sum std`` reduce a list (``std`` is the population standard deviation, as
``StandardDeviation``), ``abs`` takes a number, ``index(last(k), i)`` picks one value (0 = most
recent; out of range is an error). Arithmetic is left-associative as written.

Example:
    >>> from dataflow.quality.dqdl import parse_rule
    >>> rule = parse_rule("RowCount > avg(last(3)) * 0.5")
    >>> resolve_condition(rule.condition, lambda k: [10.0, 20.0, 30.0][:k])
    Comparison(op='>', operand=NumberLiteral(value=10.0))
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import replace

from dataflow.errors import QualityError
from dataflow.quality.dqdl.ast import (
    Between,
    BinaryOp,
    Comparison,
    Condition,
    FunctionCall,
    In,
    NumberLiteral,
    Operand,
)

History = Callable[[int], list[float]]
"""``history(k)``: up to k previous values of the metric, most recent first."""


class DynamicRuleError(QualityError):
    """A dynamic expression that cannot be evaluated (the rule's outcome is ERROR)."""


def is_dynamic(condition: Condition | None) -> bool:
    """The condition uses ``last()`` or arithmetic, and so needs the metric's history."""
    if condition is None:
        return False
    return any(isinstance(op, FunctionCall | BinaryOp) for op in _operands(condition))


def _operands(condition: Condition) -> list[Operand]:
    match condition:
        case Comparison(_, operand):
            return [operand]
        case Between(low, high):
            return [low, high]
        case In(values) if isinstance(values, tuple):
            return list(values)
    return []


def resolve_condition(condition: Condition, history: History) -> Condition:
    """The condition with every dynamic operand replaced by its number.

    Raises:
        DynamicRuleError: a list where a number is expected, an index out of range, a division
            by zero, or an unknown function.
    """

    def number(operand: Operand) -> Operand:
        if isinstance(operand, FunctionCall | BinaryOp):
            return NumberLiteral(_as_number(evaluate(operand, history)))
        return operand

    match condition:
        case Comparison(_, operand):
            return replace(condition, operand=number(operand))
        case Between(low, high):
            return replace(condition, low=number(low), high=number(high))
        case In(values) if isinstance(values, tuple):
            return replace(condition, values=tuple(number(v) for v in values))
    return condition


def evaluate(operand: Operand, history: History) -> float | list[float]:
    """The value of a dynamic expression: a number or (for ``last(k)``, k > 1) a list."""
    match operand:
        case NumberLiteral(value):
            return float(value)
        case BinaryOp(op, left, right):
            a = _as_number(evaluate(left, history))
            b = _as_number(evaluate(right, history))
            if op == "/" and b == 0:
                raise DynamicRuleError("division by zero in a dynamic rule")
            return {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else 0.0}[op]
        case FunctionCall(name, args):
            return _call(name, [evaluate(arg, history) for arg in args], history)
    raise DynamicRuleError(f"{type(operand).__name__} is not allowed in a dynamic rule")


def _call(name: str, args: list[float | list[float]], history: History) -> float | list[float]:
    if name == "last":
        k = int(_as_number(args[0])) if args else 1
        if k < 1:
            raise DynamicRuleError(f"last({k}): k must be at least 1")
        values = history(k) or [0.0]
        return values[0] if k == 1 else values
    if name == "index":
        if len(args) != 2:
            raise DynamicRuleError("index takes a list and a position: index(last(5), 0)")
        values, position = _as_list(args[0]), int(_as_number(args[1]))
        if not 0 <= position < len(values):
            raise DynamicRuleError(
                f"index {position} is out of range for {len(values)} value(s) of history"
            )
        return values[position]
    if name == "abs":
        return abs(_as_number(args[0]))
    reducers: dict[str, Callable[[list[float]], float]] = {
        "avg": statistics.fmean,
        "median": statistics.median,
        "min": min,
        "max": max,
        "sum": lambda v: float(sum(v)),
        "std": statistics.pstdev,
    }
    if name not in reducers or len(args) != 1:
        raise DynamicRuleError(f"unknown dynamic function {name}() with {len(args)} argument(s)")
    return float(reducers[name](_as_list(args[0])))


def _as_number(value: float | list[float]) -> float:
    if isinstance(value, list):
        raise DynamicRuleError(
            f"a list of {len(value)} values is compared where a number is expected — use "
            "avg(last(k)), index(last(k), 0) or last(1)"
        )
    return value


def _as_list(value: float | list[float]) -> list[float]:
    return value if isinstance(value, list) else [value]


__all__ = ["DynamicRuleError", "History", "evaluate", "is_dynamic", "resolve_condition"]
