"""Hive type strings as trees: parse, render, merge (Glue's widening), finalize.

The catalog speaks Hive/Glue type names (``string``, ``bigint``, ``array<int>``,
``struct<a:int,b:string>``). Inference and merging work on small trees (no re-parsing while
thousands of records are merged) and render strings at the edges. Widening on merges follows
``reference/aws-semantics.md`` section 2: ``int -> bigint -> double``; numbers mixed with
anything else give ``string``; struct fields are unioned; ``void`` (only nulls seen) gives way.

Example:
    >>> merge_types("struct<a:int>", "struct<a:bigint,b:string>")
    'struct<a:bigint,b:string>'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

VOID = "void"
"""The type of a value only ever seen as null; :func:`finalize_type` turns it into ``string``
(as it does an object only ever seen empty, ``struct<>``)."""

# Hive's numeric types from narrow to wide; a merge takes the wider one.
_NUMERIC = ("tinyint", "smallint", "int", "bigint", "float", "double")
_PLAIN_NAME = re.compile(r"[^:,<>`\s]+")


@dataclass
class Column:
    """A column: its name and Hive type (``string``, ``bigint``, ``array<int>``, ...)."""

    name: str
    type: str
    comment: str | None = None


# --- trees -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Array:
    element: HiveType


@dataclass(frozen=True, slots=True)
class MapType:
    key: HiveType
    value: HiveType


@dataclass(frozen=True, slots=True)
class Struct:
    fields: dict[str, HiveType]


HiveType: TypeAlias = "str | Array | MapType | Struct"


def merge(a: HiveType, b: HiveType) -> HiveType:
    if a == b:
        return a
    if a == VOID:
        return b
    if b == VOID:
        return a
    if isinstance(a, str) and isinstance(b, str):
        return _merge_primitive(a, b)
    if isinstance(a, Struct) and isinstance(b, Struct):
        fields = dict(a.fields)
        for name, kind in b.fields.items():
            fields[name] = merge(fields[name], kind) if name in fields else kind
        return Struct(fields)
    if isinstance(a, Array) and isinstance(b, Array):
        return Array(merge(a.element, b.element))
    if isinstance(a, MapType) and isinstance(b, MapType):
        return MapType(merge(a.key, b.key), merge(a.value, b.value))
    return "string"


def _merge_primitive(a: str, b: str) -> str:
    a_num = _numeric_rank(a)
    b_num = _numeric_rank(b)
    if a_num is not None and b_num is not None:
        if a.startswith("decimal") or b.startswith("decimal"):
            return "double"
        return _NUMERIC[max(a_num, b_num)]
    if {a, b} == {"date", "timestamp"}:
        return "timestamp"
    return "string"


def _numeric_rank(name: str) -> int | None:
    if name.startswith("decimal"):
        return len(_NUMERIC) - 1
    return _NUMERIC.index(name) if name in _NUMERIC else None


def finalize(kind: HiveType) -> HiveType:
    if kind == VOID:
        return "string"
    if isinstance(kind, Array):
        return Array(finalize(kind.element))
    if isinstance(kind, MapType):
        return MapType(finalize(kind.key), finalize(kind.value))
    if isinstance(kind, Struct):
        # Hive has no empty struct: an object only ever seen empty is typed like a null.
        if not kind.fields:
            return "string"
        return Struct({name: finalize(sub) for name, sub in kind.fields.items()})
    return kind


def render(kind: HiveType) -> str:
    if isinstance(kind, str):
        return kind
    if isinstance(kind, Array):
        return f"array<{render(kind.element)}>"
    if isinstance(kind, MapType):
        return f"map<{render(kind.key)},{render(kind.value)}>"
    fields = ",".join(f"{quote_name(name)}:{render(sub)}" for name, sub in kind.fields.items())
    return f"struct<{fields}>"


def quote_name(name: str) -> str:
    # Hive/Athena accept backquoted struct field names; only names that would break parsing
    # (payload keys such as "EUR/USD" are fine, "a:b" or "x y" are not) need them.
    if _PLAIN_NAME.fullmatch(name):
        return name
    return "`" + name.replace("`", "``") + "`"


class _Parser:
    """Recursive descent over a Hive type string."""

    def __init__(self, text: str) -> None:
        self.text = text.replace(" ", "") if "`" not in text else text
        self.pos = 0

    def parse(self) -> HiveType:
        kind = self._type()
        if self.pos != len(self.text):
            raise ValueError(f"unexpected {self.text[self.pos :]!r} in type {self.text!r}")
        return kind

    def _expect(self, char: str) -> None:
        if not self.text.startswith(char, self.pos):
            raise ValueError(f"expected {char!r} at {self.pos} in type {self.text!r}")
        self.pos += 1

    def _word(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in "<>,:":
            if self.text[self.pos] == "(":
                self.pos = self.text.index(")", self.pos)
            self.pos += 1
        return self.text[start : self.pos].strip().lower()

    def _name(self) -> str:
        if self.text.startswith("`", self.pos):
            end = self.pos + 1
            chars: list[str] = []
            while True:
                nxt = self.text.index("`", end)
                chars.append(self.text[end:nxt])
                if self.text.startswith("``", nxt):
                    chars.append("`")
                    end = nxt + 2
                    continue
                self.pos = nxt + 1
                return "".join(chars)
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] != ":":
            self.pos += 1
        return self.text[start : self.pos].strip()

    def _type(self) -> HiveType:
        word = self._word()
        if word == "array":
            self._expect("<")
            element = self._type()
            self._expect(">")
            return Array(element)
        if word == "map":
            self._expect("<")
            key = self._type()
            self._expect(",")
            value = self._type()
            self._expect(">")
            return MapType(key, value)
        if word == "struct":
            self._expect("<")
            fields: dict[str, HiveType] = {}
            while not self.text.startswith(">", self.pos):
                if fields:
                    self._expect(",")
                name = self._name()
                self._expect(":")
                fields[name] = self._type()
            self._expect(">")
            return Struct(fields)
        if not word:
            raise ValueError(f"missing type at {self.pos} in {self.text!r}")
        return word


def parse(text: str) -> HiveType:
    return _Parser(text).parse()


# --- public merge functions ----------------------------------------------------------------------


def merge_types(a: str, b: str) -> str:
    """The type that holds values of both Hive types (Glue's widening on merges).

    ``int -> bigint -> double``; numbers mixed with strings (or booleans) give ``string``;
    struct fields are unioned; ``void`` (only nulls seen) gives way to anything.

    Example:
        >>> merge_types("struct<a:int>", "struct<b:string,a:double>")
        'struct<a:double,b:string>'
        >>> merge_types("array<int>", "string")
        'string'
    """
    return render(merge(parse(a), parse(b)))


def merge_schemas(a: Sequence[Column], b: Sequence[Column]) -> list[Column]:
    """Union two column lists by name: ``a``'s order, then ``b``'s new columns, types merged.

    Names compare case-insensitively (the catalog stores them lowercase).

    Example:
        >>> a = [Column("x", "int")]
        >>> merged = merge_schemas(a, [Column("X", "double"), Column("y", "string")])
        >>> [(c.name, c.type) for c in merged]
        [('x', 'double'), ('y', 'string')]
    """
    out: dict[str, Column] = {}
    for column in [*a, *b]:
        key = column.name.lower()
        if key in out:
            old = out[key]
            out[key] = Column(old.name, merge_types(old.type, column.type), old.comment)
        else:
            out[key] = Column(column.name, column.type, column.comment)
    return list(out.values())


def finalize_type(text: str) -> str:
    """Replace ``void`` (a value only seen as null) by ``string``, as Glue does.

    Example:
        >>> finalize_type("struct<a:void,b:array<void>>")
        'struct<a:string,b:array<string>>'
    """
    return render(finalize(parse(text)))


__all__ = [
    "VOID",
    "Array",
    "Column",
    "HiveType",
    "MapType",
    "Struct",
    "finalize",
    "finalize_type",
    "merge",
    "merge_schemas",
    "merge_types",
    "parse",
    "quote_name",
    "render",
]
