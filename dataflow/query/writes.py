"""CTAS and UNLOAD, the two statements of the query stage that write — as Athena has them.

* ``CREATE TABLE db.t WITH (format = 'PARQUET', partitioned_by = ARRAY['c']) AS SELECT ...``
  creates an Iceberg table in the catalog through pyiceberg (schema from the result's Arrow
  schema, a partition spec from ``partitioned_by``) and appends the rows as its first snapshot.
  ``table_type`` may be ``ICEBERG`` (Hive tables are not made here); ``format`` ``PARQUET``.
* ``UNLOAD (SELECT ...) TO 'exports/x/' WITH (format = 'PARQUET' | 'JSON' | 'TEXTFILE',
  compression = ..., field_delimiter = ..., partitioned_by = ARRAY[...])`` writes files under a
  folder *of the warehouse* that must be empty (Athena's rule), through the object store.
  JSON is one object per line; TEXTFILE uses Hive's default delimiter ``\\x01`` unless
  ``field_delimiter`` is given [R: Hive LazySimpleSerDe]; the default compression is gzip.

Anything else that writes stays refused by :func:`dataflow.query.session.check_statement`.

Example:
    >>> parse_write("UNLOAD (SELECT 1 AS x) TO 'exports/one/' WITH (format = 'JSON')").kind
    'UNLOAD'
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dataflow.query.errors import QueryError, position

if TYPE_CHECKING:
    import pyarrow as pa

    from dataflow.config import Settings
    from dataflow.storage.objectstore import ObjectStore

_CTAS = re.compile(
    r"^\s*CREATE\s+TABLE\s+(?P<name>(?:\"[^\"]+\"|\w+)(?:\s*\.\s*(?:\"[^\"]+\"|\w+))*)\s*",
    re.IGNORECASE,
)
_UNLOAD = re.compile(r"^\s*UNLOAD\s*\(", re.IGNORECASE)
_PROPERTY = re.compile(
    r"\s*(\w+)\s*=\s*('(?:[^']|'')*'|ARRAY\s*\[[^\]]*\]|[\w.+-]+)\s*(?:,|$)", re.IGNORECASE
)
FORMATS = ("PARQUET", "JSON", "TEXTFILE")
"""The formats UNLOAD writes here."""


@dataclass(frozen=True)
class WriteStatement:
    """A parsed CTAS or UNLOAD: its kind, target, properties and inner SELECT."""

    kind: str  # "CREATE_TABLE_AS_SELECT" or "UNLOAD"
    select: str
    target: str
    properties: dict[str, Any] = field(default_factory=dict)


def parse_write(sql: str) -> WriteStatement | None:
    """The CTAS or UNLOAD in ``sql``; None for any other statement.

    Raises:
        QueryError: ``SYNTAX_ERROR`` for a CTAS/UNLOAD that is not well formed.

    Example:
        >>> w = parse_write("CREATE TABLE m.t WITH (partitioned_by = ARRAY['s']) AS SELECT 1 AS s")
        >>> w.target, w.properties, w.select
        ('m.t', {'partitioned_by': ['s']}, 'SELECT 1 AS s')
    """
    text = sql.strip().rstrip(";").strip()
    ctas = _CTAS.match(text)
    if ctas:
        rest = text[ctas.end() :]
        properties: dict[str, Any] = {}
        if rest[:4].upper() == "WITH":
            body, end = _parenthesized(text, ctas.end() + rest.index("("))
            properties = _properties(body, text)
            rest = text[end:].lstrip()
        if rest[:2].upper() != "AS" or not rest[2:3].isspace():
            line, column = position(text, len(text) - len(rest))
            raise QueryError("SYNTAX_ERROR", "expected AS SELECT ...", line=line, column=column)
        name = ".".join(part.strip().strip('"') for part in ctas.group("name").split("."))
        return WriteStatement("CREATE_TABLE_AS_SELECT", rest[2:].strip(), name, properties)
    if _UNLOAD.match(text):
        select, end = _parenthesized(text, text.index("("))
        rest = text[end:].lstrip()
        match = re.match(r"TO\s+'((?:[^']|'')*)'\s*", rest, re.IGNORECASE)
        if match is None:
            line, column = position(text, len(text) - len(rest))
            raise QueryError("SYNTAX_ERROR", "expected TO 'location'", line=line, column=column)
        rest = rest[match.end() :]
        properties = {}
        if rest[:4].upper() == "WITH":
            offset = len(text) - len(rest)
            body, _ = _parenthesized(text, offset + rest.index("("))
            properties = _properties(body, text)
        return WriteStatement(
            "UNLOAD", select.strip(), match.group(1).replace("''", "'"), properties
        )
    return None


def _parenthesized(text: str, start: int) -> tuple[str, int]:
    """The text inside the parenthesis opening at ``start`` and the offset after it closes."""
    depth, index, quote = 0, start, ""
    while index < len(text):
        char = text[index]
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return text[start + 1 : index], index + 1
        index += 1
    line, column = position(text, start)
    raise QueryError("SYNTAX_ERROR", "unbalanced parenthesis", line=line, column=column)


def _properties(body: str, text: str) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    rest = body.strip()
    while rest:
        match = _PROPERTY.match(rest)
        if match is None:
            line, column = position(text, text.find(rest))
            raise QueryError(
                "SYNTAX_ERROR", f"bad table property near {rest[:30]!r}", line=line, column=column
            )
        key, raw = match.group(1).lower(), match.group(2).strip()
        if raw.upper().startswith("ARRAY"):
            items = re.findall(r"'((?:[^']|'')*)'", raw)
            properties[key] = [item.replace("''", "'") for item in items]
        elif raw.startswith("'"):
            properties[key] = raw[1:-1].replace("''", "'")
        else:
            properties[key] = raw
        rest = rest[match.end() :].strip()
    return properties


# --- CTAS ----------------------------------------------------------------------------------------


RAW_DATABASE = "raw"
"""The crawler's database (external tables over the raw zone): no query creates a table there."""


def ctas_target(statement: WriteStatement, default_database: str) -> tuple[str, str]:
    """``(database, table)`` a CTAS creates, checked before its SELECT runs.

    Raises:
        QueryError: ``SYNTAX_ERROR`` for a bad name, ``PERMISSION_DENIED`` in ``raw``.

    Example:
        >>> ctas_target(parse_write("CREATE TABLE t AS SELECT 1"), "market")
        ('market', 't')
        >>> raw = parse_write("CREATE TABLE raw.t AS SELECT 1")
        >>> ctas_target(raw, "market")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        dataflow.errors.QueryError: PERMISSION_DENIED: line 1:1: Cannot create table 'raw.t': ...
    """
    parts = statement.target.lower().split(".")
    database, name = ([default_database, *parts])[-2:]
    if len(parts) > 3 or (len(parts) == 3 and parts[0] != "awsdatacatalog"):
        raise QueryError("SYNTAX_ERROR", f"table name {statement.target!r}: write db.table")
    if database == RAW_DATABASE:
        raise QueryError(
            "PERMISSION_DENIED",
            f"Cannot create table '{RAW_DATABASE}.{name}': the {RAW_DATABASE} database holds the "
            "crawler's tables over the raw zone — create it in another database "
            f"(e.g. {default_database}.{name})",
        )
    return database, name


def create_table_as(
    settings: Settings, statement: WriteStatement, rows: pa.Table, *, default_database: str
) -> list[str]:
    """Create the CTAS table from ``rows`` and append them; return the data files written.

    Raises:
        QueryError: ``TABLE_ALREADY_EXISTS``, or ``NOT_SUPPORTED`` properties.
    """
    from dataflow.catalog.iceberg import create_table, load_table, open_catalog

    props = statement.properties
    unknown = set(props) - {"format", "table_type", "partitioned_by", "write_compression"}
    if unknown:
        raise QueryError("NOT_SUPPORTED", f"CTAS properties not supported: {sorted(unknown)}")
    if str(props.get("format", "PARQUET")).upper() != "PARQUET":
        raise QueryError("NOT_SUPPORTED", "CTAS writes Iceberg tables: format must be 'PARQUET'")
    if str(props.get("table_type", "ICEBERG")).upper() != "ICEBERG":
        raise QueryError("NOT_SUPPORTED", "CTAS makes Iceberg tables here: table_type='ICEBERG'")
    database, name = ctas_target(statement, default_database)
    partitioned = list(props.get("partitioned_by") or [])
    missing = [c for c in partitioned if c not in rows.column_names]
    if missing:
        raise QueryError("COLUMN_NOT_FOUND", f"Column '{missing[0]}' cannot be resolved")
    catalog = open_catalog(settings)
    if load_table(catalog, database, name) is not None:
        raise QueryError(
            "TABLE_ALREADY_EXISTS", f"Table 'awsdatacatalog.{database}.{name}' already exists"
        )
    rows = _plain_types(rows)
    table = create_table(
        catalog, database, name, rows.schema, partition=", ".join(partitioned) or None
    )
    if rows.num_rows:
        table.append(rows)
        table = catalog.load_table((database, name))
    return [task.file.file_path for task in table.scan().plan_files()]


def _plain_types(rows: pa.Table) -> pa.Table:
    """Arrow types pyiceberg takes: string views and large types as their plain kinds."""
    import pyarrow as pa

    fields = []
    for item in rows.schema:
        kind = item.type
        if kind in (pa.string_view(), pa.large_string()):
            kind = pa.string()
        elif kind in (pa.binary_view(), pa.large_binary()):
            kind = pa.binary()
        fields.append(pa.field(item.name, kind))
    return rows.cast(pa.schema(fields))


# --- UNLOAD --------------------------------------------------------------------------------------


def unload(
    settings: Settings, store: ObjectStore, statement: WriteStatement, rows: pa.Table, query_id: str
) -> list[str]:
    """Write ``rows`` under the UNLOAD destination; return the keys of the files written.

    Raises:
        QueryError: ``NOT_SUPPORTED`` options, a destination outside the warehouse, or one
            that is not empty.
    """
    import pyarrow.compute as pc

    props = statement.properties
    unknown = set(props) - {"format", "compression", "field_delimiter", "partitioned_by"}
    if unknown:
        raise QueryError("NOT_SUPPORTED", f"UNLOAD properties not supported: {sorted(unknown)}")
    fmt = str(props.get("format", "PARQUET")).upper()
    if fmt not in FORMATS:
        raise QueryError("NOT_SUPPORTED", f"UNLOAD format {fmt!r}: use one of {', '.join(FORMATS)}")
    compression = str(props.get("compression", "gzip")).lower()
    prefix = destination_key(settings, statement.target)
    if store.list(prefix + "/"):
        raise QueryError(
            "HIVE_PATH_ALREADY_EXISTS",
            f"Target directory for UNLOAD {statement.target!r} is not empty — remove its files "
            "or choose another location",
        )
    partitioned = list(props.get("partitioned_by") or [])
    missing = [c for c in partitioned if c not in rows.column_names]
    if missing:
        raise QueryError("COLUMN_NOT_FOUND", f"Column '{missing[0]}' cannot be resolved")
    groups: list[tuple[str, pa.Table]] = [("", rows)]
    if partitioned:
        keys = rows.select(partitioned).group_by(partitioned).aggregate([]).to_pylist()
        groups = []
        for values in keys:
            mask = None
            for column in partitioned:
                value = values[column]
                test = pc.is_null(rows[column]) if value is None else pc.equal(rows[column], value)
                mask = test if mask is None else pc.and_(mask, test)
            folder = "/".join(
                f"{c}={'__HIVE_DEFAULT_PARTITION__' if values[c] is None else values[c]}"
                for c in partitioned
            )
            groups.append((folder + "/", rows.filter(mask).drop_columns(partitioned)))
    written = []
    for index, (folder, part) in enumerate(groups):
        data, suffix = _encode(part, fmt, compression, props.get("field_delimiter"))
        key = f"{prefix}/{folder}{query_id}_{index:05d}{suffix}"
        store.put_bytes(key, data)
        written.append(key)
    return written


def destination_key(settings: Settings, location: str) -> str:
    """The warehouse-relative key prefix of an UNLOAD destination, or a QueryError.

    Accepts a key relative to the warehouse (``exports/x/``) or a path / URI inside it.

    Example:
        >>> from dataflow.config import load_settings
        >>> destination_key(load_settings("/p", overrides={"warehouse": "/wh"}, env={}),
        ...                 "file:///wh/exports/x/")
        'exports/x'
    """
    from dataflow.errors import StorageError
    from dataflow.storage.objectstore import check_key

    root = settings.warehouse_uri.rstrip("/")
    text = location.strip().removeprefix("file://")
    if "://" in text or text.startswith("/"):
        if not (text == root or text.startswith(root + "/")):
            raise QueryError(
                "PERMISSION_DENIED",
                f"UNLOAD writes inside the warehouse only ({root}); {location!r} is outside it",
            )
        text = text[len(root) :]
    key = text.strip("/")
    try:
        check_key(key)
    except StorageError as exc:
        raise QueryError("PERMISSION_DENIED", f"UNLOAD location {location!r}: {exc}") from exc
    if key.split("/")[0] in ("iceberg", "raw", "results") or key.endswith(".db"):
        raise QueryError(
            "PERMISSION_DENIED",
            f"UNLOAD location {location!r} is inside a managed area (iceberg/, raw/, results/)",
        )
    return key


def _encode(rows: pa.Table, fmt: str, compression: str, delimiter: Any) -> tuple[bytes, str]:
    import gzip
    import json

    import pyarrow.parquet as pq

    from dataflow.query.output import athena_value
    from dataflow.query.result import json_value

    if fmt == "PARQUET":
        out = io.BytesIO()
        codec = "none" if compression in ("none", "uncompressed") else compression
        pq.write_table(_plain_types(rows), out, compression=codec)
        return out.getvalue(), f".{codec}.parquet" if codec != "none" else ".parquet"
    records = rows.to_pylist()
    if fmt == "JSON":
        text = "".join(
            json.dumps({k: json_value(v) for k, v in r.items()}, separators=(",", ":")) + "\n"
            for r in records
        )
    else:
        sep = "\x01" if delimiter is None else str(delimiter)
        text = "".join(
            sep.join("\\N" if (s := athena_value(v)) is None else s for v in r.values()) + "\n"
            for r in records
        )
    data = text.encode("utf-8")
    if compression == "gzip":
        return gzip.compress(data), ".gz"
    if compression in ("none", "uncompressed"):
        return data, ""
    raise QueryError("NOT_SUPPORTED", f"compression {compression!r} for {fmt}: use gzip or none")


__all__ = [
    "FORMATS",
    "RAW_DATABASE",
    "WriteStatement",
    "create_table_as",
    "ctas_target",
    "destination_key",
    "parse_write",
    "unload",
]
