"""Raw envelopes -> one Arrow relation ``raw``, in bounded batches of whole files.

Shapes are normalised here, types are not: SQL models do the typing. Each *record* of a payload
becomes one row whose ``record`` column is the record's JSON text, next to its ``meta`` and the
request ``params``. A record is an entry of ``values`` (series, indicators), ``data``
(catalogues), ``earnings``/``dividends``/``splits``, an element of a bare list, or the whole
body of a snapshot (``quote``, ``price``, ``eod``, ``exchange_rate`` …). Multi-symbol answers
(``{"AAPL": {...}, "MSFT": {...}}``) are split per symbol, and each symbol's error object is
counted and skipped.

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

import json
import zoneinfo
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from dataflow.storage.raw import iter_envelopes, parse_time
from dataflow.storage.replay import is_error_body, multi_symbol_keys

if TYPE_CHECKING:
    from dataflow.storage import ObjectStore, RawFileInfo

RECORD_LISTS = ("values", "data", "earnings", "dividends", "splits")
"""Keys of a body whose list holds the records (checked in this order)."""
UTC_TYPES = frozenset({"Physical Currency", "Digital Currency"})
"""Instrument types whose datetimes the API gives in UTC by default."""

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
class _Columns:
    data: dict[str, list[Any]] = field(default_factory=lambda: {n: [] for n in RAW_SCHEMA.names})

    def add(self, **values: Any) -> None:
        for name in RAW_SCHEMA.names:
            self.data[name].append(values.get(name))

    def table(self) -> pa.Table:
        return pa.table(self.data, schema=RAW_SCHEMA)


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


def _records(body: Any) -> tuple[dict[str, Any], list[tuple[str, Any]]]:
    """(meta, [(path, record)]) of one single-symbol body."""
    if isinstance(body, list):
        return {}, [(f"[{i}]", item) for i, item in enumerate(body)]
    if not isinstance(body, dict):
        return {}, []
    found = body.get("meta")
    meta: dict[str, Any] = found if isinstance(found, dict) else {}
    for name in RECORD_LISTS:
        items = body.get(name)
        if isinstance(items, list):
            return meta, [(f"{name}[{i}]", item) for i, item in enumerate(items)]
    snapshot = {k: v for k, v in body.items() if k not in {"meta", "status"}}
    return meta, ([("", snapshot)] if snapshot else [])


def _symbol(meta: Mapping[str, Any], record: Any, envelope: Mapping[str, Any]) -> str | None:
    for source in (record if isinstance(record, dict) else {}, meta):
        value = source.get("symbol")
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


def _bodies(payload: Any, stats: FlattenStats) -> Iterator[tuple[str | None, str, Any]]:
    """(symbol from the answer's key, path prefix, body) of each symbol in a payload."""
    keys = multi_symbol_keys(payload)
    if not keys:
        yield None, "", payload
        return
    for key in keys:
        body = payload[key]
        if is_error_body(body):
            stats.symbol_errors += 1
            continue
        yield key, f"{key}:", body


def flatten_files(
    store: ObjectStore, files: Sequence[RawFileInfo]
) -> tuple[pa.Table, FlattenStats]:
    """Read whole raw files into the ``raw`` relation.

    Example:
        >>> table, stats = flatten_files(store, batch)  # doctest: +SKIP
        >>> stats.records == table.num_rows  # doctest: +SKIP
        True
    """
    columns = _Columns()
    stats = FlattenStats()
    for info in files:
        stats.files += 1
        stats.bytes += info.size
        # Lines are numbered from 1 as written: RawWriter never writes blank lines.
        for line, envelope in enumerate(iter_envelopes(store, info.key), start=1):
            stats.envelopes += 1
            _flatten_envelope(columns, stats, info.key, line, envelope)
    table = columns.table()
    stats.records = table.num_rows
    return table, stats


def _flatten_envelope(
    columns: _Columns, stats: FlattenStats, key: str, line: int, envelope: dict[str, Any]
) -> None:
    payload = envelope.get("payload")
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
    received_at = parse_time(received) if isinstance(received, str) else None
    before = len(columns.data["record"])
    params_json = json.dumps(params, sort_keys=True)
    for answer_symbol, prefix, body in _bodies(payload, stats):
        meta, records = _records(body)
        tz = effective_timezone(params, meta)
        meta_json = json.dumps(meta, sort_keys=True)
        for path, record in records:
            columns.add(
                _raw_key=key,
                _raw_line=line,
                _record_path=prefix + path,
                _run_id=envelope.get("run_id"),
                _request_id=envelope.get("request_id"),
                _received_at=received_at,
                endpoint=envelope.get("endpoint"),
                symbol=answer_symbol or _symbol(meta, record, envelope),
                params=params_json,
                meta=meta_json,
                record=json.dumps(record),
                _tz=tz,
            )
    if len(columns.data["record"]) == before:
        stats.empty += 1


__all__ = [
    "RAW_SCHEMA",
    "RECORD_LISTS",
    "FlattenStats",
    "effective_timezone",
    "flatten_files",
    "plan_batches",
]
