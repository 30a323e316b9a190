"""Schema inference of data files, the way the Glue crawler's built-in classifiers do it.

One file in, one :class:`InferredSchema` out: its classification (``json``, ``csv`` or
``parquet``), columns with Hive type names, record count and compression. Gzip (and bzip2) are
recognised by their magic bytes, whatever the file is called.

* **JSON**: a single object, an array of objects, or JSON lines. Numbers become ``int`` (fits in
  32 bits), ``bigint`` or ``double``; objects ``struct<..>``, lists ``array<..>``; strings stay
  ``string`` (Glue does not parse dates out of JSON strings).
* **CSV**: delimiter among ``, | \\t ; \\x01``; needs at least two columns and two rows; the first
  row is a header when every cell of it is a string shorter than 150 characters and at least
  one data column is not a string, else the columns are ``col0, col1, ...``. Cells are
  ``bigint``, ``double``, ``boolean`` or ``string``, judged on the first 1,000 records.
* **Parquet**: the schema in the file footer.

Schemas of several files merge with :func:`merge_schemas`: ``int -> bigint -> double``, numbers
mixed with anything else become ``string``, struct fields are unioned. Behaviour documented in
``reference/aws-semantics.md`` section 2 (Glue crawler).

Example:
    >>> s = infer_file(b'{"a": 1, "b": {"c": "x"}}\\n{"a": 2.5}\\n', name="x.jsonl")
    >>> s.classification, [(c.name, c.type) for c in s.columns], s.records
    ('json', [('a', 'double'), ('b', 'struct<c:string>')], 2)
    >>> merge_types("int", "bigint"), merge_types("bigint", "string")
    ('bigint', 'string')
"""

from __future__ import annotations

import bz2
import contextlib
import csv
import gzip
import importlib
import io
import json
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from dataflow.catalog.hivetypes import (
    VOID,
    Array,
    Column,
    HiveType,
    Struct,
    finalize_type,
    merge,
    merge_schemas,
    merge_types,
    quote_name,
    render,
)
from dataflow.errors import ConfigError

FORMATS = ("auto", "json", "csv", "parquet")
"""Values of the ``fmt`` argument: ``auto`` detects the format from the content."""


CSV_DELIMITERS = ",|\t;\x01"
CSV_SAMPLE_RECORDS = 1000
CSV_MAX_HEADER_CELL = 150

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_CSV_INT = re.compile(r"[+-]?\d+")
_CSV_FLOAT = re.compile(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?")


@dataclass
class InferredSchema:
    """What one file looks like to the crawler.

    Attributes:
        classification: ``json``, ``csv`` or ``parquet`` (Glue's ``classification``).
        columns: in order of first appearance.
        records: rows (CSV without its header), objects (JSON) or rows (Parquet).
        compression: ``gzip``, ``bzip2`` or ``none``.
        delimiter: CSV only.
        has_header: CSV only.
    """

    classification: str
    columns: list[Column]
    records: int
    compression: str
    delimiter: str | None = None
    has_header: bool | None = None


# --- inference -----------------------------------------------------------------------------------


def infer_file(
    data: bytes, *, name: str, fmt: str = "auto", finalize: bool = True
) -> InferredSchema:
    """Infer the schema of one data file.

    Args:
        data: the whole object, possibly gzip- or bzip2-compressed.
        name: its key or path, for messages.
        fmt: ``auto`` (from the content: Parquet magic, then JSON, then CSV), ``json``,
            ``csv`` or ``parquet``.
        finalize: turn ``void`` (only nulls seen) into ``string``. The crawler passes False and
            finalizes after merging all files, so a later file can still give the type.

    Raises:
        ConfigError: an unknown ``fmt``, or a file that is not of the format asked (or of any
            known format with ``auto``): the message names the file and the reason.

    Example:
        >>> s = infer_file(b"day;close\\n2024-01-02;1.5\\n2024-01-03;2\\n", name="p.csv")
        >>> s.classification, s.delimiter, s.has_header, [(c.name, c.type) for c in s.columns]
        ('csv', ';', True, [('day', 'string'), ('close', 'double')])
    """
    if fmt not in FORMATS:
        raise ConfigError(f"format {fmt!r} is not known — use one of {', '.join(FORMATS)}")
    raw, compression = _decompress(data, name)
    if fmt == "parquet" or (fmt == "auto" and raw[:4] == b"PAR1"):
        schema = _infer_parquet(raw, name)
    else:
        text = raw.decode("utf-8-sig", errors="replace")
        schema = _infer_text(text, name, fmt)
    schema.compression = compression
    if finalize:
        schema.columns = [Column(c.name, finalize_type(c.type), c.comment) for c in schema.columns]
    return schema


def _decompress(data: bytes, name: str) -> tuple[bytes, str]:
    try:
        if data[:2] == b"\x1f\x8b":
            return gzip.decompress(data), "gzip"
        if data[:3] == b"BZh":
            return bz2.decompress(data), "bzip2"
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        raise ConfigError(f"{name}: compressed data is damaged ({exc})") from exc
    return data, "none"


class _NotThisFormat(Exception):
    """The content is not of the format tried; the message says why."""


def _infer_text(text: str, name: str, fmt: str) -> InferredSchema:
    reasons: list[str] = []
    tries = ["json", "csv"] if fmt == "auto" else [fmt]
    if fmt == "auto" and text.lstrip()[:1] not in ("{", "["):
        tries = ["csv"]
    for kind in tries:
        try:
            return _infer_json(text) if kind == "json" else _infer_csv(text)
        except _NotThisFormat as exc:
            reasons.append(f"not {kind}: {exc}")
    raise ConfigError(
        f"{name}: cannot be classified ({'; '.join(reasons)}) — check the file, or pass the "
        "format explicitly"
    )


def _json_type(value: Any) -> HiveType:
    if value is None:
        return VOID
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        if _INT32[0] <= value <= _INT32[1]:
            return "int"
        return "bigint" if _INT64[0] <= value <= _INT64[1] else "double"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        element: HiveType = VOID
        for item in value:
            element = merge(element, _json_type(item))
        return Array(element)
    if isinstance(value, dict):
        return Struct({str(key): _json_type(item) for key, item in value.items()})
    return "string"


def _json_records(text: str) -> list[dict[str, Any]]:
    try:
        document = json.loads(text)
    except ValueError:
        document = None
        records: list[dict[str, Any]] = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise _NotThisFormat(f"line {number}: {exc}") from None
            if not isinstance(record, dict):
                raise _NotThisFormat(f"line {number} is not a JSON object") from None
            records.append(record)
        if not records:
            raise _NotThisFormat("no JSON records") from None
        return records
    if isinstance(document, dict):
        return [document]
    if isinstance(document, list) and document and all(isinstance(r, dict) for r in document):
        return document
    raise _NotThisFormat("the document is neither an object nor an array of objects")


def _infer_json(text: str) -> InferredSchema:
    records = _json_records(text)
    columns: dict[str, HiveType] = {}
    names: dict[str, str] = {}
    for record in records:
        for key, value in record.items():
            lower = str(key).lower()
            kind = _json_type(value)
            if lower in columns:
                columns[lower] = merge(columns[lower], kind)
            else:
                columns[lower] = kind
                names[lower] = lower
    return InferredSchema(
        classification="json",
        columns=[Column(names[key], render(kind)) for key, kind in columns.items()],
        records=len(records),
        compression="none",
    )


def _csv_cell_type(cell: str) -> str:
    text = cell.strip()
    if not text:
        return VOID
    if text.lower() in ("true", "false"):
        return "boolean"
    if _CSV_INT.fullmatch(text):
        return "bigint" if _INT64[0] <= int(text) <= _INT64[1] else "double"
    if _CSV_FLOAT.fullmatch(text):
        return "double"
    return "string"


def _sniff_delimiter(lines: list[str]) -> str:
    sample = "\n".join(lines)
    candidates: list[str] = []
    with contextlib.suppress(csv.Error):
        candidates.append(csv.Sniffer().sniff(sample, delimiters=CSV_DELIMITERS).delimiter)
    candidates.extend(d for d in CSV_DELIMITERS if d not in candidates)
    best: tuple[int, str] | None = None
    for delimiter in candidates:
        widths = [len(row) for row in csv.reader(lines, delimiter=delimiter) if row]
        # A delimiter must split every sampled line into the same number (>= 2) of fields.
        if widths and min(widths) >= 2 and len(set(widths)) == 1:
            if delimiter == candidates[0]:
                return delimiter
            if best is None or widths[0] > best[0]:
                best = (widths[0], delimiter)
    if best is None:
        raise _NotThisFormat("no delimiter among , | tab ; \\x01 gives two or more columns")
    return best[1]


def _column_types(rows: Iterable[Sequence[str]], width: int) -> list[str]:
    types = [VOID] * width
    for row in rows:
        for index, cell in enumerate(row[:width]):
            kind = _csv_cell_type(cell)
            if kind != VOID and types[index] != kind:
                merged = merge(types[index], kind)
                assert isinstance(merged, str)
                types[index] = merged
    return types


def _infer_csv(text: str) -> InferredSchema:
    lines = [line for line in text.splitlines()[:50] if line.strip()]
    if len(lines) < 2:
        raise _NotThisFormat("fewer than two rows")
    delimiter = _sniff_delimiter(lines[:20])
    rows = [row for row in csv.reader(io.StringIO(text), delimiter=delimiter) if row]
    width = max(len(row) for row in rows[: CSV_SAMPLE_RECORDS + 1])
    first, body = rows[0], rows[1 : CSV_SAMPLE_RECORDS + 1]
    body_types = _column_types(body, width)
    has_header = _is_header(first, width) and any(t not in ("string", VOID) for t in body_types)
    if has_header:
        names = [cell.strip().lower() or f"col{i}" for i, cell in enumerate(first)]
        names += [f"col{i}" for i in range(len(names), width)]
        types = body_types
    else:
        names = [f"col{i}" for i in range(width)]
        types = [
            t if isinstance(t, str) else "string"
            for t in (
                merge(a, b) for a, b in zip(body_types, _column_types([first], width), strict=True)
            )
        ]
    return InferredSchema(
        classification="csv",
        columns=[Column(n, t) for n, t in zip(names, types, strict=True)],
        records=len(rows) - (1 if has_header else 0),
        compression="none",
        delimiter=delimiter,
        has_header=has_header,
    )


def _is_header(cells: Sequence[str], width: int) -> bool:
    # Glue: every header cell is a STRING shorter than 150 characters (the last may be empty),
    # and names are valid (here: non-empty and unique).
    if len(cells) != width:
        return False
    names = [cell.strip() for cell in cells]
    for index, name in enumerate(names):
        if not name and index == len(names) - 1:
            continue
        if not name or len(name) >= CSV_MAX_HEADER_CELL or _csv_cell_type(name) != "string":
            return False
    present = [name.lower() for name in names if name]
    return len(set(present)) == len(present)


def _pyarrow() -> tuple[Any, Any]:
    # pyarrow ships no type stubs; imported on first use only (it is heavy).
    return importlib.import_module("pyarrow"), importlib.import_module("pyarrow.parquet")


def _infer_parquet(raw: bytes, name: str) -> InferredSchema:
    pa, pq = _pyarrow()
    try:
        parquet = pq.ParquetFile(pa.BufferReader(raw))
    except (pa.ArrowException, OSError) as exc:
        raise ConfigError(f"{name}: is not a readable Parquet file ({exc})") from exc
    schema = parquet.schema_arrow
    return InferredSchema(
        classification="parquet",
        columns=[Column(field.name.lower(), _arrow_type(field.type)) for field in schema],
        records=parquet.metadata.num_rows,
        compression="none",
    )


def _arrow_type(kind: Any) -> str:
    pa, _ = _pyarrow()
    pt = pa.types
    simple = {
        pa.int8(): "tinyint",
        pa.int16(): "smallint",
        pa.int32(): "int",
        pa.int64(): "bigint",
        pa.uint8(): "smallint",
        pa.uint16(): "int",
        pa.uint32(): "bigint",
        pa.uint64(): "bigint",
        pa.float16(): "float",
        pa.float32(): "float",
        pa.float64(): "double",
        pa.bool_(): "boolean",
        pa.date32(): "date",
        pa.date64(): "date",
        pa.null(): VOID,
    }
    if kind in simple:
        return simple[kind]
    if pt.is_string(kind) or pt.is_large_string(kind) or pt.is_string_view(kind):
        return "string"
    if pt.is_binary(kind) or pt.is_large_binary(kind) or pt.is_fixed_size_binary(kind):
        return "binary"
    if pt.is_timestamp(kind):
        return "timestamp"
    if pt.is_decimal(kind):
        return f"decimal({kind.precision},{kind.scale})"
    if pt.is_list(kind) or pt.is_large_list(kind) or pt.is_fixed_size_list(kind):
        return f"array<{_arrow_type(kind.value_type)}>"
    if pt.is_map(kind):
        return f"map<{_arrow_type(kind.key_type)},{_arrow_type(kind.item_type)}>"
    if pt.is_struct(kind):
        fields = ",".join(
            f"{quote_name(kind.field(i).name)}:{_arrow_type(kind.field(i).type)}"
            for i in range(kind.num_fields)
        )
        return f"struct<{fields}>"
    if pt.is_dictionary(kind):
        return _arrow_type(kind.value_type)
    return "string"


__all__ = [
    "FORMATS",
    "VOID",
    "Column",
    "InferredSchema",
    "finalize_type",
    "infer_file",
    "merge_schemas",
    "merge_types",
]
