"""The relation ``raw``: the SQL view over a batch's bodies that explodes their record lists.

:func:`~dataflow.transform.flatten.flatten_files` describes each body of a batch of raw files
(one Arrow row per symbol: lineage, ``params``, ``meta``, ``_tz`` and where its record list sits
in the envelope text, :data:`BODIES_SCHEMA`). :func:`raw_relation` registers those rows with an
engine and defines ``raw`` (:data:`RAW_SCHEMA`) over them with :func:`raw_select_sql`, so the
engine — not Python — parses and splits the records; a model that declares its record fields
gets them typed, each list parsed once.

Example:
    >>> sorted(RAW_SCHEMA.names)[:4]
    ['_raw_key', '_raw_line', '_received_at', '_record_path']
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    from dataflow.engines.base import Engine
    from dataflow.transform.flatten import RawBatch

RAW_SCHEMA = pa.schema(
    [
        ("_raw_key", pa.string()),
        ("_raw_line", pa.int32()),
        ("_record_path", pa.string()),
        ("_run_id", pa.string()),
        ("_request_id", pa.string()),
        ("_received_at", pa.timestamp("us", tz="UTC")),
        ("endpoint", pa.string()),
        ("symbol", pa.string()),
        ("params", pa.string()),
        ("meta", pa.string()),
        ("record", pa.string()),
        ("_tz", pa.string()),
    ]
)
"""The relation ``raw`` every model reads. JSON columns are text (``record->>'open'``)."""

BODIES_SCHEMA = pa.schema(
    [
        ("_raw_key", pa.string()),
        ("_raw_line", pa.int32()),
        ("_prefix", pa.string()),
        ("_list", pa.string()),
        ("_path", pa.string()),
        ("_inline", pa.string()),
        ("_run_id", pa.string()),
        ("_request_id", pa.string()),
        ("_received_at", pa.timestamp("us", tz="UTC")),
        ("endpoint", pa.string()),
        ("_answer_symbol", pa.string()),
        ("_fallback_symbol", pa.string()),
        ("params", pa.string()),
        ("meta", pa.string()),
        ("_tz", pa.string()),
    ]
)
"""One row per body (symbol) of an envelope; :data:`RAW_VIEW_SQL` turns it into ``raw``.

``_list`` is the record list's name (``''`` for a bare list, NULL for a snapshot); the records
are the JSON array at ``_path`` in the envelope text ``_line``, or ``_inline`` (a JSON array
written here: snapshots, and lists under a key a JSON path cannot spell)."""

BODIES = "_df_bodies"
"""The name :func:`raw_relation` registers the bodies under."""


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def raw_select_sql(
    source: str = BODIES,
    *,
    record_fields: Sequence[str] = (),
    meta_fields: Sequence[str] = (),
) -> str:
    """The SELECT behind the view ``raw``: the record lists of the bodies in ``source`` exploded.

    Without ``record_fields`` each row's ``record`` is the record's JSON text, which a model
    parses again (``record ->> 'open'``). With them (a model's ``-- record:`` header) each
    record list is parsed ONCE into typed rows, and ``raw`` has instead ``rec``: a STRUCT of
    those fields as text (the value of ``record ->> 'field'``: NULL when absent or null, a
    number's or a nested value's JSON text otherwise); ``meta_fields`` (``-- meta:``) likewise
    adds ``meta_rec``, parsed once per body rather than once per record. The record's own
    ``symbol`` is found the same way in both forms.

    Example:
        >>> "rec" in raw_select_sql(record_fields=["open"])
        True
    """
    meta = ""
    if meta_fields:
        shape = json.dumps(dict.fromkeys(meta_fields, "VARCHAR")).replace("'", "''")
        meta = f", json_transform(meta, '{shape}') AS meta_rec"
    lists = "CAST(COALESCE(_inline, json_extract(_line, _path)) AS JSON)"
    if record_fields:
        # "symbol" is read as JSON, whatever the model declares, to apply the same rule.
        shape = json.dumps([{**dict.fromkeys(record_fields, "VARCHAR"), "symbol": "JSON"}]).replace(
            "'", "''"
        )
        explode = f"json_transform({lists}, '{shape}') AS _recs"
        own_symbol = (
            "CASE WHEN json_type(_r.symbol) = 'VARCHAR' AND (_r.symbol ->> '$') <> '' "
            "AND NOT contains(_r.symbol ->> '$', ',') THEN _r.symbol ->> '$' END"
        )
        packed = ", ".join(
            f"{_q(name)} := " + ("_r.symbol ->> '$'" if name == "symbol" else f"_r.{_q(name)}")
            for name in record_fields
        )
        record = f"struct_pack({packed}) AS rec"
    else:
        explode = f"json_extract({lists}, '$[*]') AS _recs"
        own_symbol = (
            "CASE WHEN contains(CAST(_r AS VARCHAR), '\"symbol\"') "
            "AND json_type(_r, '$.symbol') = 'VARCHAR' "
            "AND (_r ->> '$.symbol') <> '' AND NOT contains(_r ->> '$.symbol', ',') "
            "THEN _r ->> '$.symbol' END"
        )
        record = "CAST(_r AS VARCHAR) AS record"
    return f"""
WITH b AS (
    SELECT * EXCLUDE (_line, _path, _inline), {explode}{meta}
    FROM {source}
),
u AS (
    SELECT * EXCLUDE (_recs), unnest(_recs) AS _r, generate_subscripts(_recs, 1) - 1 AS _i
    FROM b
)
SELECT
    _raw_key,
    _raw_line,
    _prefix || CASE WHEN _list IS NULL THEN '' ELSE _list || '[' || _i || ']' END AS _record_path,
    _run_id,
    _request_id,
    _received_at,
    endpoint,
    COALESCE(_answer_symbol, {own_symbol}, _fallback_symbol) AS symbol,
    params,
    meta,
    {record},
    _tz{", meta_rec" if meta_fields else ""}
FROM u
"""


RAW_VIEW_SQL = "CREATE OR REPLACE TEMP VIEW raw AS " + raw_select_sql()
"""The view ``raw`` (columns of :data:`RAW_SCHEMA`) over the bodies of one batch.

A record's own ``symbol`` wins over the body's (catalogues list many symbols), except in a
multi-symbol answer, where the answer's key names the symbol."""


@contextmanager
def raw_relation(
    engine: Engine,
    batch: RawBatch,
    *,
    record_fields: Sequence[str] = (),
    meta_fields: Sequence[str] = (),
) -> Iterator[None]:
    """Make ``raw`` queryable on ``engine`` for a ``with`` block (see :func:`raw_select_sql`).

    The bodies stay registered as :data:`BODIES` meanwhile (the quarantine reads the records
    of rejected rows from them).

    Example:
        >>> with raw_relation(engine, batch):  # doctest: +SKIP
        ...     rows = engine.sql(model.sql)
    """
    engine.register(BODIES, batch.bodies)
    try:
        select = raw_select_sql(record_fields=record_fields, meta_fields=meta_fields)
        engine.sql("CREATE OR REPLACE TEMP VIEW raw AS " + select)
        yield
    finally:
        engine.sql("DROP VIEW IF EXISTS raw")
        engine.unregister(BODIES)


__all__ = [
    "BODIES",
    "BODIES_SCHEMA",
    "RAW_SCHEMA",
    "RAW_VIEW_SQL",
    "raw_relation",
    "raw_select_sql",
]
