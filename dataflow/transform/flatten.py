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
body holding that path and the envelope line itself.
:func:`~dataflow.transform.raw_view.raw_relation` registers it with an engine and defines
``raw`` as a view that explodes the record lists in SQL (``json_extract(..., '$[*]')`` +
``unnest``), so the engine parses and splits the records. A model that declares its record and
meta fields gets them typed instead, each list parsed once (``json_transform``; see
:func:`~dataflow.transform.raw_view.raw_select_sql`).

Error envelopes (HTTP status ≥ 400 or an error body), non-JSON payloads and empty answers give no
rows; they are counted in :class:`FlattenStats` for the run's metrics.

The ``_tz`` column is the zone of the payload's naive ``datetime`` values: ``UTC`` when the
request asked ``timezone=UTC`` (what our ingest always does) or for forex/crypto, else the
request's IANA zone, else ``meta.exchange_timezone`` (imported real responses). ``None`` means an
unknown zone name; models quarantine such rows.

The view itself (its SQL, its schema, registering a batch) is :mod:`dataflow.transform.raw_view`.

Example:
    >>> plan_batches([], max_files=10, max_bytes=1 << 20)
    []
"""

from __future__ import annotations

import gzip
import json
import zlib
import zoneinfo
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from dataflow.errors import StorageError
from dataflow.storage.raw import parse_time
from dataflow.storage.replay import is_error_body, multi_symbol_keys
from dataflow.transform.raw_view import BODIES_SCHEMA

if TYPE_CHECKING:
    from dataflow.storage import ObjectStore, RawFileInfo

RECORD_LISTS = ("values", "data", "earnings", "dividends", "splits")
"""Keys of a body whose list holds the records (checked in this order)."""
UTC_TYPES = frozenset({"Physical Currency", "Digital Currency"})
"""Instrument types whose datetimes the API gives in UTC by default."""
READ_THREADS = 4
"""Files fetched and gunzipped at once (zlib releases the GIL)."""
SKELETON_MIN_BYTES = 16_384
"""Envelope lines from this size are parsed without their record list (see :func:`_parse`)."""


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
    set_aside: int = 0

    def add(self, other: FlattenStats) -> None:
        """Add ``other``'s counts to these."""
        for name, value in other.__dict__.items():
            setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, int]:
        """Plain data."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class SetAside:
    """A raw file (``line`` 0) or one line of it that cannot be read: no rows, one reason."""

    key: str
    line: int
    reason: str


@dataclass
class RawBatch:
    """The bodies of one batch of raw files (see :data:`BODIES_SCHEMA`), ready for SQL.

    ``set_aside`` lists the files and lines that could not be read at all (not gzip, not a
    JSON object): they give no rows, and the stage records them in the quarantine.
    """

    bodies: pa.Table
    stats: FlattenStats = field(default_factory=FlattenStats)
    set_aside: list[SetAside] = field(default_factory=list)

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
    """A body's symbol when its records do not name one (see ``raw_view.RAW_VIEW_SQL``)."""
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

    def truncate(self, size: int) -> None:
        """Forget the bodies added after the first ``size`` (an envelope that failed)."""
        for values in self.columns.values():
            del values[size:]
        del self.lines[size:]

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

    A file that is not gzip, or a line that is not a JSON object, gives no rows and is listed
    in ``RawBatch.set_aside`` with the reason (it never stops the batch).

    Example:
        >>> batch, stats = flatten_files(store, files)  # doctest: +SKIP
        >>> with raw_relation(engine, batch):  # doctest: +SKIP
        ...     engine.sql("SELECT count(*) AS n FROM raw").to_pylist()
        [{'n': 5000}]
    """
    stats = FlattenStats()
    chunks: list[pa.Table] = []
    set_aside: list[SetAside] = []

    def read(info: RawFileInfo) -> bytes | StorageError:
        try:
            return _read(store, info.key)
        except StorageError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        texts = pool.map(read, files)
        for info, text in zip(files, texts, strict=True):
            stats.files += 1
            stats.bytes += info.size
            if isinstance(text, StorageError):
                # A file that cannot be read never blocks the others: it is set aside.
                set_aside.append(SetAside(info.key, 0, str(text)))
                continue
            chunks.append(_flatten_file(info.key, text, stats, set_aside))
    bodies = pa.concat_tables(chunks) if chunks else _Bodies().table()
    # One body per record batch: the engine explodes batches in parallel, and a body can hold
    # thousands of records (the whole batch would otherwise be one task on one thread).
    bodies = pa.Table.from_batches(bodies.to_batches(max_chunksize=1), schema=bodies.schema)
    stats.set_aside = len(set_aside)
    batch = RawBatch(bodies=bodies, stats=stats, set_aside=set_aside)
    return batch, stats


def _flatten_file(
    key: str, text: bytes, stats: FlattenStats, set_aside: list[SetAside]
) -> pa.Table:
    bodies = _Bodies()
    # Lines are numbered from 1 as written, blank lines not counted (RawWriter writes none).
    for number, (start, end) in enumerate(_lines(text), start=1):
        line = text[start:end]
        try:
            envelope = _parse(line)
        except (ValueError, RecursionError) as exc:
            # One unreadable line is set aside; the rest of the file goes on.
            reason = "nested too deep" if isinstance(exc, RecursionError) else str(exc)[:200]
            set_aside.append(SetAside(key, number, f"not a JSON envelope ({reason})"))
            continue
        if not isinstance(envelope, dict):
            set_aside.append(SetAside(key, number, "not a JSON envelope (not an object)"))
            continue
        stats.envelopes += 1
        mark, records = len(bodies.lines), stats.records
        try:
            _flatten_envelope(bodies, stats, key, number, line, envelope)
        except (RecursionError, TypeError, ValueError) as exc:
            bodies.truncate(mark)
            stats.records = records
            reason = "nested too deep" if isinstance(exc, RecursionError) else str(exc)[:200]
            set_aside.append(SetAside(key, number, f"envelope cannot be read ({reason})"))
    return bodies.table()


class _Records(list[Any]):
    """Stands for a record list that was not parsed: only its length is known.

    The records themselves are read by the engine from the envelope text
    (``raw_view.RAW_VIEW_SQL``); flattening only needs how many there are.
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


__all__ = [
    "RECORD_LISTS",
    "FlattenStats",
    "RawBatch",
    "SetAside",
    "effective_timezone",
    "flatten_files",
    "plan_batches",
]
