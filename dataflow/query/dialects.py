"""SQL dialects: run Athena (Trino) and Spark SQL unchanged by translating it to DuckDB.

sqlglot does the translation (``read=trino|spark, write=duckdb``). Where its output would give a
different answer than Athena, a small transform of ours runs first — each is listed here:

* ``date_diff(unit, a, b)``: Trino counts *whole* units elapsed (23:00 → 01:00 is 0 days);
  DuckDB's ``date_diff`` counts boundaries crossed (1 day). DuckDB's ``date_sub`` counts whole
  units, so Trino's ``date_diff`` becomes ``date_sub``.
* ``format_datetime`` / ``parse_datetime`` take Joda-Time patterns (``yyyy-MM-dd HH:mm``);
  sqlglot passes them through, so they are rewritten to ``strftime`` / ``strptime`` with the
  pattern converted (the common letters only; see :data:`JODA_TO_STRFTIME`).
* Integer division: in Trino ``7 / 2`` is ``3``. That is not a rewrite but a setting: Trino
  queries run on a DuckDB connection with ``integer_division = true`` (int / int truncates,
  anything else divides as usual), so :attr:`Translation.integer_division` says which.

A text sqlglot cannot parse fails as ``SYNTAX_ERROR`` with its position in the text given;
a construct sqlglot cannot express in DuckDB fails as ``NOT_SUPPORTED``.

Example:
    >>> translate("SELECT approx_percentile(x, 0.5) FROM t", "athena").sql
    'SELECT APPROX_QUANTILE(x, 0.5) FROM t'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from dataflow.errors import ConfigError
from dataflow.query.errors import QueryError

if TYPE_CHECKING:
    from sqlglot import exp

DIALECTS: dict[str, str] = {
    "duckdb": "duckdb",
    "athena": "trino",
    "trino": "trino",
    "spark": "spark",
}
"""Dialect names accepted by ``--dialect`` → the sqlglot dialect that reads them."""

JODA_TO_STRFTIME: dict[str, str] = {
    "yyyy": "%Y",
    "yy": "%y",
    "MMMM": "%B",
    "MMM": "%b",
    "MM": "%m",
    "dd": "%d",
    "HH": "%H",
    "hh": "%I",
    "mm": "%M",
    "ss": "%S",
    "SSSSSS": "%f",
    "SSS": "%g",
    "EEEE": "%A",
    "EEE": "%a",
    "a": "%p",
    "ZZ": "%z",
    "Z": "%z",
    "D": "%j",
}
"""The Joda-Time pattern letters ``format_datetime`` / ``parse_datetime`` understand here."""

_JODA = re.compile("|".join(sorted(map(re.escape, JODA_TO_STRFTIME), key=len, reverse=True)))


@dataclass(frozen=True)
class Translation:
    """A statement ready for DuckDB.

    Attributes:
        source: the text as written.
        dialect: the sqlglot dialect it was read in (``duckdb``, ``trino`` or ``spark``).
        sql: the DuckDB SQL to run.
        integer_division: run with ``integer_division = true`` (Trino's ``int / int``).
    """

    source: str
    dialect: str
    sql: str
    integer_division: bool = False


def canonical_dialect(name: str) -> str:
    """The sqlglot dialect of a ``--dialect`` name (``athena`` is ``trino``).

    Raises:
        ConfigError: an unknown name.

    Example:
        >>> canonical_dialect("Athena")
        'trino'
    """
    try:
        return DIALECTS[name.lower()]
    except KeyError:
        raise ConfigError(f"unknown dialect {name!r} — use one of {', '.join(DIALECTS)}") from None


def translate(sql: str, dialect: str = "duckdb") -> Translation:
    """Translate one statement from ``dialect`` to DuckDB SQL (DuckDB SQL is passed through).

    Raises:
        QueryError: ``SYNTAX_ERROR`` (the text does not parse) or ``NOT_SUPPORTED`` (no DuckDB
            equivalent), with the position in ``sql``.
        ConfigError: an unknown dialect.

    Example:
        >>> translate("SELECT date_diff('day', a, b) FROM t", "trino").sql
        "SELECT DATE_SUB('DAY', a, b) FROM t"
    """
    import sqlglot
    from sqlglot.errors import ErrorLevel, ParseError, SqlglotError, UnsupportedError

    read = canonical_dialect(dialect)
    text = sql.strip().rstrip(";").strip()
    if read == "duckdb":
        return Translation(source=sql, dialect=read, sql=text)
    try:
        trees = sqlglot.parse(text, read=read)
    except ParseError as exc:
        raise _syntax_error(exc) from exc
    except SqlglotError as exc:
        raise QueryError("SYNTAX_ERROR", str(exc).splitlines()[0]) from exc
    statements = [tree for tree in trees if tree is not None]
    if len(statements) != 1:
        raise ConfigError(f"{len(statements)} statements given — run one statement per query")
    tree = _rewrite(cast("exp.Expression", statements[0]), read)
    try:
        out = tree.sql(dialect="duckdb", unsupported_level=ErrorLevel.RAISE)
    except UnsupportedError as exc:
        raise QueryError("NOT_SUPPORTED", str(exc).splitlines()[0]) from exc
    return Translation(source=sql, dialect=read, sql=out, integer_division=read == "trino")


def joda_to_strftime(pattern: str) -> str:
    """A Joda-Time pattern as a ``strftime`` format; quoted text (``'T'``) is kept literally.

    Example:
        >>> joda_to_strftime("yyyy-MM-dd'T'HH:mm:ss")
        '%Y-%m-%dT%H:%M:%S'
    """
    out: list[str] = []
    for index, part in enumerate(pattern.split("'")):
        if index % 2:
            out.append(part.replace("%", "%%") or "'")  # '' is a quote in Joda
        else:
            out.append(_JODA.sub(lambda m: JODA_TO_STRFTIME[m.group(0)], part.replace("%", "%%")))
    return "".join(out)


def _rewrite(tree: exp.Expression, read: str) -> exp.Expression:
    from sqlglot import exp

    def fix(node: exp.Expression) -> exp.Expression:
        if read == "trino" and isinstance(node, exp.DateDiff):
            unit = node.args.get("unit")
            name = unit.name if unit is not None else "day"
            return exp.Anonymous(
                this="date_sub",
                expressions=[exp.Literal.string(name.upper()), node.expression, node.this],
            )
        if isinstance(node, exp.Anonymous) and node.name.lower() == "format_datetime":
            value, fmt = ([*node.expressions, None, None])[:2]
            if isinstance(fmt, exp.Literal) and fmt.is_string and value is not None:
                return exp.Anonymous(
                    this="strftime",
                    expressions=[value, exp.Literal.string(joda_to_strftime(fmt.name))],
                )
        parse_datetime = getattr(exp, "ParseDatetime", None)
        if parse_datetime is not None and isinstance(node, parse_datetime):
            fmt = node.args.get("format")
            if isinstance(fmt, exp.Literal) and fmt.is_string:
                return exp.Anonymous(
                    this="strptime",
                    expressions=[node.this, exp.Literal.string(joda_to_strftime(fmt.name))],
                )
        return node

    return tree.transform(fix)


def _syntax_error(exc: Exception) -> QueryError:
    errors = getattr(exc, "errors", None) or [{}]
    first = errors[0]
    line = int(first.get("line") or 1)
    highlight = str(first.get("highlight") or "")
    # sqlglot gives the column where the offending token *ends*.
    column = max(1, int(first.get("col") or 1) - len(highlight) + 1)
    description = str(first.get("description") or exc).split(". Line")[0]
    description = re.sub(r"<Token token_type: [^,]+, text: ([^,]*),.*?>", r"'\1'", description)
    if highlight:
        description = f"{description} at '{highlight}'" if "'" not in description else description
    return QueryError("SYNTAX_ERROR", description, line=line, column=column)


__all__ = [
    "DIALECTS",
    "JODA_TO_STRFTIME",
    "Translation",
    "canonical_dialect",
    "joda_to_strftime",
    "translate",
]
