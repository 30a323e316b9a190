"""CloudWatch Logs Insights queries, compiled to DuckDB SQL: lexer → parser → AST → SQL.

The subset follows the Logs Insights query syntax
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/CWL_QuerySyntax.html): commands
joined by ``|`` — ``fields``, ``filter``, ``stats … by …``, ``sort``, ``limit``, ``parse``
(glob and regex forms), ``display`` and ``dedup`` — and ``#`` comments. Each command becomes one
CTE over the previous one, so a ``filter`` after ``stats`` filters the aggregated rows, as in
CloudWatch. Fields the logs do not have are ``NULL`` (CloudWatch's behaviour), not errors.

The compiled SQL reads a relation named ``logs`` with one row per record plus the auto fields
``@timestamp``, ``@message``, ``@logStream``, ``@log`` and the file order ``__seq``;
:mod:`dataflow.monitor.logquery` provides it. Functions and commands are tables below: adding
one is a line, not a branch.

Example:
    >>> sql = compile_query('filter level = "ERROR" | stats count(*) as n by stage').sql
    >>> "WHERE (\\"level\\" = 'ERROR')" in sql, 'count(*) AS "n"' in sql
    (True, True)
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field

from dataflow.monitor.insights_parser import (
    Binary,
    Call,
    Command,
    Dedup,
    Display,
    Duration,
    Expr,
    Field,
    Fields,
    Filter,
    InList,
    Limit,
    Literal,
    Match,
    Parse,
    Projection,
    Regex,
    Sort,
    Stats,
    Unary,
    parse_query,
    query_error,
)

DEFAULT_LIMIT = 1000
"""Rows shown when the query has no ``limit`` (CloudWatch's default)."""

AUTO_FIELDS = ("@timestamp", "@message", "@logStream", "@log")
SEQ = "__seq"
"""File order of a record: the tie-breaker of records logged in the same millisecond."""

STANDARD_COLUMNS = ("ts", "level", "logger", "message", "run_id", "stage", *AUTO_FIELDS, SEQ)
"""The columns of ``logs`` every record has; used when no schema is given."""

_NEWEST_FIRST = ('"@timestamp" DESC', f'"{SEQ}" DESC')

# --- functions: name -> (min args, max args, SQL template) ---------------------------------------
# Template placeholders: {0} the argument's SQL, {n0} the argument as DOUBLE, {s0} as VARCHAR,
# {i0} as an INTERVAL (durations like 5m), {p1} a percentile literal as a fraction, {all} all
# arguments comma-separated. -1 as max means any number.

SCALAR_FUNCTIONS: dict[str, tuple[int, int, str]] = {
    "abs": (1, 1, "abs({n0})"),
    "ceil": (1, 1, "ceil({n0})"),
    "floor": (1, 1, "floor({n0})"),
    "round": (1, 2, "round({n0}{rest})"),
    "sqrt": (1, 1, "sqrt({n0})"),
    "log": (1, 1, "ln({n0})"),
    "exp": (1, 1, "exp({n0})"),
    "pow": (2, 2, "power({n0}, {n1})"),
    "greatest": (1, -1, "greatest({all})"),
    "least": (1, -1, "least({all})"),
    "coalesce": (1, -1, "coalesce({all})"),
    "concat": (1, -1, "concat({all})"),
    "strlen": (1, 1, "length({s0})"),
    "toupper": (1, 1, "upper({s0})"),
    "tolower": (1, 1, "lower({s0})"),
    "trim": (1, 1, "trim({s0})"),
    "ltrim": (1, 1, "ltrim({s0})"),
    "rtrim": (1, 1, "rtrim({s0})"),
    # CloudWatch's substr is 0-based; SQL's is 1-based.
    "substr": (2, 3, "substr({s0}, CAST({n1} AS BIGINT) + 1{rest2})"),
    "replace": (3, 3, "replace({s0}, {s1}, {s2})"),
    "strcontains": (2, 2, "CAST(contains({s0}, {s1}) AS INTEGER)"),
    "ispresent": (1, 1, "({0} IS NOT NULL)"),
    "isempty": (1, 1, "({0} IS NULL OR {s0} = '')"),
    "isblank": (1, 1, "({0} IS NULL OR trim({s0}) = '')"),
    "bin": (1, 1, 'time_bucket({i0}, "@timestamp")'),
    "datefloor": (2, 2, "time_bucket({i1}, {0})"),
    "dateceil": (
        2,
        2,
        "(time_bucket({i1}, {0}) + CASE WHEN time_bucket({i1}, {0}) = {0} "
        "THEN INTERVAL 0 SECOND ELSE {i1} END)",
    ),
    "frommillis": (1, 1, "make_timestamp(CAST({n0} AS BIGINT) * 1000)"),
    "tomillis": (1, 1, "epoch_ms({0})"),
}

AGGREGATE_FUNCTIONS: dict[str, tuple[int, int, str]] = {
    "count": (0, 1, "count({all})"),
    "count_distinct": (1, 1, "count(DISTINCT {0})"),
    "avg": (1, 1, "avg({n0})"),
    "sum": (1, 1, "sum({n0})"),
    "min": (1, 1, "min({0})"),
    "max": (1, 1, "max({0})"),
    # CloudWatch's pct returns a value of the data set, so the discrete quantile.
    "pct": (2, 2, "quantile_disc({n0}, {p1})"),
    "stddev": (1, 1, "stddev_samp({n0})"),
    "earliest": (1, 1, 'arg_min({0}, "@timestamp")'),
    "latest": (1, 1, 'arg_max({0}, "@timestamp")'),
}

_BINARY_SQL = {
    "and": "AND", "or": "OR", "=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">=",
    "+": "+", "-": "-", "*": "*", "/": "/", "%": "%",
}  # fmt: skip
_ARITHMETIC = frozenset("+-*/%^")
_DURATION_SQL = {
    "ms": "MILLISECOND", "s": "SECOND", "m": "MINUTE", "h": "HOUR", "d": "DAY", "w": "WEEK",
    "mo": "MONTH", "q": "QUARTER", "y": "YEAR",
}  # fmt: skip


@dataclass(frozen=True)
class CompiledQuery:
    """A query compiled to SQL over the relation ``logs``.

    Attributes:
        sql: one SELECT statement (with CTEs).
        columns: the columns it returns, in order, as the query names them.
        limit: the row limit applied (the query's ``limit`` or the default).
    """

    sql: str
    columns: tuple[str, ...]
    limit: int


def compile_query(
    query: str,
    columns: Collection[str] | None = None,
    *,
    default_limit: int = DEFAULT_LIMIT,
) -> CompiledQuery:
    """Compile a Logs Insights query to DuckDB SQL reading the relation ``logs``.

    Args:
        query: the query text, commands joined by ``|``.
        columns: the columns ``logs`` has; references to other fields compile to ``NULL``.
            ``None`` assumes the standard record fields plus any field the query names.
        default_limit: rows returned when the query has no ``limit`` command.

    Raises:
        ConfigError: a syntax error, unknown command or function; the message names the line
            and column and lists what is supported.

    Example:
        >>> q = compile_query("fields @timestamp, message | sort @timestamp asc | limit 2")
        >>> q.columns, q.limit, q.sql.splitlines()[-1]
        (('@timestamp', 'message'), 2, 'SELECT "@timestamp", "message" FROM logs ORDER BY \
"@timestamp" ASC LIMIT 2')
    """
    commands = parse_query(query, functions=set(SCALAR_FUNCTIONS) | set(AGGREGATE_FUNCTIONS))
    if columns is None:
        compiler = _Compiler(query, list(STANDARD_COLUMNS), default_limit, permissive=True)
    else:
        compiler = _Compiler(query, list(dict.fromkeys(columns)), default_limit)
    return compiler.compile(commands)


def quote_ident(name: str) -> str:
    """``name`` as a double-quoted SQL identifier.

    Example:
        >>> quote_ident('a"b')
        '"a""b"'
    """
    return '"' + name.replace('"', '""') + '"'


def quote_str(value: str) -> str:
    """``value`` as a single-quoted SQL string literal.

    Example:
        >>> quote_str("it's")
        "'it''s'"
    """
    return "'" + value.replace("'", "''") + "'"


# --- the compiler --------------------------------------------------------------------------------


@dataclass
class _Compiler:
    query: str
    columns: list[str]
    """The fields the current relation has."""
    default_limit: int
    permissive: bool = False
    """Assume any field named exists (compiling without a schema)."""
    ctes: list[str] = field(default_factory=list)
    relation: str = "logs"
    order: tuple[str, ...] = _NEWEST_FIRST
    display: list[str] | None = None
    limit: int | None = None
    after_dedup: bool = False

    def compile(self, commands: list[Command]) -> CompiledQuery:
        for command in commands:
            if self.after_dedup and not isinstance(command, Limit):
                raise query_error(
                    self.query, command.pos, "only limit may follow dedup (as in CloudWatch)"
                )
            if not isinstance(command, Limit | Display):
                self._flush_limit()
            getattr(self, _HANDLERS[type(command)])(command)
        display = self.display or ["@timestamp", "@message"]
        select = ", ".join(
            quote_ident(n) if self._has(n) else f"NULL AS {quote_ident(n)}" for n in display
        )
        limit = self.limit if self.limit is not None else self.default_limit
        order = f" ORDER BY {', '.join(self.order)}" if self.order else ""
        final = f"SELECT {select} FROM {self.relation}{order} LIMIT {limit}"
        sql = ("WITH " + ",\n".join(self.ctes) + "\n" if self.ctes else "") + final
        return CompiledQuery(sql, tuple(display), limit)

    # -- layers

    def _layer(self, body: str) -> None:
        name = f"q{len(self.ctes) + 1}"
        self.ctes.append(f"{name} AS ({body})")
        self.relation = name

    def _flush_limit(self) -> None:
        if self.limit is not None:
            order = f" ORDER BY {', '.join(self.order)}" if self.order else ""
            self._layer(f"SELECT * FROM {self.relation}{order} LIMIT {self.limit}")
            self.limit = None

    def _add_columns(self, items: list[tuple[str, str]]) -> None:
        """``SELECT *`` plus new columns; a new column with an existing name replaces it."""
        replaced = [name for name, _ in items if name in self.columns]
        star = "*"
        if replaced:
            star += " EXCLUDE (" + ", ".join(quote_ident(n) for n in replaced) + ")"
        exprs = ", ".join(f"{sql} AS {quote_ident(name)}" for name, sql in items)
        self._layer(f"SELECT {star}, {exprs} FROM {self.relation}")
        self.columns = [c for c in self.columns if c not in replaced] + [n for n, _ in items]

    def _show(self, names: list[str]) -> None:
        shown = [] if self.display is None else self.display
        self.display = shown + [n for n in names if n not in shown]

    # -- commands

    def fields(self, command: Fields) -> None:
        computed = [
            (p.alias, self.expr(p.expr))
            for p in command.items
            # A plain field the relation has needs no new column; a nested or missing one does.
            if not (isinstance(p.expr, Field) and p.expr.name == p.alias and self._has(p.alias))
        ]
        if computed:
            self._add_columns(computed)
        self._show([p.alias for p in command.items])

    def filter(self, command: Filter) -> None:
        self._layer(f"SELECT * FROM {self.relation} WHERE {self.expr(command.condition)}")

    def stats(self, command: Stats) -> None:
        groups = [f"{self.expr(p.expr)} AS {quote_ident(p.alias)}" for p in command.by]
        aggs = [
            f"{self.expr(p.expr, aggregate=True)} AS {quote_ident(p.alias)}" for p in command.aggs
        ]
        group_by = (
            f" GROUP BY {', '.join(str(i + 1) for i in range(len(groups)))}" if groups else ""
        )
        self._layer(f"SELECT {', '.join(groups + aggs)} FROM {self.relation}{group_by}")
        names = [p.alias for p in command.by] + [p.alias for p in command.aggs]
        self.columns = names
        self.permissive = False
        self.display = list(names)
        # Stats output has no time order; group keys ascending keeps results stable.
        self.order = tuple(f"{quote_ident(p.alias)} ASC" for p in command.by)

    def sort(self, command: Sort) -> None:
        self.order = tuple(
            f"{self.expr(e)} {'DESC' if desc else 'ASC'}" for e, desc in command.keys
        )

    def limit_(self, command: Limit) -> None:
        self.limit = command.count if self.limit is None else min(self.limit, command.count)

    def parse(self, command: Parse) -> None:
        source = f"CAST({self.expr(command.source)} AS VARCHAR)"
        pattern = quote_str(command.regex)
        items = [
            (name, f"CASE WHEN regexp_matches({source}, {pattern}) "
                   f"THEN regexp_extract({source}, {pattern}, {group}) END")
            for name, group in command.groups
        ]  # fmt: skip
        self._add_columns(items)

    def display_(self, command: Display) -> None:
        self.display = list(command.names)

    def dedup(self, command: Dedup) -> None:
        keys = [self.expr(Field(n, command.pos)) for n in command.names]
        order = f" ORDER BY {', '.join(self.order)}" if self.order else ""
        nulls = " OR ".join(f"{k} IS NULL" for k in keys)
        # CloudWatch keeps every record with a null in a dedup field.
        self._layer(
            f"SELECT * FROM {self.relation} QUALIFY {nulls} OR "
            f"row_number() OVER (PARTITION BY {', '.join(keys)}{order}) = 1"
        )
        self.after_dedup = True

    # -- expressions

    def _has(self, name: str) -> bool:
        return self.permissive or name in self.columns

    def field_sql(self, name: str) -> str:
        if self._has(name):
            return quote_ident(name)
        head, _, rest = name.partition(".")
        if rest and head in self.columns:
            # A nested JSON object: records extras like {"http": {"status": 200}}.
            return ".".join(quote_ident(part) for part in [head, *rest.split(".")])
        return "NULL"

    def expr(self, node: Expr, *, aggregate: bool = False) -> str:
        return _ExprCompiler(self, aggregate).sql(node)


_HANDLERS: dict[type, str] = {
    Fields: "fields",
    Filter: "filter",
    Stats: "stats",
    Sort: "sort",
    Limit: "limit_",
    Parse: "parse",
    Display: "display_",
    Dedup: "dedup",
}
"""The compiler method of each command of :data:`~dataflow.monitor.insights_parser.COMMANDS`."""


@dataclass
class _ExprCompiler:
    compiler: _Compiler
    aggregate: bool

    def sql(self, node: Expr) -> str:
        if isinstance(node, Field):
            return self.compiler.field_sql(node.name)
        if isinstance(node, Literal):
            return _literal(node)
        if isinstance(node, Duration):
            return f"INTERVAL {node.amount} {_DURATION_SQL[node.unit]}"
        if isinstance(node, Regex):
            return quote_str(node.pattern)
        if isinstance(node, Unary):
            if node.op == "not":
                return f"(NOT {self.sql(node.operand)})"
            return f"(-{self.numeric(node.operand)})"
        if isinstance(node, Binary):
            return self.binary(node)
        if isinstance(node, Match):
            text = f"CAST({self.sql(node.operand)} AS VARCHAR)"
            if isinstance(node.pattern, Regex) or node.op == "=~":
                test = f"regexp_matches({text}, {quote_str(_pattern_text(node.pattern))})"
            else:
                # `like "text"` is a substring test in Logs Insights, not SQL's LIKE.
                test = f"contains({text}, {quote_str(_pattern_text(node.pattern))})"
            return f"(NOT {test})" if node.negated else test
        if isinstance(node, InList):
            numeric = all(isinstance(i, Literal) and _is_number(i) for i in node.items)
            left = self.numeric(node.operand) if numeric else self.sql(node.operand)
            items = ", ".join(self.sql(i) for i in node.items)
            return f"({left} {'NOT IN' if node.negated else 'IN'} ({items}))"
        if isinstance(node, Call):
            return self.call(node)
        raise AssertionError(f"unhandled node {node!r}")  # pragma: no cover

    def numeric(self, node: Expr) -> str:
        """Numbers in logs may be strings; CloudWatch compares them as numbers."""
        if isinstance(node, Literal) and _is_number(node):
            return self.sql(node)
        if isinstance(node, Field):
            return f"TRY_CAST({self.sql(node)} AS DOUBLE)"
        return self.sql(node)

    def binary(self, node: Binary) -> str:
        if node.op in _ARITHMETIC:
            left, right = self.numeric(node.left), self.numeric(node.right)
            if node.op == "^":
                return f"power({left}, {right})"
            return f"({left} {_BINARY_SQL[node.op]} {right})"
        if node.op in ("and", "or"):
            return f"({self.sql(node.left)} {_BINARY_SQL[node.op]} {self.sql(node.right)})"
        numeric = any(isinstance(s, Literal) and _is_number(s) for s in (node.left, node.right))
        left = self.numeric(node.left) if numeric else self.sql(node.left)
        right = self.numeric(node.right) if numeric else self.sql(node.right)
        return f"({left} {_BINARY_SQL[node.op]} {right})"

    def call(self, node: Call) -> str:
        name = node.name.lower()
        table = AGGREGATE_FUNCTIONS if name in AGGREGATE_FUNCTIONS else SCALAR_FUNCTIONS
        if table is AGGREGATE_FUNCTIONS and not self.aggregate:
            raise query_error(
                self.compiler.query, node.pos, f"{node.name}() may only be used in stats"
            )
        low, high, template = table[name]
        # Aggregates do not nest: count(avg(x)) is an error in SQL and in CloudWatch.
        inner = (
            _ExprCompiler(self.compiler, aggregate=False) if table is AGGREGATE_FUNCTIONS else self
        )
        if node.star:
            if name != "count":
                raise query_error(self.compiler.query, node.pos, f"{node.name}(*) is not valid")
            return "count(*)"
        if len(node.args) < low or (high >= 0 and len(node.args) > high):
            want = f"{low}" if low == high else f"{low} to {high}" if high >= 0 else f"{low}+"
            raise query_error(
                self.compiler.query, node.pos, f"{node.name}() takes {want} argument(s)"
            )
        args = [inner.sql(a) for a in node.args]
        values = {"all": ", ".join(args) or "*", "rest": "".join(f", {a}" for a in args[1:])}
        values["rest2"] = "".join(f", CAST({a} AS BIGINT)" for a in args[2:])
        for i, arg in enumerate(node.args):
            values[str(i)] = args[i]
            values[f"n{i}"] = inner.numeric(arg)
            values[f"s{i}"] = f"CAST({args[i]} AS VARCHAR)"
            values[f"i{i}"] = args[i]
            if isinstance(arg, Literal) and _is_number(arg) and 0 <= float(str(arg.value)) <= 100:
                values[f"p{i}"] = repr(float(str(arg.value)) / 100)
        needed = set(re.findall(r"{(\w+)}", template))
        for key in sorted(needed - set(values)):
            kind = "a percentile from 0 to 100" if key.startswith("p") else "a value"
            raise query_error(
                self.compiler.query,
                node.pos,
                f"{node.name}() needs {kind} as argument {int(key[1:]) + 1}",
            )
        return re.sub(r"{(\w+)}", lambda m: values[m.group(1)], template)


def _literal(node: Literal) -> str:
    if node.value is None:
        return "NULL"
    if isinstance(node.value, str):
        return quote_str(node.value)
    return str(node.value)


def _is_number(node: Literal) -> bool:
    return isinstance(node.value, int | float) and not isinstance(node.value, bool)


def _pattern_text(pattern: Expr) -> str:
    value = getattr(pattern, "pattern", None)
    if value is None:
        value = getattr(pattern, "value", "")
    return str(value)


__all__ = [
    "AGGREGATE_FUNCTIONS",
    "AUTO_FIELDS",
    "DEFAULT_LIMIT",
    "SCALAR_FUNCTIONS",
    "STANDARD_COLUMNS",
    "CompiledQuery",
    "Projection",
    "compile_query",
    "quote_ident",
    "quote_str",
]
