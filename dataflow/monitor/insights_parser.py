"""Lexer, AST and parser of the Logs Insights query language (the part Dataflow supports).

Grammar, loosest binding first::

    query      := command ("|" command)*
    expr       := and ("or" and)*          and := not ("and" not)*      not := "not" not | test
    test       := sum [cmp sum | ["not"] "like" (string|regex) | "=~" (regex|string)
                       | ["not"] "in" "[" expr ("," expr)* "]"]
    sum        := product (("+"|"-") product)*        product := unary (("*"|"/"|"%") unary)*
    unary      := "-" unary | power                     power := atom ["^" unary]
    atom       := number | string | duration | regex | name "(" [args] ")" | name | "(" expr ")"

``/`` starts a regex where an operand is expected (and after ``parse <field>``), else divides.

Example:
    >>> [type(c).__name__ for c in parse_query("fields a | filter a > 1 | limit 5", functions=())]
    ['Fields', 'Filter', 'Limit']
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass

from dataflow.errors import ConfigError

# --- AST -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """A field of the record (``level``, ``@timestamp``, ``http.status``)."""

    name: str
    pos: int


@dataclass(frozen=True)
class Literal:
    """A string or number."""

    value: str | int | float | None
    pos: int


@dataclass(frozen=True)
class Duration:
    """A time span like ``5m``: ``amount`` of ``unit`` (ms s m h d w mo q y)."""

    amount: int
    unit: str
    pos: int


@dataclass(frozen=True)
class Regex:
    """A ``/regular expression/`` (RE2 syntax, ``(?i)`` for case-insensitive)."""

    pattern: str
    pos: int


@dataclass(frozen=True)
class Unary:
    """``not x`` or ``-x``."""

    op: str
    operand: Expr
    pos: int


@dataclass(frozen=True)
class Binary:
    """``left op right`` for comparisons, arithmetic, ``and`` and ``or``."""

    op: str
    left: Expr
    right: Expr
    pos: int


@dataclass(frozen=True)
class Match:
    """``x like "text"``, ``x like /re/`` or ``x =~ /re/``."""

    op: str
    operand: Expr
    pattern: Expr
    negated: bool
    pos: int


@dataclass(frozen=True)
class InList:
    """``x in [a, b]`` or ``x not in [a, b]``."""

    operand: Expr
    items: tuple[Expr, ...]
    negated: bool
    pos: int


@dataclass(frozen=True)
class Call:
    """A function call; ``star`` for ``count(*)``."""

    name: str
    args: tuple[Expr, ...]
    star: bool
    pos: int


Expr = Field | Literal | Duration | Regex | Unary | Binary | Match | InList | Call


@dataclass(frozen=True)
class Projection:
    """An expression and the name of its column (the ``as`` alias or the expression's text)."""

    expr: Expr
    alias: str


@dataclass(frozen=True)
class Fields:
    pos: int
    items: tuple[Projection, ...]


@dataclass(frozen=True)
class Filter:
    pos: int
    condition: Expr


@dataclass(frozen=True)
class Stats:
    pos: int
    aggs: tuple[Projection, ...]
    by: tuple[Projection, ...]


@dataclass(frozen=True)
class Sort:
    pos: int
    keys: tuple[tuple[Expr, bool], ...]
    """(expression, descending) pairs."""


@dataclass(frozen=True)
class Limit:
    pos: int
    count: int


@dataclass(frozen=True)
class Parse:
    """``parse`` as one regex with (column, group number) pairs, whichever form was written."""

    pos: int
    source: Expr
    regex: str
    groups: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Display:
    pos: int
    names: tuple[str, ...]


@dataclass(frozen=True)
class Dedup:
    pos: int
    names: tuple[str, ...]


Command = Fields | Filter | Stats | Sort | Limit | Parse | Display | Dedup

# --- lexer ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    kind: str
    """name, quoted (a `backticked` name), number, string, duration, regex, op or end."""
    text: str
    pos: int


_UNITS = {
    "ms": "ms", "msec": "ms", "millisecond": "ms", "s": "s", "sec": "s", "second": "s",
    "m": "m", "min": "m", "minute": "m", "h": "h", "hr": "h", "hour": "h", "d": "d", "day": "d",
    "w": "w", "week": "w", "mo": "mo", "month": "mo", "q": "q", "quarter": "q", "y": "y",
    "year": "y",
}  # fmt: skip
_TOKEN = re.compile(
    r"""(?P<space>\s+|\#[^\n]*)
      | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<quoted>`[^`]+`)
      | (?P<duration>\d+(?:ms|msecs?|milliseconds?|mo|months?|min|mins|minutes?|secs?|seconds?
                         |hrs?|hours?|days?|weeks?|quarters?|years?|[smhdwqy])(?![\w.]))
      | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
      | (?P<name>@?[A-Za-z_][\w.]*)
      | (?P<op>=~|!=|<=|>=|[=<>+\-*/%^()\[\],|])""",
    re.VERBOSE,
)
_REGEX = re.compile(r"/((?:[^/\\\n]|\\.)*)/")
_ENDS_OPERAND = {"name", "quoted", "number", "string", "duration", "regex"}
KEYWORDS = frozenset({"and", "or", "not", "like", "in", "as", "by", "asc", "desc"})


def tokenize(query: str) -> list[Token]:
    """The tokens of ``query``, ending with an ``end`` token.

    Example:
        >>> [t.text for t in tokenize("filter msg like /a\\\\/b/ # note")]
        ['filter', 'msg', 'like', 'a\\\\/b', '']
    """
    tokens: list[Token] = []
    pos = 0
    while pos < len(query):
        if query[pos] == "/" and _regex_allowed(tokens):
            found = _REGEX.match(query, pos)
            if not found:
                raise query_error(query, pos, "unterminated /regex/")
            tokens.append(Token("regex", found.group(1), pos))
            pos = found.end()
            continue
        match = _TOKEN.match(query, pos)
        if not match:
            raise query_error(query, pos, f"unexpected character {query[pos]!r}")
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append(Token(kind, match.group(), pos))
        pos = match.end()
    tokens.append(Token("end", "", len(query)))
    return tokens


def _regex_allowed(tokens: list[Token]) -> bool:
    if not tokens:
        return True
    last = tokens[-1]
    if len(tokens) >= 2 and tokens[-2].text.lower() == "parse":
        return True  # parse @message /(?<a>...)/
    if last.kind == "name" and last.text.lower() in KEYWORDS:
        return True
    return last.kind not in _ENDS_OPERAND and last.text not in (")", "]")


def query_error(query: str, pos: int, message: str) -> ConfigError:
    """A :class:`ConfigError` naming the line and column of ``pos`` in ``query``."""
    line = query.count("\n", 0, pos) + 1
    column = pos - (query.rfind("\n", 0, pos) + 1) + 1
    return ConfigError(f"query error at line {line}, column {column}: {message}")


# --- parser --------------------------------------------------------------------------------------


class Parser:
    """Recursive descent over the tokens; one method per command (see :data:`COMMANDS`)."""

    def __init__(self, query: str, functions: Collection[str]) -> None:
        self.query = query
        self.tokens = tokenize(query)
        self.i = 0
        self.functions = {f.lower() for f in functions}

    # -- token helpers

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def error(self, message: str, pos: int | None = None) -> ConfigError:
        return query_error(self.query, self.tok.pos if pos is None else pos, message)

    def at(self, *texts: str) -> bool:
        """The current token is one of ``texts`` (keywords match in any case)."""
        tok = self.tok
        if tok.kind == "op":
            return tok.text in texts
        return tok.kind == "name" and tok.text.lower() in texts

    def take(self, *texts: str) -> Token:
        if not self.at(*texts):
            found = repr(self.tok.text) if self.tok.kind != "end" else "the end of the query"
            raise self.error(f"expected {' or '.join(repr(t) for t in texts)}, found {found}")
        return self.advance()

    def advance(self) -> Token:
        tok = self.tok
        self.i += 1
        return tok

    def name(self, what: str = "a field name") -> str:
        tok = self.tok
        if tok.kind == "quoted":
            self.advance()
            return tok.text[1:-1]
        if tok.kind == "name" and tok.text.lower() not in KEYWORDS:
            self.advance()
            return tok.text
        raise self.error(f"expected {what}, found {tok.text or 'the end of the query'!r}")

    def names(self) -> tuple[str, ...]:
        found = [self.name()]
        while self.at(","):
            self.advance()
            found.append(self.name())
        return tuple(found)

    def text(self, start: int) -> str:
        """The source text of tokens ``start``..current, whitespace collapsed (default alias)."""
        end = self.tokens[self.i - 1]
        end_pos = end.pos + len(end.text) + (2 if end.kind == "regex" else 0)
        return " ".join(self.query[self.tokens[start].pos : end_pos].split())

    # -- query and commands

    def query_(self) -> list[Command]:
        commands: list[Command] = []
        while True:
            tok = self.tok
            if tok.kind != "name" or tok.text.lower() not in COMMANDS:
                what = repr(tok.text) if tok.kind != "end" else "nothing"
                raise self.error(
                    f"unknown command {what}; supported commands: {', '.join(sorted(COMMANDS))}"
                )
            self.advance()
            commands.append(COMMANDS[tok.text.lower()](self, tok.pos))
            if self.tok.kind == "end":
                return commands
            self.take("|")

    def projections(self) -> tuple[Projection, ...]:
        items = [self.projection()]
        while self.at(","):
            self.advance()
            items.append(self.projection())
        return tuple(items)

    def projection(self) -> Projection:
        start = self.i
        expr = self.expr()
        text = expr.name if isinstance(expr, Field) else self.text(start)
        if self.at("as"):
            self.advance()
            text = self.name("an alias")
        return Projection(expr, text)

    def fields(self, pos: int) -> Fields:
        return Fields(pos, self.projections())

    def filter(self, pos: int) -> Filter:
        return Filter(pos, self.expr())

    def stats(self, pos: int) -> Stats:
        aggs = self.projections()
        by: tuple[Projection, ...] = ()
        if self.at("by"):
            self.advance()
            by = self.projections()
        return Stats(pos, aggs, by)

    def sort(self, pos: int) -> Sort:
        keys = []
        while True:
            expr = self.expr()
            desc = False
            if self.at("asc", "desc"):
                desc = self.advance().text.lower() == "desc"
            keys.append((expr, desc))
            if not self.at(","):
                return Sort(pos, tuple(keys))
            self.advance()

    def limit(self, pos: int) -> Limit:
        tok = self.tok
        if tok.kind != "number" or not tok.text.isdigit() or int(tok.text) < 1:
            raise self.error(f"limit needs a positive whole number, found {tok.text!r}")
        self.advance()
        return Limit(pos, int(tok.text))

    def parse(self, pos: int) -> Parse:
        source = self.atom()
        tok = self.tok
        if tok.kind == "regex":
            self.advance()
            return Parse(pos, source, *_named_groups(self, tok))
        if tok.kind != "string":
            raise self.error('parse needs a "glob * pattern" or a /regex/ with named groups')
        self.advance()
        self.take("as")
        names = self.names()
        stars = _unquote(tok.text).count("*")
        if stars != len(names):
            raise self.error(
                f"parse pattern has {stars} '*' but {len(names)} name(s) follow 'as'", tok.pos
            )
        return Parse(pos, source, glob_to_regex(_unquote(tok.text)), _numbered(names))

    def display(self, pos: int) -> Display:
        return Display(pos, self.names())

    def dedup(self, pos: int) -> Dedup:
        return Dedup(pos, self.names())

    # -- expressions

    def expr(self) -> Expr:
        left = self.and_()
        while self.at("or"):
            pos = self.advance().pos
            left = Binary("or", left, self.and_(), pos)
        return left

    def and_(self) -> Expr:
        left = self.not_()
        while self.at("and"):
            pos = self.advance().pos
            left = Binary("and", left, self.not_(), pos)
        return left

    def not_(self) -> Expr:
        if self.at("not"):
            pos = self.advance().pos
            return Unary("not", self.not_(), pos)
        return self.test()

    def test(self) -> Expr:
        left = self.sum()
        pos = self.tok.pos
        if self.at("=", "!=", "<", "<=", ">", ">="):
            return Binary(self.advance().text, left, self.sum(), pos)
        negated = False
        if self.at("not") and self.tokens[self.i + 1].text.lower() in ("like", "in"):
            self.advance()
            negated = True
        if self.at("like", "=~"):
            op = self.advance().text.lower()
            if self.tok.kind not in ("string", "regex"):
                raise self.error(f'{op} needs a "string" or a /regex/')
            return Match(op, left, self.atom(), negated, pos)
        if self.at("in"):
            self.advance()
            self.take("[")
            items = [self.sum()]
            while self.at(","):
                self.advance()
                items.append(self.sum())
            self.take("]")
            return InList(left, tuple(items), negated, pos)
        return left

    def sum(self) -> Expr:
        left = self.product()
        while self.at("+", "-"):
            tok = self.advance()
            left = Binary(tok.text, left, self.product(), tok.pos)
        return left

    def product(self) -> Expr:
        left = self.unary()
        while self.at("*", "/", "%"):
            tok = self.advance()
            left = Binary(tok.text, left, self.unary(), tok.pos)
        return left

    def unary(self) -> Expr:
        if self.at("-"):
            pos = self.advance().pos
            operand = self.unary()
            if isinstance(operand, Literal) and isinstance(operand.value, int | float):
                return Literal(-operand.value, pos)
            return Unary("-", operand, pos)
        base = self.atom()
        if self.at("^"):
            pos = self.advance().pos
            return Binary("^", base, self.unary(), pos)
        return base

    def atom(self) -> Expr:
        tok = self.tok
        if tok.kind == "number":
            self.advance()
            number = float(tok.text)
            return Literal(int(number) if number.is_integer() and "." not in tok.text
                           and "e" not in tok.text.lower() else number, tok.pos)  # fmt: skip
        if tok.kind == "string":
            self.advance()
            return Literal(_unquote(tok.text), tok.pos)
        if tok.kind == "duration":
            self.advance()
            amount, unit = re.fullmatch(r"(\d+)([a-z]+)", tok.text).groups()  # type: ignore[union-attr]
            return Duration(int(amount), _UNITS[unit.rstrip("s") if unit not in _UNITS else unit],
                            tok.pos)  # fmt: skip
        if tok.kind == "regex":
            self.advance()
            return Regex(tok.text, tok.pos)
        if self.at("("):
            self.advance()
            inner = self.expr()
            self.take(")")
            return inner
        if tok.kind == "name" and self.tokens[self.i + 1].text == "(":
            return self.call()
        if tok.kind in ("name", "quoted") and tok.text.lower() not in KEYWORDS:
            return Field(self.name(), tok.pos)
        found = repr(tok.text) if tok.kind != "end" else "the end of the query"
        raise self.error(f"expected a field, value or function, found {found}")

    def call(self) -> Call:
        tok = self.advance()
        if tok.text.lower() not in self.functions:
            raise self.error(
                f"unknown function {tok.text!r}; supported functions: "
                + ", ".join(sorted(self.functions)),
                tok.pos,
            )
        self.take("(")
        if self.at("*"):
            self.advance()
            self.take(")")
            return Call(tok.text, (), True, tok.pos)
        args: list[Expr] = []
        if not self.at(")"):
            args.append(self.expr())
            while self.at(","):
                self.advance()
                args.append(self.expr())
        self.take(")")
        return Call(tok.text, tuple(args), False, tok.pos)


COMMANDS: dict[str, Callable[[Parser, int], Command]] = {
    "dedup": Parser.dedup,
    "display": Parser.display,
    "fields": Parser.fields,
    "filter": Parser.filter,
    "limit": Parser.limit,
    "parse": Parser.parse,
    "sort": Parser.sort,
    "stats": Parser.stats,
}
"""The commands Dataflow supports, by the name a query uses."""


def parse_query(query: str, *, functions: Collection[str]) -> list[Command]:
    """Parse ``query`` into commands, accepting calls to ``functions`` only.

    Raises:
        ConfigError: with the line and column of the first error.

    Example:
        >>> parse_query("stats count(*) by bin(5m)", functions={"count", "bin"})[0].by[0].alias
        'bin(5m)'
    """
    if not query.strip() or not any(t.kind != "end" for t in tokenize(query)):
        raise query_error(query, 0, "the query is empty; start with one of: "
                          + ", ".join(sorted(COMMANDS)))  # fmt: skip
    return Parser(query, functions).query_()


def glob_to_regex(glob: str) -> str:
    """The regex of a ``parse`` glob: ``*`` captures, everything else is literal.

    Captures are lazy except a trailing one, which takes the rest of the text.

    Example:
        >>> glob_to_regex("[*] *")
        '\\\\[(.*?)\\\\] (.*)'
    """
    parts = [re.sub(r"([\\.^$|?*+()\[\]{}])", r"\\\1", p) for p in glob.split("*")]
    groups = ["(.*)" if i == len(parts) - 2 and not parts[-1] else "(.*?)"
              for i in range(len(parts) - 1)]  # fmt: skip
    return "".join(p + g for p, g in zip(parts, [*groups, ""], strict=True))


def _named_groups(parser: Parser, tok: Token) -> tuple[str, tuple[tuple[str, int], ...]]:
    # RE2 (DuckDB) spells named groups (?P<name>...); CloudWatch's docs use (?<name>...).
    pattern = re.sub(r"\(\?<(?![=!])", "(?P<", tok.text)
    try:
        groups = re.compile(pattern).groupindex
    except re.error as exc:
        raise parser.error(f"invalid regex: {exc}", tok.pos) from None
    if not groups:
        raise parser.error("parse /regex/ needs named groups like (?<name>...)", tok.pos)
    return pattern, tuple(sorted(groups.items(), key=lambda kv: kv[1]))


def _numbered(names: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    return tuple((name, i + 1) for i, name in enumerate(names))


def _unquote(text: str) -> str:
    """A string token's value: quotes removed, ``\\"``, ``\\'`` and ``\\\\`` unescaped."""
    return re.sub(r"\\([\"'\\])", r"\1", text[1:-1])


__all__ = [
    "COMMANDS",
    "KEYWORDS",
    "Binary",
    "Call",
    "Command",
    "Dedup",
    "Display",
    "Duration",
    "Expr",
    "Field",
    "Fields",
    "Filter",
    "InList",
    "Limit",
    "Literal",
    "Match",
    "Parse",
    "Projection",
    "Regex",
    "Sort",
    "Stats",
    "Token",
    "Unary",
    "glob_to_regex",
    "parse_query",
    "query_error",
    "tokenize",
]
