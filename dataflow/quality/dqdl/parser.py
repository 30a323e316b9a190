"""A hand-written recursive-descent parser of DQDL, Glue Data Quality's rule language.

It follows Glue's grammar (awslabs/dqdl ``DataQualityDefinitionLanguage.g4``) and the checks of its
parser listener, with Glue's error messages (https://docs.aws.amazon.com/glue/latest/dg/dqdl.html;
``shared/reference/aws-semantics.md`` §1)::

    document   := Metadata? DataSources? constant* DefaultLabels? (Rules? Analyzers?)
    topRule    := orRule;  orRule := andRule (OR andRule)*;  andRule := primary (AND primary)*
    primary    := '(' orRule ')' labels? | dqRule        # composite operands are parenthesised
    dqRule     := RuleType param* condition? ('where' "sql")? (labels | 'with' NAME condition)*

``and`` binds tighter than ``or`` (the order of the grammar's alternatives); arithmetic in
numbers has no precedence and is left-associative, as the grammar's one left-recursive rule.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, cast

from dataflow.errors import ConfigError, DqdlParseError
from dataflow.quality.dqdl.ast import (
    Analyzer,
    ArithmeticOp,
    Between,
    BinaryOp,
    Comparison,
    ComparisonOp,
    CompositeRule,
    Condition,
    DateLiteral,
    Duration,
    DurationUnit,
    Empty,
    FunctionCall,
    In,
    Matches,
    Now,
    NullKeyword,
    NumberLiteral,
    NumericOperand,
    Operand,
    Parameter,
    Rule,
    RuleNode,
    Ruleset,
    Size,
    SizeUnit,
    StringLiteral,
    TimeLiteral,
    VariableRef,
    WhitespacesOnly,
    format_operand,
)
from dataflow.quality.dqdl.lexer import Token, tokenize
from dataflow.quality.dqdl.rules import FUNCTIONS, RULE_TYPES, RuleType, get_rule_type, suggest

__all__ = [
    "DqdlParseError",
    "condition_kinds",
    "load_ruleset",
    "parse_rule",
    "parse_ruleset",
]

_SECTIONS = {"Metadata": 0, "DataSources": 1, "DefaultLabels": 3, "Rules": 4, "Analyzers": 5}
_CONSTANT_STAGE = 2
_ORDER = "Metadata, DataSources, constants, DefaultLabels, Rules, Analyzers"
_COMPARISONS = ("=", "!=", ">", ">=", "<", "<=")
_DURATION_UNITS = ("days", "hours", "minutes")
_SIZE_UNITS = ("B", "KB", "MB", "GB", "TB")
# Words that end a rule's parameters (AND/OR/NULL/EMPTY/... accept lower or upper case).
_LOWER_KEYWORDS = {"between", "in", "not", "matches", "with", "where", "labels"}
_KEYWORDS = _LOWER_KEYWORDS | {"and", "AND", "or", "OR"}
_TIME = re.compile(r"(\d{1,2}):(\d{2})(?: ?(AM|PM|am|pm))?")
_KIND_NAMES = {"NUMBER": "number", "STRING": "string", "DATE": "date", "DURATION": "duration",
               "SIZE": "size", "BOOLEAN": "boolean"}  # fmt: skip
_VALUE_KEYWORDS: dict[str, Operand] = {
    "NULL": NullKeyword(),
    "EMPTY": Empty(),
    "WHITESPACES_ONLY": WhitespacesOnly(),
}
_MAX_LABELS, _MAX_KEY, _MAX_VALUE = 10, 128, 256
_UNGROUPED = "Each rule of a composite rule must be in parentheses"
MAX_NESTING = 50
"""Parentheses and function calls nest at most this deep (the parser recurses once per level)."""


def parse_ruleset(text: str) -> Ruleset:
    """Parse a DQDL document.

    Raises:
        DqdlParseError: Glue's "Parsing Error", with the line, column and offending text.

    Example:
        >>> ruleset = parse_ruleset('Rules = [ RowCount > 0, IsComplete "close" ]')
        >>> [rule.rule_type for rule in ruleset.rules]
        ['RowCount', 'IsComplete']
    """
    return _Parser(text).document()


def parse_rule(text: str, constants: Mapping[str, str | tuple[str, ...]] | None = None) -> RuleNode:
    """Parse one rule (simple or composite), e.g. the output of ``format_rule``.

    Example:
        >>> parse_rule('(RowCount > 0) and (IsComplete "c")').op
        'AND'
    """
    parser = _Parser(text, constants)
    rule = parser.top_rule()
    parser.expect_end("after the rule")
    return rule


def load_ruleset(path: Path) -> Ruleset:
    """Read and parse a ``.dqdl`` file; a missing file is a ConfigError naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read ruleset {path}: {exc.strerror or exc}") from exc
    return parse_ruleset(text)


def condition_kinds(condition: Condition) -> set[str]:
    """The return types a condition can test: NUMBER, STRING, DATE, DURATION or SIZE.

    Example:
        >>> sorted(condition_kinds(Comparison("=", NullKeyword())))
        ['DATE', 'NUMBER', 'STRING']
    """
    match condition:
        case Comparison(op, operand):
            kinds = _operand_kinds(operand)
            return kinds if op in ("=", "!=") else kinds - {"STRING"}
        case Between(low, high):
            return (_operand_kinds(low) & _operand_kinds(high)) - {"STRING"}
        case In(VariableRef()):
            return {"STRING"}
        case In(tuple() as values):
            kinds = {"NUMBER", "STRING", "DATE", "DURATION", "SIZE"}
            for value in values:
                kinds &= _operand_kinds(value)
            return kinds
    return {"STRING"}  # Matches


def _operand_kinds(operand: Operand) -> set[str]:
    if isinstance(operand, NumberLiteral | FunctionCall | BinaryOp):
        return {"NUMBER"}
    if isinstance(operand, StringLiteral | Empty | WhitespacesOnly | VariableRef):
        return {"STRING"}
    if isinstance(operand, Now | DateLiteral | TimeLiteral):
        return {"DATE"}
    if isinstance(operand, Duration):
        return {"DURATION"}
    if isinstance(operand, Size):
        return {"SIZE"}
    return {"NUMBER", "STRING", "DATE"}  # NULL


def _describe(kinds: tuple[str, ...]) -> str:
    names = [_KIND_NAMES[k] for k in kinds if k != "BOOLEAN"] or ["boolean"]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


class _Parser:
    """One parse: the tokens, a cursor, and the constants defined so far."""

    def __init__(
        self, source: str, constants: Mapping[str, str | tuple[str, ...]] | None = None
    ) -> None:
        self.source = source
        self.tokens = tokenize(source)
        self.pos = 0
        self.depth = 0
        self.constants: dict[str, str | tuple[str, ...]] = dict(constants or {})

    # --- cursor --------------------------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.tokens[self.pos]

    def peek(self, ahead: int = 1) -> Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        token = self.tokens[self.pos]
        if token.kind != "EOF":
            self.pos += 1
        return token

    def is_op(self, *ops: str, token: Token | None = None) -> bool:
        token = token or self.tok
        return token.kind == "OP" and token.value in ops

    def is_word(self, *words: str, token: Token | None = None) -> bool:
        token = token or self.tok
        return token.kind == "IDENT" and token.value in words

    def error(self, reason: str, token: Token | None = None) -> DqdlParseError:
        token = token or self.tok
        shown = token.text if token.kind != "EOF" else "end of input"
        return DqdlParseError(reason, line=token.line, column=token.column, text=shown)

    def expect_op(self, op: str, where: str) -> Token:
        if not self.is_op(op):
            raise self.error(f'expected "{op}" {where}')
        return self.advance()

    def expect_string(self, what: str) -> str:
        if self.tok.kind not in ("STRING", "DATE", "TIME"):
            raise self.error(f"expected a quoted string {what}")
        return self.advance().value

    def expect_end(self, where: str) -> None:
        if self.tok.kind != "EOF":
            raise self.error(f"unexpected input {where}")

    def enter(self) -> None:
        """One level deeper (a parenthesis or a function call); refuse absurd nesting."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(f"Nested more than {MAX_NESTING} levels deep")

    def text_from(self, start: Token) -> str:
        return self.source[start.start : self.tokens[self.pos - 1].end]

    # --- document ------------------------------------------------------------------------------

    def document(self) -> Ruleset:
        parts: dict[str, object] = {}
        seen: set[str] = set()
        stage = -1
        rules_token: Token | None = None
        while self.tok.kind != "EOF":
            name_tok = self.tok
            if name_tok.kind != "IDENT":
                raise self.error(
                    'expected a section such as Rules = [...] or a constant name = "..."'
                )
            name = name_tok.value
            proper = {s.lower(): s for s in _SECTIONS}.get(name.lower())
            if proper and proper != name:
                raise self.error(f"Section names are case-sensitive: write {proper}")
            if name in RULE_TYPES and not self.is_op("=", token=self.peek()):
                raise self.error("Rules must be inside a section: Rules = [ ... ]")
            if name in seen:
                raise self.error(f"Duplicate section: {name}")
            order = _SECTIONS.get(name, _CONSTANT_STAGE)
            if order < stage:
                raise self.error(f"{name} is out of order: sections go in the order {_ORDER}")
            stage = order
            self.advance()
            self.expect_op("=", f"after {name}")
            if name in ("Metadata", "DataSources"):
                parts[name] = self.dictionary()
            elif name == "DefaultLabels":
                parts[name] = self.labels()
            elif name == "Rules":
                rules_token = name_tok
                parts[name] = self.rules_section()
            elif name == "Analyzers":
                rules_token = rules_token or name_tok
                parts[name] = self.analyzers_section()
            else:
                self.constant(name_tok)
            if name in _SECTIONS:
                seen.add(name)
        rules = cast(tuple[RuleNode, ...], parts.get("Rules", ()))
        analyzers = cast(tuple[Analyzer, ...], parts.get("Analyzers", ()))
        if not rules and not analyzers:
            raise self.error("No rules or analyzers provided.", rules_token or self.tok)
        return Ruleset(
            metadata=cast(dict[str, str | tuple[str, ...]], parts.get("Metadata", {})),
            data_sources=cast(dict[str, str | tuple[str, ...]], parts.get("DataSources", {})),
            constants=self.constants,
            default_labels=cast(dict[str, str], parts.get("DefaultLabels", {})),
            rules=rules,
            analyzers=analyzers,
        )

    def constant(self, name_tok: Token) -> None:
        name = name_tok.value
        if name[0] in "._":
            raise self.error(f"Constant names may not start with '.' or '_': {name}", name_tok)
        if name in self.constants:
            raise self.error(f"Constant {name} is already defined", name_tok)
        if self.is_op("["):
            self.constants[name] = self.string_list("in the list")
        elif self.tok.kind in ("STRING", "DATE", "TIME"):
            self.constants[name] = self.advance().value
        else:
            raise self.error(f"A constant is a quoted string or a list of them: {name}")

    def string_list(self, where: str) -> tuple[str, ...]:
        self.expect_op("[", "to open the list")
        values = [self.expect_string(where)]
        while self.is_op(","):
            self.advance()
            values.append(self.expect_string(where))
        self.expect_op("]", "to close the list")
        return tuple(values)

    def dictionary(self) -> dict[str, str | tuple[str, ...]]:
        self.expect_op("{", "to open the dictionary")
        result: dict[str, str | tuple[str, ...]] = {}
        while not self.is_op("}"):
            if result:
                self.expect_op(",", "between entries")
            key_tok = self.tok
            key = self.expect_string("as the key")
            if key in result:
                raise self.error(f"Duplicate key: {key}", key_tok)
            self.expect_op(":", "after the key")
            result[key] = self.string_list("in the list") if self.is_op("[") else (
                self.expect_string("or a list as the value"))  # fmt: skip
        self.advance()
        return result

    def labels(self) -> dict[str, str]:
        open_tok = self.expect_op("[", "to open the labels")
        labels: dict[str, str] = {}
        while not self.is_op("]"):
            if labels:
                self.expect_op(",", "between labels")
            key_tok = self.tok
            key = self.expect_string("as the label key")
            self.expect_op("=", "between the label key and value")
            value_tok = self.tok
            value = self.expect_string("as the label value")
            if key in labels:
                raise self.error("Duplicate label key. Key must be unique.", key_tok)
            if not key.strip() or len(key) > _MAX_KEY:
                raise self.error(f"Label keys are 1 to {_MAX_KEY} characters", key_tok)
            if len(value) > _MAX_VALUE:
                raise self.error(f"Label values are at most {_MAX_VALUE} characters", value_tok)
            labels[key] = value
        if len(labels) > _MAX_LABELS:
            raise self.error(f"At most {_MAX_LABELS} labels are allowed per rule", open_tok)
        self.advance()
        return labels

    # --- rules ---------------------------------------------------------------------------------

    def rules_section(self) -> tuple[RuleNode, ...]:
        self.expect_op("[", "to open the Rules section")
        rules: list[RuleNode] = []
        while not self.is_op("]"):
            if rules:
                self.expect_op(",", "between rules")
            rules.append(self.top_rule())
        self.advance()
        return tuple(rules)

    def top_rule(self) -> RuleNode:
        start = self.tok
        first, grouped = self.and_rule()
        children, ungrouped = [first], None if grouped else start
        while self.is_word("or", "OR"):
            self.advance()
            child_start = self.tok
            child, grouped = self.and_rule()
            children.append(child)
            ungrouped = ungrouped or (None if grouped else child_start)
        if len(children) == 1:
            return first
        if ungrouped is not None:
            raise self.error(_UNGROUPED, ungrouped)
        return CompositeRule("OR", tuple(children), text=self.text_from(start))

    def and_rule(self) -> tuple[RuleNode, bool]:
        """An AND chain, and whether it may be an operand of OR (grouped or a checked chain)."""
        start = self.tok
        first, grouped = self.primary()
        children, ungrouped = [first], None if grouped else start
        while self.is_word("and", "AND"):
            self.advance()
            child_start = self.tok
            child, grouped = self.primary()
            children.append(child)
            ungrouped = ungrouped or (None if grouped else child_start)
        if len(children) == 1:
            return first, ungrouped is None
        if ungrouped is not None:
            raise self.error(_UNGROUPED, ungrouped)
        return CompositeRule("AND", tuple(children), text=self.text_from(start)), True

    def primary(self) -> tuple[RuleNode, bool]:
        if not self.is_op("("):
            return self.dq_rule(), False
        self.advance()
        self.enter()
        node = self.top_rule()
        self.depth -= 1
        self.expect_op(")", "to close the parenthesis")
        if self.is_word("labels"):
            label_tok = self.advance()
            self.expect_op("=", "after labels")
            outer = self.labels()
            if set(outer) & set(node.labels):
                raise self.error("Duplicate label key. Key must be unique.", label_tok)
            node = dataclasses.replace(node, labels={**node.labels, **outer})
        return node, True

    def dq_rule(self) -> Rule:
        start = self.tok
        if start.kind != "IDENT" or start.value in _KEYWORDS:
            raise self.error("expected a rule type")
        name = self.advance().value
        rule_type = get_rule_type(name)
        if rule_type is None:
            hint = suggest(name)
            extra = f"; did you mean {hint}?" if hint else ""
            raise self.error(f"Rule Type: {name} is not valid{extra}", start)
        if rule_type.analyzer_only:
            raise self.error(f"Analyzer Type: {name} is not supported in rules section", start)
        parameters = self.parameters()
        word = self.tok.value if self.tok.kind == "IDENT" else ""
        if word.lower() in _LOWER_KEYWORDS and word not in _LOWER_KEYWORDS:
            raise self.error(f"DQDL keywords are lower case: write {word.lower()}")
        self.check_count(rule_type, parameters, start)
        condition = None
        if self.at_condition():
            condition_tok = self.tok
            condition = self.condition()
            allowed = set(rule_type.return_types) - {"BOOLEAN"}
            if not condition_kinds(condition) & allowed:
                kinds = _describe(rule_type.return_types)
                raise self.error(
                    f"Unexpected condition for rule of type {name} with {kinds} return type",
                    condition_tok,
                )
        elif not rule_type.is_boolean:
            raise self.error(
                f"No condition provided for rule with non-boolean rule type: {name}", start
            )
        where = None
        if self.is_word("where"):
            where_tok = self.advance()
            if not rule_type.where:
                raise self.error(f"Where clause is not supported for rule type: {name}", where_tok)
            where = self.expect_string("after where")
            if not where.strip():
                raise self.error(f"Empty where condition provided for rule type: {name}", where_tok)
        threshold, tags, labels = self.rule_tail(rule_type)
        return Rule(name, parameters, condition, where, threshold, tags, labels or {},
                    text=self.text_from(start))  # fmt: skip

    def rule_tail(
        self, rule_type: RuleType
    ) -> tuple[Condition | None, dict[str, Condition], dict[str, str] | None]:
        """``with`` tags and ``labels`` after the where clause, in either order."""
        name = rule_type.name
        threshold: Condition | None = None
        tags: dict[str, Condition] = {}
        labels: dict[str, str] | None = None
        while True:
            if self.is_word("labels"):
                if labels is not None:
                    raise self.error("A rule has one labels list")
                self.advance()
                self.expect_op("=", "after labels")
                labels = self.labels()
            elif self.is_word("with"):
                with_tok = self.advance()
                if self.tok.kind != "IDENT" or self.tok.value in _KEYWORDS:
                    raise self.error("expected a tag name after with, e.g. with threshold > 0.9")
                tag = self.advance().value
                if tag in tags or (tag == "threshold" and threshold is not None):
                    raise self.error(f"Duplicate with tag: {tag}", with_tok)
                if tag == "threshold" and not rule_type.threshold:
                    raise self.error(
                        f"Threshold condition not supported for rule type: {name}", with_tok
                    )
                if not self.at_condition():
                    raise self.error(f"expected a condition after with {tag}")
                condition_tok = self.tok
                condition = self.condition()
                kinds = condition_kinds(condition)
                if tag == "threshold":
                    if "NUMBER" not in kinds:
                        raise self.error(
                            f"Unable to parse threshold condition provided for rule type: {name}",
                            condition_tok,
                        )
                    threshold = condition
                elif not kinds & {"NUMBER", "STRING"}:
                    raise self.error(f"Unexpected condition for with tag {tag}", condition_tok)
                else:
                    tags[tag] = condition
            elif self.is_word("where"):
                raise self.error("The where clause comes right after the condition")
            else:
                return threshold, tags, labels

    def check_count(
        self, rule_type: RuleType, parameters: tuple[Parameter, ...], at: Token
    ) -> None:
        if rule_type.accepts_count(len(parameters)):
            return
        if rule_type.var_args and not parameters:
            raise self.error(f"VarArgs needs at least one parameter: {rule_type.name}", at)
        raise self.error(f"Unexpected number of parameters: {rule_type.name}", at)

    def is_param_start(self, token: Token) -> bool:
        if token.kind in ("STRING", "DATE", "TIME") or self.is_op("$", token=token):
            return True
        return token.kind == "IDENT" and token.value.lower() not in _KEYWORDS

    def parameters(self) -> tuple[Parameter, ...]:
        params: list[Parameter] = []
        while True:
            nxt = self.peek()
            # "of" / "and" may join parameters: ColumnCorrelation "a" and "b" > 0.8. An "and"
            # before a rule type is a composite written without parentheses, not a parameter.
            if (
                self.is_word("of", "OF", "and", "AND")
                and self.is_param_start(nxt)
                and not (nxt.kind == "IDENT" and nxt.value in RULE_TYPES)
            ):
                self.advance()
            elif not self.is_param_start(self.tok):
                return tuple(params)
            if self.is_op("$"):
                ref = self.variable(want_list=False)
                params.append(Parameter(cast(str, ref.value), variable=ref.name))
            else:
                params.append(Parameter(self.advance().value))

    def variable(self, *, want_list: bool) -> VariableRef:
        dollar = self.advance()
        if self.tok.kind != "IDENT":
            raise self.error("expected a constant name after $")
        name_tok = self.advance()
        name = name_tok.value
        if name not in self.constants:
            raise self.error(f"Constant ${name} is not defined", dollar)
        value = self.constants[name]
        if want_list and not isinstance(value, tuple):
            raise self.error(f"Constant ${name} is not a list", dollar)
        if not want_list and isinstance(value, tuple):
            raise self.error(f"Constant ${name} is a list: use it with in ${name}", dollar)
        return VariableRef(name, value)

    # --- analyzers -----------------------------------------------------------------------------

    def analyzers_section(self) -> tuple[Analyzer, ...]:
        self.expect_op("[", "to open the Analyzers section")
        analyzers: list[Analyzer] = []
        while not self.is_op("]"):
            if analyzers:
                self.expect_op(",", "between analyzers")
            start = self.tok
            if start.kind != "IDENT" or start.value in _KEYWORDS:
                raise self.error("expected an analyzer type")
            name = self.advance().value
            rule_type = get_rule_type(name)
            if rule_type is None:
                raise self.error(f"Analyzer Type: {name} is not valid", start)
            if rule_type.return_types == ("BOOLEAN",):
                raise self.error(f"Analyzer Type: {name} is not supported", start)
            parameters = self.parameters()
            self.check_count(rule_type, parameters, start)
            if self.at_condition():
                raise self.error(f"An analyzer takes no condition: {name}")
            analyzers.append(Analyzer(name, parameters, text=self.text_from(start)))
        self.advance()
        return tuple(analyzers)

    # --- conditions ----------------------------------------------------------------------------

    def at_condition(self) -> bool:
        return self.is_op(*_COMPARISONS) or self.is_word("between", "in", "not", "matches")

    def condition(self) -> Condition:
        negated = False
        if self.is_word("not"):
            self.advance()
            negated = True
            if not self.is_word("between", "in", "matches"):
                raise self.error("expected between, in or matches after not")
        if self.is_word("between"):
            self.advance()
            low = self.operand()
            if not self.is_word("and", "AND"):
                raise self.error("expected and between the bounds of between")
            self.advance()
            return Between(low, self.operand(), negated)
        if self.is_word("in"):
            self.advance()
            if self.is_op("$"):
                return In(self.variable(want_list=True), negated)
            self.expect_op("[", "after in")
            values = [self.operand()]
            while self.is_op(","):
                self.advance()
                values.append(self.operand())
            self.expect_op("]", "to close the list")
            return In(tuple(values), negated)
        if self.is_word("matches"):
            self.advance()
            return Matches(self.expect_string("after matches"), negated)
        op = cast(ComparisonOp, self.advance().value)
        return Comparison(op, self.operand())

    def operand(self) -> Operand:
        left = self.atom()
        while self.is_op("+", "-", "*", "/"):
            op_tok = self.advance()
            right = self.atom()
            if isinstance(left, Now):
                shown = f"(now() {op_tok.value} {format_operand(right)})"
                raise self.error(f"Date arithmetic needs parentheses: {shown}", op_tok)
            if not isinstance(left, NumberLiteral | FunctionCall | BinaryOp) or not isinstance(
                right, NumberLiteral | FunctionCall | BinaryOp
            ):
                raise self.error("Arithmetic needs numbers on both sides", op_tok)
            left = BinaryOp(cast(ArithmeticOp, op_tok.value), left, right)
        return left

    def atom(self) -> Operand:
        token = self.tok
        if self.is_op("-"):
            self.advance()
            if self.tok.kind != "NUMBER":
                raise self.error("expected a number after -")
            number = self.number(self.advance())
            if self.is_word(*_DURATION_UNITS, *_SIZE_UNITS):
                raise self.error("Durations and sizes cannot be negative")
            return NumberLiteral(-number.value)
        if token.kind == "NUMBER":
            number = self.number(self.advance())
            if self.is_word(*_DURATION_UNITS, *_SIZE_UNITS):
                if not isinstance(number.value, int):
                    raise self.error("Durations and sizes are whole numbers", token)
                unit = self.advance().value
                if unit in _DURATION_UNITS:
                    return Duration(number.value, cast(DurationUnit, unit))
                return Size(number.value, cast(SizeUnit, unit))
            return number
        if token.kind == "STRING":
            return StringLiteral(self.advance().value)
        if token.kind == "DATE":
            try:
                return DateLiteral(dt.date.fromisoformat(self.advance().value))
            except ValueError:
                raise self.error(f"Invalid date: {token.value}", token) from None
        if token.kind == "TIME":
            return self.time(self.advance())
        if self.is_op("$"):
            return self.variable(want_list=False)
        if self.is_op("("):
            if self.is_word("now", token=self.peek()):
                return self.now_offset()
            self.advance()
            self.enter()
            inner = self.operand()
            self.depth -= 1
            self.expect_op(")", "to close the parenthesis")
            return inner
        if token.kind == "IDENT":
            # NULL, EMPTY and WHITESPACES_ONLY are written all upper or all lower case.
            keyword = _VALUE_KEYWORDS.get(token.value.upper())
            if keyword is not None and token.value in (token.value.upper(), token.value.lower()):
                self.advance()
                return keyword
            if self.is_op("(", token=self.peek()):
                if token.value == "now":
                    self.advance()
                    self.advance()
                    self.expect_op(")", "after now(")
                    return Now()
                return self.function_call()
        raise self.error("expected a value (a number, a quoted string, a date, NULL, ...)")

    def number(self, token: Token) -> NumberLiteral:
        return NumberLiteral(float(token.value) if "." in token.value else int(token.value))

    def time(self, token: Token) -> TimeLiteral:
        match = _TIME.fullmatch(token.value)
        hour, minute = (int(match.group(1)), int(match.group(2))) if match else (-1, -1)
        half = match.group(3).upper() if match and match.group(3) else None
        if half and 1 <= hour <= 12:
            hour = hour % 12 + (12 if half == "PM" else 0)
        elif half:
            hour = -1
        if not (0 <= hour <= 23 and 0 <= minute <= 59):
            raise self.error(f"Invalid time: {token.value}", token)
        return TimeLiteral(token.value, dt.time(hour, minute))

    def now_offset(self) -> Now:
        """``(now() - 3 days)``: the parentheses are part of the syntax."""
        self.advance()
        self.advance()
        self.expect_op("(", "after now")
        self.expect_op(")", "after now(")
        if not self.is_op("+", "-"):
            raise self.error("expected + or - after (now()")
        sign = cast(Literal["+", "-"], self.advance().value)
        amount_tok = self.tok
        if amount_tok.kind != "NUMBER" or "." in amount_tok.value:
            raise self.error("expected a whole number of days, hours or minutes")
        self.advance()
        if not self.is_word(*_DURATION_UNITS):
            raise self.error("expected days, hours or minutes")
        unit = cast(DurationUnit, self.advance().value)
        self.expect_op(")", "to close (now() ...")
        return Now(sign, Duration(int(amount_tok.value), unit))

    def function_call(self) -> FunctionCall:
        name_tok = self.advance()
        if name_tok.value not in FUNCTIONS:
            known = ", ".join(sorted(FUNCTIONS))
            raise self.error(f"Unknown function: {name_tok.value} (DQDL has {known})", name_tok)
        self.advance()
        self.enter()
        args: list[NumericOperand] = []
        while not self.is_op(")"):
            if args:
                self.expect_op(",", "between arguments")
            arg_tok = self.tok
            arg = self.operand()
            if not isinstance(arg, NumberLiteral | FunctionCall | BinaryOp):
                raise self.error("Function arguments are numbers or expressions", arg_tok)
            args.append(arg)
        self.depth -= 1
        self.advance()
        return FunctionCall(name_tok.value, tuple(args))
