"""Athena-style query errors: an error name, a ``line L:C`` position and one line of text.

Athena (engine v3 = Trino) reports a failed query as ``ERROR_NAME: line 1:8: message``; users
grep for those names, so the query stage raises them the same way::

    QueryError                      SYNTAX_ERROR, COLUMN_NOT_FOUND, FUNCTION_NOT_FOUND, ...
    └── TableNotFoundError          TABLE_NOT_FOUND (also a NoSuchTableError)
    QueryCancelledError             the workgroup's bytes-scanned cutoff stopped the query

(the classes live in :mod:`dataflow.errors` with the rest of the tree; this module places them).

Positions are 1-based and point into the SQL the user wrote (not the DuckDB translation):
:func:`locate` finds a name among the tokens of that text.

Example:
    >>> str(QueryError("COLUMN_NOT_FOUND", "Column 'x' cannot be resolved", line=1, column=8))
    "COLUMN_NOT_FOUND: line 1:8: Column 'x' cannot be resolved"
"""

from __future__ import annotations

import re

from dataflow.errors import QueryCancelledError, QueryError, TableNotFoundError

USER_ERROR = 2
"""Athena's ``AthenaError.ErrorCategory`` for errors in the query (1 system, 2 user, 3 other)."""

_CARET = re.compile(r"^LINE (\d+): (.*)\n(\s*)\^", re.MULTILINE)


def position(text: str, offset: int) -> tuple[int, int]:
    """1-based ``(line, column)`` of a character offset in ``text``.

    Example:
        >>> position("SELECT\\n  x", 9)
        (2, 3)
    """
    offset = max(0, min(offset, len(text)))
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def locate(text: str, name: str, dialect: str = "duckdb") -> tuple[int, int]:
    """Where ``name`` (an identifier, any case, quoted or not) first appears in ``text``.

    String literals are skipped, so ``WHERE s = 'x'`` does not place column ``x`` there.
    ``(1, 1)`` when the name is not found as a token.

    Example:
        >>> locate("SELECT 'x', x FROM t", "X")
        (1, 13)
    """
    import sqlglot
    from sqlglot.tokens import TokenType  # type: ignore[attr-defined]

    wanted = name.lower()
    try:
        tokens = sqlglot.tokenize(text, read=dialect)
    except sqlglot.errors.SqlglotError:
        return 1, 1
    for token in tokens:
        if token.token_type in (TokenType.STRING, TokenType.NATIONAL_STRING):
            continue
        if token.text.lower() == wanted:
            return position(text, token.start)
    return 1, 1


def duckdb_caret(message: str) -> tuple[int, int] | None:
    """The ``(line, column)`` DuckDB marks with a caret under ``LINE n: ...``, if it does.

    Example:
        >>> duckdb_caret('Parser Error: at "X"\\n\\nLINE 1: SELECT X\\n               ^')
        (1, 8)
    """
    match = _CARET.search(message)
    if match is None:
        return None
    prefix = len(f"LINE {match.group(1)}: ")
    return int(match.group(1)), max(1, len(match.group(3)) - prefix + 1)


__all__ = [
    "USER_ERROR",
    "QueryCancelledError",
    "QueryError",
    "TableNotFoundError",
    "duckdb_caret",
    "from_duckdb",
    "locate",
    "position",
]


_MISSING_TABLE = re.compile(r"Table with name (.+?) does not exist")
_MISSING_COLUMN = re.compile(
    r'(?:Referenced column|does not have a column named) "([^"]+)"(?: not found)?'
)
_MISSING_FUNCTION = re.compile(r"Function with name (\S+) does not exist")
_NO_MATCH = re.compile(r"No function matches the given name and argument types \'([^(\']+)\(")


def from_duckdb(
    exc: Exception, source: str, *, dialect: str = "duckdb", default_database: str = "market"
) -> Exception:
    """A DuckDB error as Athena would name it, positioned in ``source`` (the text as written).

    ``dialect`` is the dialect ``source`` was written in; for DuckDB SQL the caret DuckDB draws
    is used when there is one, otherwise the first token naming the culprit.

    Example:
        >>> import duckdb
        >>> try:
        ...     duckdb.sql("SELECT nope FROM range(1)")
        ... except duckdb.Error as exc:
        ...     print(from_duckdb(exc, "SELECT nope FROM range(1)"))
        COLUMN_NOT_FOUND: line 1:8: Column 'nope' cannot be resolved
    """
    import duckdb

    from dataflow.errors import StorageError

    full = str(exc).strip()
    message = full.splitlines()[0] if full else type(exc).__name__
    reason = message.split(": ", 1)[1] if ": " in message else message

    def at(name: str | None) -> tuple[int, int]:
        caret = duckdb_caret(full) if dialect == "duckdb" else None
        if caret is not None:
            return caret
        return locate(source, name, dialect) if name else (1, 1)

    if isinstance(exc, duckdb.CatalogException):
        table = _MISSING_TABLE.search(message)
        if table:
            parts = [p.strip('"') for p in table.group(1).split(".")]
            database, name = (default_database, parts[-1]) if len(parts) == 1 else parts[-2:]
            line, column = at(parts[0])
            return TableNotFoundError(database, name, line=line, column=column)
        function = _MISSING_FUNCTION.search(message)
        if function:
            line, column = at(function.group(1))
            return QueryError(
                "FUNCTION_NOT_FOUND",
                f"Function '{function.group(1)}' not registered",
                line=line,
                column=column,
            )
        return QueryError("SYNTAX_ERROR", reason)
    if isinstance(exc, duckdb.BinderException):
        missing = _MISSING_COLUMN.search(message)
        if missing:
            name = missing.group(1).split(".")[-1]
            line, column = at(name)
            return QueryError(
                "COLUMN_NOT_FOUND", f"Column '{name}' cannot be resolved", line=line, column=column
            )
        no_match = _NO_MATCH.search(message)
        if no_match:
            line, column = at(no_match.group(1))
            return QueryError("FUNCTION_NOT_FOUND", reason, line=line, column=column)
        return QueryError("TYPE_MISMATCH", reason, line=at(None)[0], column=at(None)[1])
    if isinstance(exc, duckdb.ParserException):
        line, column = at(None)
        return QueryError("SYNTAX_ERROR", reason, line=line, column=column)
    if isinstance(exc, duckdb.PermissionException):
        return QueryError(
            "PERMISSION_DENIED", f"{reason} (Permission Error: queries read only catalog tables)"
        )
    if isinstance(exc, duckdb.ConversionException):
        return QueryError("INVALID_CAST_ARGUMENT", reason)
    if isinstance(exc, duckdb.OutOfRangeException):
        kind = (
            "DIVISION_BY_ZERO"
            if "division by zero" in reason.lower()
            else "NUMERIC_VALUE_OUT_OF_RANGE"
        )
        return QueryError(kind, reason)
    if isinstance(exc, duckdb.InvalidInputException):
        return QueryError("INVALID_FUNCTION_ARGUMENT", reason)
    if isinstance(exc, duckdb.IOException):
        return StorageError(f"{message} — check the table's files")
    return QueryError("GENERIC_USER_ERROR", reason)
