"""Result files as Athena writes them: ``results/<query_id>.csv`` plus ``.csv.metadata``.

A query's statement type decides the file, as in Athena: DML (SELECT, UNLOAD) writes
``<query_id>.csv``; DDL (CTAS) and UTILITY statements (SHOW, DESCRIBE, EXPLAIN, ...) write
``<query_id>.txt`` — no header row, fields separated by tabs (see :func:`txt_text`).

Athena's CSV conventions (observed in real result files): a header row, every field
double-quoted — header included — with quotes doubled inside; NULL is an empty, *unquoted*
field (so it differs from the empty string ``""``); ``\\n`` line ends. Values are printed the way
Athena prints them: timestamps ``2024-05-01 13:30:00.000`` (with `` UTC`` for timestamps with a
time zone), booleans ``true``/``false``, arrays and rows as compact JSON.

The metadata object is JSON (Athena's is a binary encoding of the same information): the
columns with Athena's type names, as ``GetQueryResults``' ``ColumnInfo``.

Example:
    >>> from dataflow.query.result import QueryResult
    >>> csv_text(QueryResult(columns=["s", "n"], types=["VARCHAR", "INTEGER"], rows=[("a", None)]))
    '"s","n"\\n"a",\\n'
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import re
from typing import TYPE_CHECKING, Any

from dataflow.query.result import QueryResult, csv_value

if TYPE_CHECKING:
    from dataflow.query.history import QueryExecution
    from dataflow.storage.objectstore import ObjectStore

TEXT_STATEMENT_TYPES = frozenset({"DDL", "UTILITY"})
"""Statement types whose results are ``<query_id>.txt`` (Athena); the rest write ``.csv``."""

_SIMPLE_TYPES = {
    "VARCHAR": "varchar",
    "BOOLEAN": "boolean",
    "TINYINT": "tinyint",
    "SMALLINT": "smallint",
    "INTEGER": "integer",
    "BIGINT": "bigint",
    "HUGEINT": "decimal",
    "UTINYINT": "smallint",
    "USMALLINT": "integer",
    "UINTEGER": "bigint",
    "UBIGINT": "decimal",
    "FLOAT": "real",
    "DOUBLE": "double",
    "DATE": "date",
    "TIME": "time",
    "TIMESTAMP": "timestamp",
    "TIMESTAMP_S": "timestamp",
    "TIMESTAMP_MS": "timestamp",
    "TIMESTAMP_NS": "timestamp",
    "TIMESTAMP WITH TIME ZONE": "timestamp with time zone",
    "INTERVAL": "interval day to second",
    "BLOB": "varbinary",
    "UUID": "varchar",
    "JSON": "json",
}
_DECIMAL = re.compile(r"DECIMAL\((\d+),\s*(\d+)\)")


def athena_type(duckdb_type: str) -> str:
    """Athena's name for a DuckDB type (``ColumnInfo.Type``).

    Example:
        >>> athena_type("DECIMAL(10,2)"), athena_type("VARCHAR[]"), athena_type("STRUCT(a INTEGER)")
        ('decimal', 'array', 'row')
    """
    kind = duckdb_type.strip().upper()
    if kind.endswith("]"):
        return "array"
    if kind.startswith("STRUCT"):
        return "row"
    if kind.startswith("MAP"):
        return "map"
    if kind.startswith("DECIMAL"):
        return "decimal"
    return _SIMPLE_TYPES.get(kind, "varchar")


def column_info(result: QueryResult) -> list[dict[str, Any]]:
    """``ColumnInfo`` of each result column: name, label, Athena type, precision, scale."""
    info = []
    for name, kind in zip(result.columns, result.types, strict=True):
        decimal = _DECIMAL.match(kind.upper())
        info.append(
            {
                "CatalogName": "hive",
                "Name": name,
                "Label": name,
                "Type": athena_type(kind),
                "Precision": int(decimal.group(1)) if decimal else 0,
                "Scale": int(decimal.group(2)) if decimal else 0,
                "Nullable": "UNKNOWN",
                "CaseSensitive": athena_type(kind) == "varchar",
            }
        )
    return info


def athena_value(value: Any) -> str | None:
    """One value as Athena prints it in a result file; None for NULL.

    Example:
        >>> athena_value(dt.datetime(2024, 5, 1, 13, 30, tzinfo=dt.UTC))
        '2024-05-01 13:30:00.000 UTC'
    """
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        text = value.astimezone(dt.UTC) if value.tzinfo else value
        shown = text.strftime("%Y-%m-%d %H:%M:%S.") + f"{text.microsecond // 1000:03d}"
        return shown + " UTC" if value.tzinfo else shown
    return str(csv_value(value))


def csv_text(result: QueryResult) -> str:
    """The result as Athena's CSV: every field quoted, NULL an empty unquoted field.

    Formatted a column at a time, the formatter chosen once per column by its DuckDB type
    (strings, integers, doubles, booleans and timestamps need no per-value type tests), so a
    dashboard-sized result costs well under a microsecond per cell.

    Example:
        >>> csv_text(QueryResult(columns=["n"], types=["BIGINT"], rows=[(1,), (None,)]))
        '"n"\\n"1"\\n\\n'
    """
    header = ",".join(_quote(name) for name in result.columns) + "\n"
    if not result.rows:
        return header
    columns = [
        _format_column(kind, values)
        for kind, values in zip(result.types, zip(*result.rows, strict=True), strict=True)
    ]
    return header + "".join(",".join(fields) + "\n" for fields in zip(*columns, strict=True))


_INTEGERS = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT"}
_INTEGERS |= {"U" + kind for kind in _INTEGERS}


def _format_column(duckdb_type: str, values: tuple[Any, ...]) -> list[str]:
    """One column's CSV fields, quoted (``""`` for NULL); the same text as :func:`athena_value`."""
    kind = duckdb_type.strip().upper()
    if kind == "VARCHAR":
        return ["" if v is None else '"' + v.replace('"', '""') + '"' for v in values]
    if kind in _INTEGERS:
        return ["" if v is None else f'"{v}"' for v in values]
    if kind in ("DOUBLE", "FLOAT"):
        return ["" if v is None else f'"{v!r}"' for v in values]
    if kind == "BOOLEAN":
        return ["" if v is None else '"true"' if v else '"false"' for v in values]
    if kind in ("TIMESTAMP WITH TIME ZONE", "TIMESTAMP"):
        return [_timestamp_field(v) for v in values]
    return ["" if v is None else _quote(str(athena_value(v))) for v in values]


def _timestamp_field(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, dt.datetime) or value.year < 1000:
        return _quote(str(athena_value(value)))  # strftime's %Y does not pad: keep its text
    text = value.isoformat(" ", "milliseconds")  # truncates, as athena_value does
    if value.tzinfo is None:
        return f'"{text}"'
    if text.endswith("+00:00"):
        return f'"{text[:-6]} UTC"'
    return _quote(str(athena_value(value)))


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def result_suffix(statement_type: str | None) -> str:
    """``txt`` for DDL and UTILITY statements, ``csv`` for the rest (DML), as Athena names them.

    Example:
        >>> result_suffix("DML"), result_suffix("UTILITY"), result_suffix("DDL")
        ('csv', 'txt', 'txt')
    """
    return "txt" if (statement_type or "").upper() in TEXT_STATEMENT_TYPES else "csv"


def result_key(prefix: str, query_id: str, statement_type: str | None = "DML") -> str:
    """The object key of a query's result file.

    Example:
        >>> result_key("results", "abc"), result_key("results/", "abc", "UTILITY")
        ('results/abc.csv', 'results/abc.txt')
    """
    return f"{prefix.strip('/')}/{query_id}.{result_suffix(statement_type)}"


def stored_result_key(prefix: str, execution: QueryExecution) -> str:
    """The key of the result file an execution wrote.

    Its ``OutputLocation`` says which file that is (``.csv`` or ``.txt``): an execution recorded
    before DDL results were written as text keeps its ``.csv``. Without a location the
    statement type decides.

    Example:
        >>> from dataflow.query.history import QueryExecution
        >>> done = QueryExecution.new("SHOW TABLES", dialect="duckdb", workgroup="primary")
        >>> done.statement_type = "UTILITY"
        >>> stored_result_key("results", done).rsplit(".", 1)[1]
        'txt'
        >>> done.output_location = f"/w/results/{done.query_id}.csv"  # written before .txt
        >>> stored_result_key("results", done).rsplit(".", 1)[1]
        'csv'
    """
    location = execution.output_location or ""
    for suffix in ("txt", "csv"):
        if location.endswith(f"{execution.query_id}.{suffix}"):
            return f"{prefix.strip('/')}/{execution.query_id}.{suffix}"
    return result_key(prefix, execution.query_id, execution.statement_type)


def txt_text(result: QueryResult) -> str:
    """The result as a DDL/UTILITY ``.txt`` file: no header, tab-separated fields, ``\\n`` ends.

    Values print as in the CSV; NULL is ``\\N`` and a backslash, tab or line end inside a value
    is escaped (``\\\\``, ``\\t``, ``\\n``, Hive's text conventions), so a multi-line
    ``EXPLAIN`` plan stays one row per line and reads back unchanged.

    Example:
        >>> txt_text(QueryResult(columns=["k", "v"], types=["VARCHAR", "VARCHAR"],
        ...                      rows=[("a", None), ("b", "x\\ty")]))
        'a\\t\\\\N\\nb\\tx\\\\ty\\n'
    """
    return "".join(
        "\t".join(_txt_field(athena_value(value)) for value in row) + "\n" for row in result.rows
    )


def _txt_field(text: str | None) -> str:
    if text is None:
        return "\\N"
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


_TXT_ESCAPES = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}


def _txt_value(field_text: str) -> str | None:
    if field_text == "\\N":
        return None
    return re.sub(r"\\(.)", lambda m: _TXT_ESCAPES.get(m.group(1), m.group(0)), field_text)


def write_results(
    store: ObjectStore,
    prefix: str,
    query_id: str,
    result: QueryResult,
    *,
    statement_type: str | None = "DML",
) -> str:
    """Write a query's result file and its ``.metadata``; return the file's key.

    DML results are ``<prefix>/<query_id>.csv`` (Athena's CSV), DDL and UTILITY results
    ``<prefix>/<query_id>.txt`` (:func:`txt_text`).

    Example:
        >>> write_results(store, "results", "q1", result, statement_type="DDL")  # doctest: +SKIP
        'results/q1.txt'
    """
    key = result_key(prefix, query_id, statement_type)
    metadata = {"ColumnInfo": column_info(result), "RowCount": result.row_count}
    body = txt_text(result) if key.endswith(".txt") else csv_text(result)
    store.put_bytes(key + ".metadata", json.dumps(metadata, indent=2).encode(), overwrite=True)
    store.put_bytes(key, body.encode("utf-8"), overwrite=True)
    return key


def write_manifest(store: ObjectStore, prefix: str, query_id: str, paths: list[str]) -> str:
    """Athena's ``<query_id>-manifest.csv`` of a CTAS or UNLOAD: the files written, one a line."""
    key = f"{prefix.strip('/')}/{query_id}-manifest.csv"
    store.put_bytes(key, "".join(f"{path}\n" for path in paths).encode(), overwrite=True)
    return key


def read_results(
    store: ObjectStore, key: str
) -> tuple[list[dict[str, Any]], list[list[str | None]]]:
    """The column infos and rows (text, None for NULL) of a result file written here.

    Reads both kinds: Athena's CSV (``.csv``) and the DDL/UTILITY text file (``.txt``).
    """
    metadata = json.loads(store.get_bytes(key + ".metadata"))
    text = store.get_bytes(key).decode("utf-8")
    if key.endswith(".txt"):
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        return list(metadata["ColumnInfo"]), [
            [_txt_value(part) for part in line.split("\t")] for line in lines
        ]
    lines = text.split("\n")
    rows: list[list[str | None]] = []
    # csv cannot tell "" from an unquoted empty field: read the raw fields for NULLs.
    for record in csv.reader(io.StringIO(text), strict=True):
        rows.append(list(record))
    raw = _raw_fields(lines)
    body = rows[1:]
    for row, fields in zip(body, raw[1:], strict=False):
        for index, field_text in enumerate(fields):
            if field_text == "" and index < len(row):
                row[index] = None
    return list(metadata["ColumnInfo"]), list(body)


def result_csv(store: ObjectStore, key: str) -> bytes:
    """A stored result as Athena's CSV (header row, every field quoted, NULL empty).

    A ``.csv`` result is returned as stored; a DDL/UTILITY ``.txt`` result is converted, so
    a CSV download has the same shape whatever the statement was.

    Example:
        >>> result_csv(store, "results/q1.txt")  # doctest: +SKIP
        b'"name"\\n"quotes"\\n'
    """
    if not key.endswith(".txt"):
        return store.get_bytes(key)
    infos, rows = read_results(store, key)
    lines = [",".join(_quote(str(info["Name"])) for info in infos)]
    lines += [",".join("" if v is None else _quote(v) for v in row) for row in rows]
    return ("\n".join(lines) + "\n").encode("utf-8")


def _raw_fields(lines: list[str]) -> list[list[str]]:
    """Each record's fields as written (quotes kept), for rows without embedded newlines."""
    records: list[list[str]] = []
    pending = ""
    for line in lines:
        pending = f"{pending}\n{line}" if pending else line
        if pending.count('"') % 2:
            continue  # a quoted field goes on over the line end
        if pending:
            records.append(re.findall(r'(?:^|(?<=,))("(?:[^"]|"")*"|[^,]*)', pending))
        pending = ""
    return records


def typed_rows(infos: list[dict[str, Any]], rows: list[list[str | None]]) -> list[dict[str, Any]]:
    """Rows of a result file as JSON objects, numbers and booleans typed by ``ColumnInfo``."""
    out = []
    for row in rows:
        item: dict[str, Any] = {}
        for info, value in zip(infos, row, strict=False):
            item[info["Name"]] = _typed(info["Type"], value)
        out.append(item)
    return out


def _typed(kind: str, value: str | None) -> Any:
    if value is None:
        return None
    try:
        if kind in ("tinyint", "smallint", "integer", "bigint"):
            return int(value)
        if kind in ("real", "double", "decimal"):
            number = float(value)
            return number if math.isfinite(number) else None
        if kind == "boolean":
            return value == "true"
        if kind in ("array", "row", "map", "json"):
            return json.loads(value)
    except ValueError:
        return value
    return value


__all__ = [
    "TEXT_STATEMENT_TYPES",
    "athena_type",
    "athena_value",
    "column_info",
    "csv_text",
    "read_results",
    "result_csv",
    "result_key",
    "result_suffix",
    "stored_result_key",
    "txt_text",
    "typed_rows",
    "write_manifest",
    "write_results",
]
