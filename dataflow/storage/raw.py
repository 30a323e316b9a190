"""The immutable raw zone: envelopes, their layout, and a buffered writer.

Every API response is stored verbatim inside an *envelope*, one JSON object per line, in gzip
files that are written once and never changed::

    raw/<source>/<endpoint>/ingest_date=YYYY-MM-DD/<run_id>-<seq:05d>.jsonl.gz

An envelope (``ENVELOPE_VERSION`` 1)::

    {"envelope_version": 1, "source": "twelvedata", "endpoint": "time_series",
     "run_id": "...", "request_id": "...",
     "request": {"path": "/time_series", "params": {"symbol": "AAPL", "interval": "1day"}},
     "symbols": ["AAPL"], "status_code": 200, "received_at": "2024-05-01T12:00:00.000000Z",
     "headers": {"api-credits-used": "1", "api-credits-left": "7"},
     "payload_format": "json", "payload": {...the response body, parsed...}}

The API key never enters an envelope: ``apikey``/``api_key`` parameters (in any case, also in a
query string inside ``path``) and every header but the credit counters and content type are
dropped by :func:`make_envelope`.

Example:
    >>> import datetime as dt, tempfile
    >>> from dataflow.storage.objectstore import LocalStore
    >>> store = LocalStore(tempfile.mkdtemp())
    >>> env = make_envelope(source="twelvedata", endpoint="price", path="/price",
    ...     params={"symbol": "IBM", "apikey": "secret"}, status_code=200, headers={},
    ...     body=b'{"price":"146.55000"}', received_at=dt.datetime(2024, 5, 1, tzinfo=dt.UTC),
    ...     run_id="r1", request_id="q1", symbols=["IBM"])
    >>> writer = RawWriter(store, source="twelvedata", run_id="r1",
    ...                    ingest_date=dt.date(2024, 5, 1))
    >>> writer.add(env) is None
    True
    >>> [f.key for f in writer.flush()]
    ['raw/twelvedata/price/ingest_date=2024-05-01/r1-00001.jsonl.gz']
    >>> next(iter_envelopes(store, writer.files[0].key))["request"]["params"]
    {'symbol': 'IBM'}
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import re
import threading
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from dataflow.crashpoints import crashpoint
from dataflow.errors import ConfigError, ImmutableError, StorageError

if TYPE_CHECKING:
    from dataflow.storage.objectstore import ObjectStore

RAW_PREFIX = "raw"
ENVELOPE_VERSION = 1
SECRET_PARAMS = frozenset({"apikey", "api_key", "api-key"})
"""Query parameters that carry credentials; compared case-insensitively and never stored."""
KEPT_HEADERS = ("api-credits-used", "api-credits-left", "content-type")
"""The only response headers an envelope keeps (lower-cased names)."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_RAW_KEY = re.compile(
    r"^(?P<endpoint>[^/]+)/ingest_date=(?P<date>\d{4}-\d{2}-\d{2})/"
    r"(?P<run_id>[^/]+)-(?P<seq>\d+)\.jsonl\.gz$"
)


def check_name(kind: str, value: str) -> str:
    """Validate a source, endpoint or run id used in a raw-zone key.

    Raises:
        ConfigError: the name is empty or has characters other than letters, digits, ``_.-``.

    Example:
        >>> check_name("endpoint", "time_series")
        'time_series'
    """
    if not _NAME.match(value) or ".." in value:
        raise ConfigError(
            f"{kind} {value!r} cannot name a raw-zone folder — use letters, digits, '_', '.' "
            "and '-', starting with a letter or digit (e.g. time_series_cross)"
        )
    return value


def format_time(moment: dt.datetime) -> str:
    """ISO-8601 UTC with a ``Z`` and microseconds; a naive datetime is taken as UTC.

    Example:
        >>> format_time(dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC))
        '2024-05-01T12:00:00.000000Z'
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    utc = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds") + "Z"


def parse_time(text: str) -> dt.datetime:
    """The inverse of :func:`format_time` (accepts any ISO-8601 offset), always UTC-aware."""
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def _reject_constant(name: str) -> Any:
    # NaN/Infinity are not JSON; a body that uses them is kept as text rather than re-encoded.
    raise ValueError(f"non-JSON constant {name}")


_UNPARSED: Any = object()


def parse_body(body: bytes | str) -> tuple[Any, str]:
    """``(payload, payload_format)``: the parsed JSON and ``"json"``, or the text and ``"text"``.

    Example:
        >>> parse_body(b'{"price":"1.5"}'), parse_body("<html>502</html>")
        (({'price': '1.5'}, 'json'), ('<html>502</html>', 'text'))
    """
    try:
        return json.loads(body, parse_constant=_reject_constant), "json"
    except (ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: JSON nested thousands deep is kept as text, never a traceback.
        text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
        return text, "text"


def _clean_params(path: str, params: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    path, _, query = path.partition("?")
    merged: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True)) if query else {}
    merged.update(params)
    kept = {str(k): v for k, v in merged.items() if str(k).lower() not in SECRET_PARAMS}
    # Round-trip so dates, enums and tuples become plain JSON values now, not at write time.
    safe: dict[str, Any] = json.loads(json.dumps(kept, default=str))
    return path, safe


def make_envelope(
    *,
    source: str,
    endpoint: str,
    path: str,
    params: Mapping[str, Any],
    status_code: int,
    headers: Mapping[str, str],
    body: bytes | str,
    received_at: dt.datetime,
    run_id: str,
    request_id: str,
    symbols: Sequence[str] = (),
    parsed: Any = _UNPARSED,
) -> dict[str, Any]:
    """Wrap one API response in an envelope, without any credential.

    Args:
        source: the data source, e.g. ``twelvedata``.
        endpoint: the endpoint name, e.g. ``time_series`` (names the raw-zone folder).
        path: the request path, e.g. ``/time_series`` (a query string is folded into params).
        params: the query parameters as sent; ``apikey``/``api_key`` are dropped.
        status_code: the HTTP status received.
        headers: the response headers; only credit counters and content type are kept.
        body: the response body as received.
        received_at: when the response arrived (naive means UTC).
        run_id: the run that made the request.
        request_id: unique id of the request within the run.
        symbols: the symbols the request was for.
        parsed: the body already decoded as JSON by the caller (saves decoding it twice).

    Example:
        >>> env = make_envelope(source="twelvedata", endpoint="quote", path="/quote",
        ...     params={"symbol": "AAPL", "APIKEY": "k"}, status_code=200,
        ...     headers={"Authorization": "apikey k", "Api-Credits-Used": "1"}, body=b"oops",
        ...     received_at=dt.datetime(2024, 1, 1), run_id="r", request_id="q")
        >>> env["request"], env["headers"]
        ({'path': '/quote', 'params': {'symbol': 'AAPL'}}, {'api-credits-used': '1'})
        >>> env["payload_format"], env["payload"]
        ('text', 'oops')
    """
    clean_path, clean_params = _clean_params(path, params)
    lowered = {str(name).lower(): str(value) for name, value in headers.items()}
    kept_headers = {name: lowered[name] for name in KEPT_HEADERS if name in lowered}
    if parsed is _UNPARSED:
        payload, payload_format = parse_body(body)
    else:
        payload, payload_format = parsed, "json"
    return {
        "envelope_version": ENVELOPE_VERSION,
        "source": source,
        "endpoint": endpoint,
        "run_id": run_id,
        "request_id": request_id,
        "request": {"path": clean_path, "params": clean_params},
        "symbols": list(symbols),
        "status_code": int(status_code),
        "received_at": format_time(received_at),
        "headers": kept_headers,
        "payload_format": payload_format,
        "payload": payload,
    }


def encode_envelope(envelope: Mapping[str, Any]) -> bytes:
    """One compact JSON line (UTF-8, ending in a newline)."""
    text = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8") + b"\n"


def raw_key(source: str, endpoint: str, ingest_date: dt.date, run_id: str, seq: int) -> str:
    """The key of a raw file.

    Example:
        >>> raw_key("twelvedata", "quote", dt.date(2024, 5, 1), "r1", 3)
        'raw/twelvedata/quote/ingest_date=2024-05-01/r1-00003.jsonl.gz'
    """
    check_name("source", source)
    check_name("endpoint", endpoint)
    check_name("run id", run_id)
    return (
        f"{RAW_PREFIX}/{source}/{endpoint}/ingest_date={ingest_date.isoformat()}/"
        f"{run_id}-{seq:05d}.jsonl.gz"
    )


@dataclass
class RawFile:
    """A raw file written by :class:`RawWriter`.

    Attributes:
        key: its object key.
        endpoint: the endpoint of every envelope in it.
        lines: number of envelopes.
        bytes: size as stored (gzip-compressed).
        request_ids: the ``request_id`` of each envelope, in order.
        sha256: hex digest of the stored bytes, for audits.
    """

    key: str
    endpoint: str
    lines: int
    bytes: int
    request_ids: list[str] = field(default_factory=list)
    sha256: str = ""


@dataclass
class _Buffer:
    lines: list[bytes] = field(default_factory=list)
    size: int = 0
    request_ids: list[str] = field(default_factory=list)


class RawWriter:
    """Buffers envelopes per endpoint and writes one gzip JSON-lines file per flush.

    A file is written when an endpoint's buffer reaches ``max_lines`` envelopes or ``max_bytes``
    of uncompressed JSON (the envelope that crosses the limit is included), and on
    :meth:`flush`. Only envelopes in files returned by ``add``/``flush`` are durable. The gzip
    header has mtime 0 so equal content gives equal bytes. A lock makes calls from several
    threads (or tasks of one event loop) safe.

    Sequence numbers count up per writer; a number whose file already exists (an earlier
    attempt of the same run) is skipped, never overwritten, so a resumed run can reuse its id.

    Args:
        store: where to write.
        source: e.g. ``twelvedata``.
        run_id: the run; part of every file name.
        max_lines: envelopes per file at most (the last add may reach it).
        max_bytes: uncompressed bytes after which a file is closed.
        ingest_date: the ``ingest_date=`` partition (default: today in UTC, fixed per writer).
    """

    def __init__(
        self,
        store: ObjectStore,
        *,
        source: str,
        run_id: str,
        max_lines: int = 500,
        max_bytes: int = 8_000_000,
        ingest_date: dt.date | None = None,
    ) -> None:
        if max_lines < 1 or max_bytes < 1:
            raise ValueError("max_lines and max_bytes must be at least 1")
        self.store = store
        self.source = check_name("source", source)
        self.run_id = check_name("run id", run_id)
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self.ingest_date = ingest_date or dt.datetime.now(dt.UTC).date()
        self.files: list[RawFile] = []
        self._buffers: dict[str, _Buffer] = {}
        self._seq = 0
        self._lock = threading.RLock()

    @property
    def pending(self) -> int:
        """Envelopes buffered and not yet durable."""
        with self._lock:
            return sum(len(buffer.lines) for buffer in self._buffers.values())

    def add(self, envelope: dict[str, Any]) -> RawFile | None:
        """Buffer an envelope; return the file written if this add filled the endpoint's buffer.

        Raises:
            ValueError: the envelope has another source or no endpoint.
        """
        endpoint = envelope.get("endpoint")
        if not isinstance(endpoint, str) or envelope.get("source") != self.source:
            raise ValueError(
                f"envelope of source {envelope.get('source')!r} / endpoint {endpoint!r} "
                f"does not belong to a {self.source!r} writer"
            )
        check_name("endpoint", endpoint)
        line = encode_envelope(envelope)
        with self._lock:
            buffer = self._buffers.setdefault(endpoint, _Buffer())
            buffer.lines.append(line)
            buffer.size += len(line)
            buffer.request_ids.append(str(envelope.get("request_id", "")))
            if len(buffer.lines) >= self.max_lines or buffer.size >= self.max_bytes:
                return self._write(endpoint)
        return None

    def flush(self, endpoint: str | None = None) -> list[RawFile]:
        """Write the buffered envelopes of one endpoint (or all, by name) durably.

        Raises:
            StorageError: the store refused a write; the envelopes stay buffered.
        """
        with self._lock:
            names = [endpoint] if endpoint is not None else sorted(self._buffers)
            written: list[RawFile] = []
            for name in names:
                buffer = self._buffers.get(name)
                if buffer is not None and buffer.lines:
                    written.append(self._write(name))
            return written

    def _write(self, endpoint: str) -> RawFile:
        buffer = self._buffers[endpoint]
        data = gzip.compress(b"".join(buffer.lines), compresslevel=6, mtime=0)
        for _ in range(100_000):
            self._seq += 1
            key = raw_key(self.source, endpoint, self.ingest_date, self.run_id, self._seq)
            try:
                self.store.put_bytes(key, data)
            except ImmutableError:
                continue  # written by an earlier attempt of this run: take the next number
            break
        else:
            raise StorageError(f"run {self.run_id}: no free raw file name under {endpoint}")
        crashpoint("ingest.after_raw_write")
        raw_file = RawFile(
            key=key,
            endpoint=endpoint,
            lines=len(buffer.lines),
            bytes=len(data),
            request_ids=list(buffer.request_ids),
            sha256=hashlib.sha256(data).hexdigest(),
        )
        del self._buffers[endpoint]
        self.files.append(raw_file)
        return raw_file


def iter_envelopes(store: ObjectStore, key: str) -> Iterator[dict[str, Any]]:
    """The envelopes of one raw file, in order.

    Raises:
        StorageError: the object is missing, not gzip, or has a line that is not a JSON object.
    """
    try:
        text = gzip.decompress(store.get_bytes(key))
    except (OSError, EOFError, zlib.error) as exc:
        raise StorageError(f"{key}: is not a readable gzip file ({exc})") from exc
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            envelope = json.loads(line)
        except ValueError as exc:
            raise StorageError(f"{key}:{number}: is not a JSON envelope ({exc})") from exc
        if not isinstance(envelope, dict):
            raise StorageError(f"{key}:{number}: is not a JSON envelope (not an object)")
        yield envelope


@dataclass(frozen=True)
class RawFileInfo:
    """A raw file found by :func:`list_raw`."""

    key: str
    endpoint: str
    ingest_date: dt.date
    run_id: str
    seq: int
    size: int
    modified: dt.datetime | None = None


def list_raw(
    store: ObjectStore, *, source: str = "twelvedata", endpoint: str | None = None
) -> list[RawFileInfo]:
    """The raw files of a source (optionally one endpoint), sorted by key.

    Manifests and objects that do not follow the layout are left out.

    Example:
        >>> import tempfile
        >>> from dataflow.storage.objectstore import LocalStore
        >>> list_raw(LocalStore(tempfile.mkdtemp()), endpoint="quote")
        []
    """
    base = f"{RAW_PREFIX}/{check_name('source', source)}/"
    prefix = base + (f"{check_name('endpoint', endpoint)}/" if endpoint else "")
    found: list[RawFileInfo] = []
    for info in store.list(prefix):
        match = _RAW_KEY.match(info.key[len(base) :])
        if match is None:
            continue
        try:
            ingest_date = dt.date.fromisoformat(match["date"])
        except ValueError:
            continue
        found.append(
            RawFileInfo(
                key=info.key,
                endpoint=match["endpoint"],
                ingest_date=ingest_date,
                run_id=match["run_id"],
                seq=int(match["seq"]),
                size=info.size,
                modified=info.modified,
            )
        )
    return found
