"""The typed syntax tree of a DQDL ruleset, its parse error, and printing back to DQDL text.

Every node is a frozen dataclass, so two parses of the same ruleset compare equal. The source text
of a rule (``Rule.text``, Glue's rule ``Description``) is kept but left out of comparisons, so that
``parse_rule(format_rule(rule)) == rule`` holds however the original was spaced.

Tree shape (see ``docs`` of Glue Data Quality, DQDL reference)::

    Ruleset(metadata, data_sources, constants, default_labels, rules, analyzers)
    rules:      Rule(rule_type, parameters, condition, where, threshold, tags, labels, text)
                CompositeRule(op "AND" | "OR", children, labels, text)
    condition:  Comparison(op, operand) | Between(low, high, negated)
                | In(values, negated) | Matches(pattern, negated)
    operands:   NumberLiteral, StringLiteral, VariableRef, NullKeyword, Empty, WhitespacesOnly,
                Now, DateLiteral, TimeLiteral, Duration, Size, FunctionCall, BinaryOp
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, fields, is_dataclass
from decimal import Decimal
from typing import Any, Literal, TypeAlias

# --- operands ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NumberLiteral:
    """A number: ``3``, ``-0.5`` (int when written without a decimal point)."""

    value: int | float


@dataclass(frozen=True)
class StringLiteral:
    """A quoted string, unescaped."""

    value: str


@dataclass(frozen=True)
class VariableRef:
    """``$name`` in a condition, with the constant's value resolved at parse time."""

    name: str
    value: str | tuple[str, ...]


@dataclass(frozen=True)
class NullKeyword:
    """``NULL`` (any case accepted by the lexer, printed upper case)."""


@dataclass(frozen=True)
class Empty:
    """``EMPTY``: the empty string."""


@dataclass(frozen=True)
class WhitespacesOnly:
    """``WHITESPACES_ONLY``: a non-empty string of only whitespace."""


DurationUnit: TypeAlias = Literal["days", "hours", "minutes"]
ArithmeticOp: TypeAlias = Literal["+", "-", "*", "/"]
SizeUnit: TypeAlias = Literal["B", "KB", "MB", "GB", "TB"]


@dataclass(frozen=True)
class Duration:
    """``24 hours``: DataFreshness conditions and ``now()`` offsets."""

    amount: int
    unit: DurationUnit


@dataclass(frozen=True)
class Size:
    """``5 MB``: FileSize conditions."""

    amount: int
    unit: SizeUnit


@dataclass(frozen=True)
class Now:
    """``now()`` or ``(now() - 3 days)``: sign is None when there is no offset."""

    sign: Literal["+", "-"] | None = None  # "+" and "-" are also ArithmeticOp values
    offset: Duration | None = None


@dataclass(frozen=True)
class DateLiteral:
    """``"2022-06-30"``: a date (a quoted ``YYYY-MM-DD`` is a date, not a string)."""

    value: dt.date


@dataclass(frozen=True)
class TimeLiteral:
    """``"9:30 AM"`` or ``"21:45"``, kept as written; ``value`` is the time of day."""

    text: str
    value: dt.time


@dataclass(frozen=True)
class FunctionCall:
    """A dynamic expression call: ``last(3)``, ``avg(last(10))``, ``index(last(5), 0)``."""

    name: str
    args: tuple[NumericOperand, ...]


@dataclass(frozen=True)
class BinaryOp:
    """``left op right``. DQDL arithmetic has no precedence: it is left-associative as written."""

    op: ArithmeticOp
    left: NumericOperand
    right: NumericOperand


DateExpr: TypeAlias = Now | DateLiteral | TimeLiteral
DynamicExpr: TypeAlias = FunctionCall | BinaryOp
NumericOperand: TypeAlias = NumberLiteral | FunctionCall | BinaryOp
Operand: TypeAlias = (
    NumberLiteral
    | StringLiteral
    | VariableRef
    | NullKeyword
    | Empty
    | WhitespacesOnly
    | Now
    | DateLiteral
    | TimeLiteral
    | Duration
    | Size
    | FunctionCall
    | BinaryOp
)

# --- conditions ----------------------------------------------------------------------------------

ComparisonOp: TypeAlias = Literal["=", "!=", ">", ">=", "<", "<="]


@dataclass(frozen=True)
class Comparison:
    """``> 3``, ``= "a"``, ``!= NULL``, ``<= 24 hours``, ``> (now() - 1 days)``."""

    op: ComparisonOp
    operand: Operand


@dataclass(frozen=True)
class Between:
    """``between low and high``: exclusive at both ends; ``not between`` is its complement."""

    low: Operand
    high: Operand
    negated: bool = False


@dataclass(frozen=True)
class In:
    """``in [a, b]`` / ``not in [a, b]``, or ``in $list`` (a VariableRef to a list constant)."""

    values: tuple[Operand, ...] | VariableRef
    negated: bool = False


@dataclass(frozen=True)
class Matches:
    """``matches "re"``: the regex must match the whole string."""

    pattern: str
    negated: bool = False


Condition: TypeAlias = Comparison | Between | In | Matches

# --- rules ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Parameter:
    """A rule parameter: its value, and the constant it came from when written ``$name``."""

    value: str
    variable: str | None = None


@dataclass(frozen=True)
class Rule:
    """One rule: ``ColumnValues "c" > 3 where "x = 1" with threshold > 0.9 labels=["k"="v"]``.

    Attributes:
        rule_type: e.g. ``ColumnValues`` (see ``dataflow.quality.dqdl.rules.RULE_TYPES``).
        parameters: the parameters in order, constants resolved.
        condition: None for boolean rule types (and the row form of CustomSql).
        where: the Spark SQL filter of ``where "..."``.
        threshold: the condition of ``with threshold``, on the fraction of complying rows.
        tags: other ``with`` tags, e.g. ``{"recentFiles": Comparison("=", NumberLiteral(1))}``.
        labels: this rule's own labels (``Ruleset.labels_for`` merges DefaultLabels).
        text: the rule as written in the source (not compared).
    """

    rule_type: str
    parameters: tuple[Parameter, ...] = ()
    condition: Condition | None = None
    where: str | None = None
    threshold: Condition | None = None
    tags: dict[str, Condition] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    text: str = field(default="", compare=False)

    @property
    def args(self) -> tuple[str, ...]:
        """The parameter values, e.g. ``("colA",)``."""
        return tuple(p.value for p in self.parameters)


@dataclass(frozen=True)
class CompositeRule:
    """``(A) and (B)`` / ``(A) or (B)``; chains of one operator are one node, groups nest."""

    op: Literal["AND", "OR"]
    children: tuple[Rule | CompositeRule, ...]
    labels: dict[str, str] = field(default_factory=dict)
    text: str = field(default="", compare=False)


RuleNode: TypeAlias = Rule | CompositeRule


@dataclass(frozen=True)
class Analyzer:
    """An entry of ``Analyzers = [...]``: computes metrics, no outcome."""

    analyzer_type: str
    parameters: tuple[Parameter, ...] = ()
    text: str = field(default="", compare=False)

    @property
    def args(self) -> tuple[str, ...]:
        """The parameter values."""
        return tuple(p.value for p in self.parameters)


@dataclass(frozen=True)
class Ruleset:
    """A parsed DQDL document. Mappings are plain dicts: treat them as read-only."""

    metadata: dict[str, str | tuple[str, ...]] = field(default_factory=dict)
    data_sources: dict[str, str | tuple[str, ...]] = field(default_factory=dict)
    constants: dict[str, str | tuple[str, ...]] = field(default_factory=dict)
    default_labels: dict[str, str] = field(default_factory=dict)
    rules: tuple[RuleNode, ...] = ()
    analyzers: tuple[Analyzer, ...] = ()

    def labels_for(self, rule: RuleNode) -> dict[str, str]:
        """The labels a rule's outcome carries: DefaultLabels overridden by the rule's own."""
        return {**self.default_labels, **rule.labels}


def to_data(node: Any) -> Any:
    """The tree as plain JSON-able data: each node a dict with ``"node"`` = its class name.

    Example:
        >>> to_data(Comparison(">", NumberLiteral(3)))
        {'node': 'Comparison', 'op': '>', 'operand': {'node': 'NumberLiteral', 'value': 3}}
    """
    if is_dataclass(node) and not isinstance(node, type):
        data: dict[str, Any] = {"node": type(node).__name__}
        for f in fields(node):
            data[f.name] = to_data(getattr(node, f.name))
        if isinstance(node, Ruleset):
            del data["node"]
        return data
    if isinstance(node, dict):
        return {key: to_data(value) for key, value in node.items()}
    if isinstance(node, tuple | list):
        return [to_data(item) for item in node]
    if isinstance(node, dt.date | dt.time):
        return node.isoformat()
    return node


# --- printing back to DQDL -----------------------------------------------------------------------


def quote(value: str) -> str:
    r"""A DQDL quoted string. DQDL's only escapes are ``\"`` and ``\\``; any other backslash
    stands for itself, so one is doubled only where it would otherwise start an escape.

    Example:
        >>> print(quote('say "hi"'), quote(r"\d+"), quote("a\\"))
        "say \"hi\"" "\d+" "a\\"
    """
    out: list[str] = []
    for index, char in enumerate(value):
        if char == '"':
            out.append('\\"')
        elif char == "\\" and (index + 1 == len(value) or value[index + 1] in '"\\'):
            out.append("\\\\")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def format_number(value: int | float) -> str:
    """A number as DQDL writes it: no exponent, a float keeps a decimal point.

    Example:
        >>> format_number(3), format_number(2.0), format_number(1e-07)
        ('3', '2.0', '0.0000001')
    """
    if isinstance(value, int):
        return str(value)
    if value.is_integer():
        return f"{int(value)}.0"
    return format(Decimal(repr(value)), "f")


def format_operand(operand: Operand) -> str:
    """One operand of a condition as DQDL text, e.g. ``(now() - 3 days)`` or ``avg(last(10))``."""
    match operand:
        case NumberLiteral(value):
            return format_number(value)
        case StringLiteral(value):
            return quote(value)
        case VariableRef(name):
            return f"${name}"
        case NullKeyword():
            return "NULL"
        case Empty():
            return "EMPTY"
        case WhitespacesOnly():
            return "WHITESPACES_ONLY"
        case Now(sign, offset):
            if sign is None or offset is None:
                return "now()"
            return f"(now() {sign} {format_operand(offset)})"
        case DateLiteral(value):
            return quote(value.isoformat())
        case TimeLiteral(text):
            return quote(text)
        case Duration(amount, unit) | Size(amount, unit):
            return f"{amount} {unit}"
        case FunctionCall(name, args):
            return f"{name}({', '.join(format_operand(arg) for arg in args)})"
        case BinaryOp(op, left, right):
            # DQDL arithmetic is left-associative without precedence: a right-hand operation
            # needs parentheses to keep its grouping, and a left-hand + or - under * or / gets
            # them too, so that people read the grouping the parser sees.
            shown_left, shown_right = format_operand(left), format_operand(right)
            if isinstance(left, BinaryOp) and left.op in "+-" and op in "*/":
                shown_left = f"({shown_left})"
            if isinstance(right, BinaryOp):
                shown_right = f"({shown_right})"
            return f"{shown_left} {op} {shown_right}"
    raise TypeError(f"not a DQDL operand: {operand!r}")


def format_condition(condition: Condition) -> str:
    """A condition as DQDL text.

    Example:
        >>> format_condition(Between(NumberLiteral(1), NumberLiteral(5), negated=True))
        'not between 1 and 5'
    """
    negation = "not " if getattr(condition, "negated", False) else ""
    match condition:
        case Comparison(op, operand):
            return f"{op} {format_operand(operand)}"
        case Between(low, high):
            return f"{negation}between {format_operand(low)} and {format_operand(high)}"
        case In(VariableRef() as ref):
            return f"{negation}in {format_operand(ref)}"
        case In(tuple() as values):
            return f"{negation}in [{', '.join(format_operand(v) for v in values)}]"
        case Matches(pattern):
            return f"{negation}matches {quote(pattern)}"
    raise TypeError(f"not a DQDL condition: {condition!r}")


def format_labels(labels: dict[str, str]) -> str:
    """``["k"="v", ...]``."""
    return "[" + ", ".join(f"{quote(k)}={quote(v)}" for k, v in labels.items()) + "]"


def _format_parameters(parameters: tuple[Parameter, ...]) -> list[str]:
    return [f"${p.variable}" if p.variable else quote(p.value) for p in parameters]


def format_rule(rule: RuleNode) -> str:
    """A rule as canonical DQDL text; ``parse_rule(format_rule(r)) == r``.

    The order is Glue's: type, parameters, condition, where, with threshold, other with tags,
    labels; composite operators upper case, each operand in parentheses.

    Example:
        >>> rule = Rule("ColumnValues", (Parameter("c"),), Comparison(">", NumberLiteral(3)),
        ...             where="d > 0", threshold=Comparison(">", NumberLiteral(0.9)))
        >>> format_rule(rule)
        'ColumnValues "c" > 3 where "d > 0" with threshold > 0.9'
    """
    if isinstance(rule, CompositeRule):
        text = f" {rule.op} ".join(f"({format_rule(child)})" for child in rule.children)
        return f"({text}) labels={format_labels(rule.labels)}" if rule.labels else text
    parts = [rule.rule_type, *_format_parameters(rule.parameters)]
    if rule.condition is not None:
        parts.append(format_condition(rule.condition))
    if rule.where is not None:
        parts.append(f"where {quote(rule.where)}")
    if rule.threshold is not None:
        parts.append(f"with threshold {format_condition(rule.threshold)}")
    parts.extend(f"with {name} {format_condition(cond)}" for name, cond in rule.tags.items())
    if rule.labels:
        parts.append(f"labels={format_labels(rule.labels)}")
    return " ".join(parts)


def format_analyzer(analyzer: Analyzer) -> str:
    """An analyzer as DQDL text, e.g. ``Completeness "colA"``."""
    return " ".join([analyzer.analyzer_type, *_format_parameters(analyzer.parameters)])


def _format_value(value: str | tuple[str, ...]) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(quote(v) for v in value) + "]"
    return quote(value)


def _format_dict(mapping: dict[str, str | tuple[str, ...]]) -> str:
    return "{" + ", ".join(f"{quote(k)}: {_format_value(v)}" for k, v in mapping.items()) + "}"


def format_ruleset(ruleset: Ruleset) -> str:
    """A whole document as DQDL text; ``parse_ruleset(format_ruleset(rs)) == rs``.

    Example:
        >>> print(format_ruleset(Ruleset(rules=(Rule("RowCount", (),
        ...     Comparison(">", NumberLiteral(0))),))))
        Rules = [
            RowCount > 0
        ]
    """
    lines: list[str] = []
    if ruleset.metadata:
        lines.append(f"Metadata = {_format_dict(ruleset.metadata)}")
    if ruleset.data_sources:
        lines.append(f"DataSources = {_format_dict(ruleset.data_sources)}")
    lines.extend(f"{name} = {_format_value(v)}" for name, v in ruleset.constants.items())
    if ruleset.default_labels:
        lines.append(f"DefaultLabels = {format_labels(ruleset.default_labels)}")
    sections = [("Rules", [format_rule(r) for r in ruleset.rules])]
    if ruleset.analyzers:
        sections.append(("Analyzers", [format_analyzer(a) for a in ruleset.analyzers]))
        if not ruleset.rules:
            sections.pop(0)
    for name, items in sections:
        body = ",\n".join(f"    {item}" for item in items)
        lines.append(f"{name} = [\n{body}\n]" if items else f"{name} = []")
    return "\n".join(lines)
