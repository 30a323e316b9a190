"""Replay saved API responses into the raw zone (``dataflow raw import``).

Each file is one body exactly as the API returned it — a single-symbol answer, a multi-symbol
answer keyed by symbol, or an error body — and becomes one envelope. What the HTTP exchange
would have told us is derived from the body: the status is an error body's ``code`` (else 200),
the symbols come from ``--symbol``, else ``meta.symbol`` / ``symbol``, else the keys of a
multi-symbol answer. Every file is checked before anything is written, so a bad file leaves
the raw zone untouched. The import is a run like any other: it writes a manifest.

Example:
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> from dataflow.storage.objectstore import LocalStore
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "ibm.json").write_text(json.dumps({"price": "146.55000"}))
    >>> result = import_responses(LocalStore(folder / "wh"), [folder / "ibm.json"],
    ...                           endpoint="price", symbol="IBM", run_id="import-demo")
    >>> result.requests[0].symbols, result.requests[0].status_code, len(result.files)
    (['IBM'], 200, 1)
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dataflow.errors import ConfigError
from dataflow.storage.manifest import Manifest, RequestRecord, write_manifest
from dataflow.storage.raw import RawFile, RawWriter, check_name, make_envelope, parse_body

if TYPE_CHECKING:
    from dataflow.storage.objectstore import ObjectStore

# Keys of a single-symbol (or list, or error) body; a multi-symbol body has none of them.
_SINGLE_BODY_KEYS = frozenset({"meta", "values", "data", "status", "code", "message", "result"})


@dataclass
class ImportResult:
    """What ``import_responses`` stored."""

    run_id: str
    manifest_key: str
    files: list[RawFile] = field(default_factory=list)
    requests: list[RequestRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def new_import_run_id(now: dt.datetime | None = None) -> str:
    """A run id for an import, e.g. ``import-20240501T120000Z-3f2a``."""
    moment = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return f"import-{moment:%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"


def is_error_body(body: Any) -> bool:
    """A Twelve Data error answer: ``"status": "error"`` or an integer ``code`` of 400 or more."""
    if not isinstance(body, dict):
        return False
    code = body.get("code")
    return body.get("status") == "error" or (
        isinstance(code, int) and not isinstance(code, bool) and code >= 400
    )


def status_from_body(body: Any) -> int:
    """The HTTP status a saved body stands for: an error body's ``code``, else 200.

    Example:
        >>> status_from_body({"code": 404, "message": "nothing found", "status": "error"})
        404
    """
    code = body.get("code") if isinstance(body, dict) else None
    if is_error_body(body) and isinstance(code, int) and not isinstance(code, bool):
        return code
    return 200


def multi_symbol_keys(body: Any) -> list[str]:
    """The symbols of a multi-symbol answer (``{"AAPL": {...}, "MSFT": {...}}``), else ``[]``."""
    if not isinstance(body, dict) or not body or _SINGLE_BODY_KEYS & set(body):
        return []
    if all(isinstance(value, dict) for value in body.values()):
        return list(body)
    return []


def symbols_from_body(body: Any) -> list[str]:
    """The symbols a saved body is about.

    Example:
        >>> symbols_from_body({"AAPL": {"price": "1"}, "MSFT": {"price": "2"}})
        ['AAPL', 'MSFT']
    """
    keys = multi_symbol_keys(body)
    if keys:
        return keys
    if isinstance(body, dict):
        meta = body.get("meta")
        named = meta.get("symbol") if isinstance(meta, dict) else None
        named = named if isinstance(named, str) and named else body.get("symbol")
        if isinstance(named, str) and named:
            return [part.strip() for part in named.split(",") if part.strip()]
    return []


def count_rows(body: Any) -> int:
    """Data rows in a body: ``values``/``data`` entries, 1 for a snapshot, 0 for an error."""
    keys = multi_symbol_keys(body)
    if keys:
        return sum(count_rows(body[key]) for key in keys)
    if isinstance(body, list):
        return len(body)
    if not isinstance(body, dict) or is_error_body(body):
        return 0
    for name in ("values", "data"):
        if isinstance(body.get(name), list):
            return len(body[name])
    return 1


def _outcome(body: Any) -> tuple[str, str | None]:
    if is_error_body(body):
        return "error", str(body.get("message", "error body"))
    keys = multi_symbol_keys(body)
    failed = [key for key in keys if is_error_body(body[key])]
    if not failed:
        return "ok", None
    first = body[failed[0]]
    message = f"{len(failed)} of {len(keys)} symbols failed: {first.get('message', 'error')}"
    return ("error" if len(failed) == len(keys) else "partial"), message


@dataclass
class _Loaded:
    path: Path
    raw: bytes
    body: Any


def _load(path: Path) -> _Loaded:
    try:
        raw = path.read_bytes()
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder — raw import takes saved API responses") from None
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file — check the path") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror}) — check the file") from None
    body, body_format = parse_body(raw)
    if body_format != "json":
        raise ConfigError(
            f"{path}: is not JSON (or is nested too deep to read) — raw import takes saved API "
            "responses (the JSON bodies the API returned)"
        )
    return _Loaded(path=path, raw=raw, body=body)


def import_responses(
    store: ObjectStore,
    files: Sequence[Path],
    *,
    endpoint: str,
    symbol: str | None = None,
    params: Mapping[str, str] | None = None,
    run_id: str | None = None,
    source: str = "twelvedata",
) -> ImportResult:
    """Store saved API responses as envelopes of one import run, with its manifest.

    Args:
        store: the warehouse.
        files: JSON files, one API response body each.
        endpoint: the endpoint they answered, e.g. ``time_series``.
        symbol: the symbol(s) asked for (``AAPL`` or ``AAPL,MSFT``); default: from each body.
        params: the other request parameters (e.g. ``interval=1day``); ``apikey`` is dropped.
        run_id: default ``import-<UTC time>-<4 hex>``.
        source: the data source.

    Raises:
        ConfigError: no files, a file is missing or not JSON, or a bad endpoint name; nothing
            has been written then.

    Example:
        >>> store = LocalStore("warehouse")  # doctest: +SKIP
        >>> import_responses(store, [Path("price__ibm.json")], endpoint="price",
        ...                  symbol="IBM").files[0].key  # doctest: +SKIP
        'raw/twelvedata/price/ingest_date=2024-05-01/import-20240501T120000Z-3f2a-00001.jsonl.gz'
    """
    if not files:
        raise ConfigError("raw import needs at least one FILE (a saved API response)")
    check_name("source", source)
    check_name("endpoint", endpoint)
    run_id = check_name("run id", run_id or new_import_run_id())
    loaded = [_load(Path(path)) for path in files]  # validate everything before any write

    request_params: dict[str, Any] = dict(params or {})
    given_symbols: list[str] = []
    if symbol:
        given_symbols = [part.strip() for part in symbol.split(",") if part.strip()]
        request_params.setdefault("symbol", symbol)

    started = dt.datetime.now(dt.UTC)
    manifest = Manifest(run_id=run_id, source=source, started_at=started)
    writer = RawWriter(store, source=source, run_id=run_id, ingest_date=started.date())
    warnings: list[str] = []
    for number, item in enumerate(loaded, start=1):
        symbols = given_symbols or symbols_from_body(item.body)
        if not symbols:
            warnings.append(f"{item.path.name}: no symbol in the body — pass --symbol to set it")
        status_code = status_from_body(item.body)
        outcome, error = _outcome(item.body)
        request_id = f"{run_id}-req{number:05d}"
        envelope = make_envelope(
            source=source,
            endpoint=endpoint,
            path=f"/{endpoint}",
            params=request_params,
            status_code=status_code,
            headers={},
            body=item.raw,
            received_at=dt.datetime.now(dt.UTC),
            run_id=run_id,
            request_id=request_id,
            symbols=symbols,
        )
        envelope["imported_from"] = item.path.name
        writer.add(envelope)
        manifest.requests.append(
            RequestRecord(
                request_id=request_id,
                endpoint=endpoint,
                path=f"/{endpoint}",
                params=dict(envelope["request"]["params"]),
                symbols=symbols,
                outcome=outcome,
                status_code=status_code,
                error=error,
                credits=0,
                attempts=0,
                rows=count_rows(item.body),
            )
        )
    writer.flush()
    manifest.record_files(writer.files)
    manifest.finished_at = dt.datetime.now(dt.UTC)
    manifest.status = "succeeded"
    key = write_manifest(store, manifest)
    return ImportResult(
        run_id=run_id,
        manifest_key=key,
        files=list(writer.files),
        requests=manifest.requests,
        warnings=warnings,
    )
