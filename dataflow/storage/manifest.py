"""Run manifests: what a run asked for, what came back, and which raw files hold it.

One JSON document per run at ``raw/<source>/_manifests/<run_id>.json``. It is rewritten as the
run progresses (the only object in the raw zone that is ever replaced, and only by its own run),
so a crashed run leaves a manifest that says which requests already landed in durable files: a
resumed run skips those (:meth:`Manifest.done_request_ids`).

Example:
    >>> import datetime as dt, tempfile
    >>> from dataflow.storage.objectstore import LocalStore
    >>> store = LocalStore(tempfile.mkdtemp())
    >>> m = Manifest(run_id="r1", source="twelvedata",
    ...              started_at=dt.datetime(2024, 5, 1, tzinfo=dt.UTC))
    >>> m.requests.append(RequestRecord(request_id="q1", endpoint="price", path="/price",
    ...     params={"symbol": "IBM"}, symbols=["IBM"], outcome="ok", status_code=200))
    >>> write_manifest(store, m)
    'raw/twelvedata/_manifests/r1.json'
    >>> read_manifest(store, "twelvedata", "r1").requests[0].outcome
    'ok'
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from dataflow.errors import StorageError
from dataflow.storage.raw import RAW_PREFIX, RawFile, check_name, format_time, parse_time

if TYPE_CHECKING:
    from dataflow.storage.objectstore import ObjectStore

MANIFEST_VERSION = 1
OUTCOMES = ("ok", "error", "partial", "skipped")
"""ok: stored, no error; error: the API or transport failed (an error body is still stored);
partial: a multi-symbol answer with some per-symbol errors; skipped: not sent (budget, resume)."""


@dataclass
class RequestRecord:
    """One request of a run and what became of it.

    Attributes:
        request_id: unique within the run; matches the envelope's ``request_id``.
        endpoint: e.g. ``time_series``.
        path: e.g. ``/time_series``.
        params: query parameters as sent, without the API key.
        symbols: the symbols asked for.
        outcome: one of :data:`OUTCOMES`.
        status_code: the last HTTP status (or the body's error code), ``None`` if never answered.
        error: a one-line description of the failure, if any.
        credits: API credits spent.
        attempts: HTTP attempts made (0 for imports and skipped requests).
        file: the raw file key holding the envelope, once durable.
        rows: data rows in the payload (values/data entries over all symbols).
    """

    request_id: str
    endpoint: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    symbols: list[str] = field(default_factory=list)
    outcome: str = "ok"
    status_code: int | None = None
    error: str | None = None
    credits: int = 0
    attempts: int = 0
    file: str | None = None
    rows: int = 0


@dataclass
class Manifest:
    """The audit record of one run of a source; ``status``: running, succeeded, partial, failed."""

    run_id: str
    source: str
    started_at: dt.datetime
    finished_at: dt.datetime | None = None
    status: str = "running"
    requests: list[RequestRecord] = field(default_factory=list)
    files: list[RawFile] = field(default_factory=list)

    def to_json(self) -> str:
        """The manifest as indented JSON text (times in UTC with a ``Z``)."""
        data: dict[str, Any] = {
            "manifest_version": MANIFEST_VERSION,
            "run_id": self.run_id,
            "source": self.source,
            "started_at": format_time(self.started_at),
            "finished_at": format_time(self.finished_at) if self.finished_at else None,
            "status": self.status,
            "requests": [asdict(record) for record in self.requests],
            "files": [asdict(raw_file) for raw_file in self.files],
        }
        return json.dumps(data, indent=1, ensure_ascii=False, allow_nan=False, default=str) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        """Parse what :meth:`to_json` wrote (unknown keys are ignored, missing ones defaulted).

        Raises:
            StorageError: the text is not a manifest.
        """
        try:
            data = json.loads(text)
            return cls(
                run_id=str(data["run_id"]),
                source=str(data["source"]),
                started_at=parse_time(data["started_at"]),
                finished_at=parse_time(data["finished_at"]) if data.get("finished_at") else None,
                status=str(data.get("status", "running")),
                requests=[_build(RequestRecord, item) for item in data.get("requests", [])],
                files=[_build(RawFile, item) for item in data.get("files", [])],
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StorageError(f"not a run manifest ({type(exc).__name__}: {exc})") from exc

    def done_request_ids(self) -> set[str]:
        """Requests whose answer is durable in a raw file (a resumed run need not repeat them)."""
        return {
            record.request_id
            for record in self.requests
            if record.file is not None and record.outcome in ("ok", "partial")
        }

    def record_files(self, files: list[RawFile]) -> None:
        """Add written files and point each of their requests at the file that holds it."""
        by_request = {rid: raw_file.key for raw_file in files for rid in raw_file.request_ids}
        known = {raw_file.key for raw_file in self.files}
        self.files.extend(raw_file for raw_file in files if raw_file.key not in known)
        for record in self.requests:
            if record.request_id in by_request:
                record.file = by_request[record.request_id]


def _build(kind: type[Any], item: dict[str, Any]) -> Any:
    names = {f.name for f in fields(kind)}
    return kind(**{key: value for key, value in item.items() if key in names})


def manifest_key(source: str, run_id: str) -> str:
    """Where a run's manifest lives.

    Example:
        >>> manifest_key("twelvedata", "r1")
        'raw/twelvedata/_manifests/r1.json'
    """
    check_name("source", source)
    check_name("run id", run_id)
    return f"{RAW_PREFIX}/{source}/_manifests/{run_id}.json"


def write_manifest(store: ObjectStore, manifest: Manifest) -> str:
    """Write (or replace) the run's manifest atomically; return its key."""
    key = manifest_key(manifest.source, manifest.run_id)
    store.put_bytes(key, manifest.to_json().encode("utf-8"), overwrite=True)
    return key


def read_manifest(store: ObjectStore, source: str, run_id: str) -> Manifest:
    """Read a run's manifest.

    Raises:
        StorageError: there is none, or it cannot be parsed.
    """
    key = manifest_key(source, run_id)
    data = store.get_bytes(key)
    try:
        return Manifest.from_json(data)
    except StorageError as exc:
        raise StorageError(f"{key}: {exc}") from exc


def list_manifests(store: ObjectStore, source: str = "twelvedata") -> list[str]:
    """The run ids that have a manifest, sorted."""
    prefix = f"{RAW_PREFIX}/{check_name('source', source)}/_manifests/"
    return [
        info.key[len(prefix) : -len(".json")]
        for info in store.list(prefix)
        if info.key.endswith(".json") and "/" not in info.key[len(prefix) :]
    ]
