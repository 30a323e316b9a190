"""Raw envelopes -> the relation ``raw``, in bounded batches of whole files.

Shapes are normalised here, types are not: SQL models do the typing. Each *record* of a payload
becomes one row of ``raw`` whose ``record`` column is the record's JSON text, next to its ``meta``
and the request ``params`` (JSON text too, keys sorted). A record is an entry of ``values``
(series, indicators), ``data`` (catalogues), ``earnings``/``dividends``/``splits``, an element of
a bare list, or the whole body of a snapshot (``quote``, ``price``, ``eod``, ``exchange_rate`` …).
Multi-symbol answers (``{"AAPL": {...}, "MSFT": {...}}``) are split per symbol, and each
symbol's error object is counted and skipped.

The work is split so that nothing runs per record in Python. :func:`flatten_files` gunzips each
file and parses each envelope line once (``json.loads``) to classify it and describe its
*bodies* (one per symbol): lineage, ``params``, ``meta``, ``_tz`` and where the body's record list
sits in the envelope text (a JSON path). The result, :class:`RawBatch`, is one Arrow row per
body holding that path and the envelope line itself. :func:`raw_relation` registers it with an
engine and defines ``raw`` as a view (:data:`RAW_VIEW_SQL`) that explodes the record lists in
SQL (``json_extract(..., '$[*]')`` + ``unnest``), so the engine parses and splits the records.
A model that declares its record and meta fields gets them typed instead, each list parsed once
(``json_transform``; see :func:`raw_select_sql`).

Error envelopes (HTTP status ≥ 400 or an error body), non-JSON payloads and empty answers give no
rows; they are counted in :class:`FlattenStats` for the run's metrics.

The ``_tz`` column is the zone of the payload's naive ``datetime`` values: ``UTC`` when the
request asked ``timezone=UTC`` (what our ingest always does) or for forex/crypto, else the
request's IANA zone, else ``meta.exchange_timezone`` (imported real responses). ``None`` means an
unknown zone name; models quarantine such rows.

Example:
    >>> sorted(RAW_SCHEMA.names)[:4]
    ['_raw_key', '_raw_line', '_received_at', '_record_path']
"""

from __future__ import annotations

import gzip
import json
import zlib
import zoneinfo
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from dataflow.errors import StorageError
from dataflow.storage.raw import parse_time
from dataflow.storage.replay import is_error_body, multi_symbol_keys

if TYPE_CHECKING:
    from dataflow.engines.base import Engine
    from dataflow.storage import ObjectStore, RawFileInfo

RECORD_LISTS = ("values", "data", "earnings", "dividends", "splits")
"""Keys of a body whose list holds the records (checked in this order)."""
UTC_TYPES = frozenset({"Physical Currency", "Digital Currency"})
"""Instrument types whose datetimes the API gives in UTC by default."""
READ_THREADS = 4
"""Files fetched and gunzipped at once (zlib releases the GIL)."""
SKELETON_MIN_BYTES = 16_384
"""Envelope lines from this size are parsed without their record list (see :func:`_parse`)."""

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


@dataclass
class FlattenStats:
    """Counters of one batch (added up per table and run)."""

    files: int = 0
    bytes: int = 0
    envelopes: int = 0
    records: int = 0
    error_envelopes: int = 0
    symbol_errors: int = 0
    non_json: int = 0
    empty: int = 0

    def add(self, other: FlattenStats) -> None:
        """Add ``other``'s counts to these."""
        for name, value in other.__dict__.items():
            setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, int]:
        """Plain data."""
        return dict(self.__dict__)


@dataclass
class RawBatch:
    """The bodies of one batch of raw files (see :data:`BODIES_SCHEMA`), ready for SQL."""

    bodies: pa.Table
    stats: FlattenStats = field(default_factory=FlattenStats)

    @property
    def records(self) -> int:
        """Rows ``raw`` holds."""
        return self.stats.records


def plan_batches(
    files: Sequence[RawFileInfo], *, max_files: int, max_bytes: int
) -> list[list[RawFileInfo]]:
    """Split files into batches of at most ``max_files`` files and about ``max_bytes`` bytes.

    A batch always holds at least one file (a file is never split: its bookmark is all or
    nothing).

    Example:
        >>> import datetime as dt
        >>> from dataflow.storage import RawFileInfo
        >>> fs = [RawFileInfo(f"k{i}", "quote", dt.date(2024, 1, 1), "r", i, 10) for i in range(5)]
        >>> [len(b) for b in plan_batches(fs, max_files=2, max_bytes=10**9)]
        [2, 2, 1]
    """
    batches: list[list[RawFileInfo]] = []
    current: list[RawFileInfo] = []
    size = 0
    for info in files:
        if current and (len(current) >= max_files or size + info.size > max_bytes):
            batches.append(current)
            current, size = [], 0
        current.append(info)
        size += info.size
    if current:
        batches.append(current)
    return batches


@lru_cache(maxsize=256)
def _known_zone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def effective_timezone(params: Mapping[str, Any], meta: Mapping[str, Any]) -> str | None:
    """The zone of a payload's naive datetimes (see the module docstring); None if unknown.

    Example:
        >>> effective_timezone({"timezone": "UTC"}, {"exchange_timezone": "America/New_York"})
        'UTC'
        >>> effective_timezone({}, {"exchange_timezone": "America/New_York"})
        'America/New_York'
        >>> effective_timezone({}, {"type": "Physical Currency"})
        'UTC'
    """
    asked = params.get("timezone")
    exchange_tz = meta.get("exchange_timezone")
    if isinstance(asked, str) and asked:
        if asked.upper() == "UTC":
            return "UTC"
        if asked.lower() != "exchange":
            return asked if _known_zone(asked) else None
    if meta.get("type") in UTC_TYPES:
        return "UTC"
    if isinstance(exchange_tz, str) and exchange_tz:
        return exchange_tz if _known_zone(exchange_tz) else None
    return "UTC"


def _symbol(meta: Mapping[str, Any], envelope: Mapping[str, Any]) -> str | None:
    """A body's symbol when its records do not name one (see :data:`RAW_VIEW_SQL`)."""
    value = meta.get("symbol")
    if isinstance(value, str) and value and "," not in value:
        return value
    symbols = envelope.get("symbols") or []
    if len(symbols) == 1:
        return str(symbols[0])
    params = (envelope.get("request") or {}).get("params") or {}
    asked = params.get("symbol")
    if isinstance(asked, str) and asked and "," not in asked:
        return asked
    return None


def _path_key(key: str) -> str | None:
    """``key`` as a JSON path member, or None when it cannot be spelled safely."""
    if '"' in key or "\\" in key or any(ord(c) < 32 for c in key):
        return None
    return f'"{key}"'


class _Bodies:
    """Columns of :data:`BODIES_SCHEMA` plus the envelope text of each body."""

    def __init__(self) -> None:
        self.columns: dict[str, list[Any]] = {name: [] for name in BODIES_SCHEMA.names}
        self.lines: list[bytes | None] = []

    def add(self, row: Mapping[str, Any], line: bytes | None) -> None:
        for column, values in self.columns.items():
            values.append(row.get(column))
        self.lines.append(line)

    def table(self) -> pa.Table:
        arrays = [pa.array(self.columns[f.name], f.type) for f in BODIES_SCHEMA]
        # One copy of the envelope texts; a multi-symbol envelope shares one bytes object.
        lines = pa.array(self.lines, pa.binary()).cast(pa.string())
        return pa.Table.from_arrays([*arrays, lines], names=[*BODIES_SCHEMA.names, "_line"])


def _read(store: ObjectStore, key: str) -> bytes:
    try:
        return gzip.decompress(store.get_bytes(key))
    except (OSError, EOFError, zlib.error) as exc:
        raise StorageError(f"{key}: is not a readable gzip file ({exc})") from exc


def _lines(text: bytes) -> Iterator[tuple[int, int]]:
    """(start, end) of each non-blank line of ``text``, in order."""
    start, size = 0, len(text)
    while start < size:
        end = text.find(b"\n", start)
        end = size if end < 0 else end
        if text[start:end].strip():
            yield start, end
        start = end + 1


def flatten_files(
    store: ObjectStore, files: Sequence[RawFileInfo]
) -> tuple[RawBatch, FlattenStats]:
    """Read whole raw files into the bodies of ``raw`` (see the module docstring).

    Raises:
        StorageError: a file is not gzip, or a line is not a JSON object.

    Example:
        >>> batch, stats = flatten_files(store, files)  # doctest: +SKIP
        >>> with raw_relation(engine, batch):  # doctest: +SKIP
        ...     engine.sql("SELECT count(*) AS n FROM raw").to_pylist()
        [{'n': 5000}]
    """
    stats = FlattenStats()
    chunks: list[pa.Table] = []
    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        texts = pool.map(lambda info: _read(store, info.key), files)
        for info, text in zip(files, texts, strict=True):
            stats.files += 1
            stats.bytes += info.size
            chunks.append(_flatten_file(info.key, text, stats))
    bodies = pa.concat_tables(chunks) if chunks else _Bodies().table()
    # One body per record batch: the engine explodes batches in parallel, and a body can hold
    # thousands of records (the whole batch would otherwise be one task on one thread).
    bodies = pa.Table.from_batches(bodies.to_batches(max_chunksize=1), schema=bodies.schema)
    batch = RawBatch(bodies=bodies, stats=stats)
    return batch, stats


def _flatten_file(key: str, text: bytes, stats: FlattenStats) -> pa.Table:
    bodies = _Bodies()
    # Lines are numbered from 1 as written, blank lines not counted (RawWriter writes none).
    for number, (start, end) in enumerate(_lines(text), start=1):
        line = text[start:end]
        try:
            envelope = _parse(line)
        except ValueError as exc:
            raise StorageError(f"{key}:{number}: is not a JSON envelope ({exc})") from exc
        if not isinstance(envelope, dict):
            raise StorageError(f"{key}:{number}: is not a JSON envelope (not an object)")
        stats.envelopes += 1
        _flatten_envelope(bodies, stats, key, number, line, envelope)
    return bodies.table()


class _Records(list[Any]):
    """Stands for a record list that was not parsed: only its length is known.

    The records themselves are read by the engine from the envelope text (:data:`RAW_VIEW_SQL`);
    flattening only needs how many there are.
    """

    def __init__(self, count: int) -> None:
        super().__init__()
        self.size = count

    def __len__(self) -> int:
        return self.size

    def __bool__(self) -> bool:
        return self.size > 0


def _parse(line: bytes) -> Any:
    """The envelope of ``line``; a big single record list of flat objects is only counted.

    ``json.loads`` of the whole line costs most of the flattening (one core), yet only the
    envelope's header, the payload's ``meta`` and the number of records are used here. When
    the (compact, as RawWriter writes it) line holds exactly one ``"<list>":[`` (for a name of
    :data:`RECORD_LISTS`) whose array
    contains no other bracket and only flat objects (as many ``{`` as ``}`` as ``},{`` + 1),
    the array is cut out, the rest parsed, and the list replaced by its count. Any doubt (the
    cut text does not parse, the list is not at ``payload.<list>``) parses the whole line.

    Raises:
        ValueError: the line is not JSON.
    """
    if len(line) >= SKELETON_MIN_BYTES:
        for name in RECORD_LISTS:
            marker = f'"{name}":['.encode()
            found = line.find(marker)
            if found < 0:
                continue
            if line.find(marker, found + 1) >= 0:
                break
            opening = found + len(marker) - 1
            closing = line.find(b"]", opening)
            if closing < 0 or line.find(b"[", opening + 1, closing) >= 0:
                break
            count = 0
            if closing > opening + 1:
                count = line.count(b"},{", opening, closing) + 1
                flat = (
                    line.startswith(b"[{", opening)
                    and line.startswith(b"}]", closing - 1)
                    and line.count(b"{", opening, closing) == count
                    and line.count(b"}", opening, closing + 1) == count
                )
                if not flat:
                    break
            try:
                skeleton = json.loads(line[:opening] + b"[]" + line[closing + 1 :])
            except ValueError:
                break
            payload = skeleton.get("payload") if isinstance(skeleton, dict) else None
            if isinstance(payload, dict) and payload.get(name) == []:
                payload[name] = _Records(count)
                return skeleton
            break
    return json.loads(line)


def _flatten_envelope(
    bodies: _Bodies,
    stats: FlattenStats,
    key: str,
    number: int,
    line: bytes,
    envelope: dict[str, Any],
) -> None:
    """Add the bodies of one envelope (the text ``line``, number ``number`` in file ``key``)."""
    payload: Any = envelope.get("payload")
    status = envelope.get("status_code")
    if envelope.get("payload_format") != "json":
        stats.non_json += 1
        return
    if (isinstance(status, int) and status >= 400) or is_error_body(payload):
        stats.error_envelopes += 1
        return
    request = envelope.get("request") or {}
    params = request.get("params") or {}
    received = envelope.get("received_at")
    common = {
        "_raw_key": key,
        "_raw_line": number,
        "_run_id": envelope.get("run_id"),
        "_request_id": envelope.get("request_id"),
        "_received_at": parse_time(received) if isinstance(received, str) else None,
        "endpoint": envelope.get("endpoint"),
        "params": json.dumps(params, sort_keys=True),
    }
    records = 0
    keys = multi_symbol_keys(payload)
    answers: list[tuple[str | None, str, str | None, Any]]
    if keys:
        answers = []
        for symbol in keys:
            body = payload[symbol]
            if is_error_body(body):
                stats.symbol_errors += 1
                continue
            member = _path_key(symbol)
            answers.append((symbol, f"{symbol}:", f"$.payload.{member}" if member else None, body))
    else:
        answers = [(None, "", "$.payload", payload)]
    for answer_symbol, prefix, path, body in answers:
        meta, name, items = _records(body)
        if not items:
            continue
        records += len(items)
        row = dict(common)
        row.update(
            _prefix=prefix,
            _list=name,
            _answer_symbol=answer_symbol,
            _fallback_symbol=_symbol(meta, envelope),
            meta=json.dumps(meta, sort_keys=True),
            _tz=effective_timezone(params, meta),
        )
        if name is None or path is None:
            row["_inline"] = json.dumps(items)
            bodies.add(row, None)
        else:
            row["_path"] = f"{path}.{name}" if name else path
            bodies.add(row, line)
    stats.records += records
    if not records:
        stats.empty += 1


def _records(body: Any) -> tuple[dict[str, Any], str | None, list[Any]]:
    """(meta, list name or None for a snapshot, records) of one single-symbol body."""
    if isinstance(body, list):
        return {}, "", body
    if not isinstance(body, dict):
        return {}, None, []
    found = body.get("meta")
    meta: dict[str, Any] = found if isinstance(found, dict) else {}
    for name in RECORD_LISTS:
        items = body.get(name)
        if isinstance(items, list):
            return meta, name, items
    snapshot = {k: v for k, v in body.items() if k not in {"meta", "status"}}
    return meta, None, ([snapshot] if snapshot else [])


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
    "RECORD_LISTS",
    "FlattenStats",
    "RawBatch",
    "effective_timezone",
    "flatten_files",
    "plan_batches",
    "raw_relation",
    "raw_select_sql",
]
