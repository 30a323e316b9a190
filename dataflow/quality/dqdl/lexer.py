"""Tokens of DQDL, following the lexer rules of Glue's grammar (awslabs/dqdl ``*.g4``).

- ``"..."`` is a string; only ``\\"`` and ``\\\\`` are escapes, any other backslash stays as
  written (regexes keep their ``\\d``). A quoted ``YYYY-MM-DD`` is a DATE token and a quoted
  ``9:30 AM`` / ``21:45`` a TIME token: Glue's lexer prefers them to strings.
- A word is ``[A-Za-z0-9_.]+``: digits alone are an INT, ``digits.digits`` a DECIMAL, anything
  else an IDENT (keywords are IDENTs; the parser knows them).
- ``#`` starts a comment to the end of the line. Whitespace and newlines separate tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, TypeAlias

from dataflow.errors import DqdlParseError

TokenKind: TypeAlias = Literal["STRING", "DATE", "TIME", "NUMBER", "IDENT", "OP", "EOF"]

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME = re.compile(r"\d{1,2}:\d{2}(?: ?(?:AM|PM|am|pm))?")
_WORD = re.compile(r"[A-Za-z0-9_.]+")
_INT = re.compile(r"\d+")
_DECIMAL = re.compile(r"\d+\.\d+")
# Longest first, so that ">=" is not read as ">" then "=".
_OPERATORS = ("!=", ">=", "<=", "=", ">", "<", "(", ")", "[", "]", "{", "}", ",", ":", "$",
              "+", "-", "*", "/")  # fmt: skip


@dataclass(frozen=True)
class Token:
    """One token.

    Attributes:
        kind: STRING, DATE, TIME (value unquoted and unescaped), NUMBER, IDENT, OP or EOF.
        value: the token's value (for OP the operator itself).
        text: the token exactly as written.
        line: 1-based line.
        column: 1-based column.
        start: offset of the first character in the source.
        end: offset just past the last character.
    """

    kind: TokenKind
    value: str
    text: str
    line: int
    column: int
    start: int
    end: int


def tokenize(source: str) -> list[Token]:
    """Split DQDL text into tokens, ending with an EOF token.

    Raises:
        DqdlParseError: an unterminated string or a character DQDL does not use.

    Example:
        >>> [(t.kind, t.value) for t in tokenize('RowCount > 10 # at least')]
        [('IDENT', 'RowCount'), ('OP', '>'), ('NUMBER', '10'), ('EOF', '')]
    """
    tokens: list[Token] = []
    pos, line, line_start = 0, 1, 0
    length = len(source)

    def make(kind: TokenKind, value: str, start: int, end: int, ln: int, col: int) -> Token:
        return Token(kind, value, source[start:end], ln, col, start, end)

    while pos < length:
        char = source[pos]
        if char == "\n":
            pos, line, line_start = pos + 1, line + 1, pos + 1
            continue
        if char in " \t\r\f\v":
            pos += 1
            continue
        if char == "#":
            newline = source.find("\n", pos)
            pos = length if newline < 0 else newline
            continue
        column = pos - line_start + 1
        if char == '"':
            start_line = line
            value, end, newlines, last_newline = _read_string(source, pos)
            if end < 0:
                rest = source[pos:].split("\n", 1)[0]
                raise DqdlParseError("Unterminated string", line=line, column=column, text=rest)
            if newlines:
                line, line_start = line + newlines, last_newline + 1
            kind: TokenKind = "STRING"
            if _DATE.fullmatch(value):
                kind = "DATE"
            elif _TIME.fullmatch(value):
                kind = "TIME"
            tokens.append(make(kind, value, pos, end, start_line, column))
            pos = end
            continue
        word = _WORD.match(source, pos)
        if word:
            text = word.group()
            kind = "NUMBER" if _INT.fullmatch(text) or _DECIMAL.fullmatch(text) else "IDENT"
            tokens.append(make(kind, text, pos, word.end(), line, column))
            pos = word.end()
            continue
        for op in _OPERATORS:
            if source.startswith(op, pos):
                tokens.append(make("OP", op, pos, pos + len(op), line, column))
                pos += len(op)
                break
        else:
            raise DqdlParseError(
                f"Unexpected character {char!r}", line=line, column=column, text=char
            )
    column = pos - line_start + 1
    tokens.append(Token("EOF", "", "", line, column, length, length))
    return tokens


def _read_string(source: str, pos: int) -> tuple[str, int, int, int]:
    """Read the string opening at ``pos``: (value, end offset or -1, newlines, last newline)."""
    out: list[str] = []
    i = pos + 1
    newlines, last_newline = 0, -1
    while i < len(source):
        char = source[i]
        if char == "\\" and i + 1 < len(source) and source[i + 1] in '"\\':
            out.append(source[i + 1])
            i += 2
            continue
        if char == '"':
            return "".join(out), i + 1, newlines, last_newline
        if char == "\n":
            newlines, last_newline = newlines + 1, i
        out.append(char)
        i += 1
    return "", -1, newlines, last_newline
