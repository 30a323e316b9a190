"""Commit attempts a crash cut short: recognise their files and remove them, and only them.

An upsert writes its Parquet data files (and pyiceberg its manifests) *before* the catalog
commit that makes them part of a snapshot. A process killed in between leaves files no snapshot
references, forever. So, before the first data file of a snapshot producer is written,
:func:`mark` records the producer's ``commit_uuid`` in a small marker file
(``<table>/metadata/dataflow-attempts/<commit_uuid>.json``); :func:`finish` removes the markers
once the commit has landed. Every file of the attempt carries the ``commit_uuid`` in its name
(data files ``00000-<task>-<commit_uuid>-<n>.parquet``, manifests ``<commit_uuid>-m<n>.avro``,
the manifest list ``snap-<id>-<n>-<commit_uuid>.avro``).

:func:`recover`, run before each write under the project lock, looks at the markers left
behind: an attempt whose ``commit_uuid`` appears in the manifest list of a snapshot of the
table committed (the crash came after the commit), and only its marker goes; any other
attempt never committed, and the files of its ``commit_uuid`` are deleted. Files a committed
snapshot references are never touched: they carry another snapshot producer's uuid.

Example:
    >>> marker_folder("file:///wh/iceberg/market/t")
    'file:///wh/iceberg/market/t/metadata/dataflow-attempts'
"""

from __future__ import annotations

import json
import logging
import time
import uuid
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyiceberg.io import FileIO
    from pyiceberg.table import Table, Transaction

log = logging.getLogger("dataflow.engines.duckdb")

_PENDING: weakref.WeakKeyDictionary[Any, list[str]] = weakref.WeakKeyDictionary()
"""Markers written for each open transaction (removed by :func:`finish`)."""


def marker_folder(location: str) -> str:
    """Where the markers of the table at ``location`` live."""
    return f"{location.rstrip('/')}/metadata/dataflow-attempts"


def mark(txn: Transaction, commit_uuid: uuid.UUID) -> None:
    """Record that ``txn`` is about to write files named with ``commit_uuid`` (once each)."""
    location = f"{marker_folder(txn.table_metadata.location)}/{commit_uuid}.json"
    pending = _PENDING.setdefault(txn, [])
    if location in pending:
        return
    body = json.dumps({"commit_uuid": str(commit_uuid), "started_ms": int(time.time() * 1000)})
    with txn._table.io.new_output(location).create(overwrite=True) as stream:
        stream.write(body.encode())
    pending.append(location)


def finish(txn: Transaction, io: FileIO) -> None:
    """Remove the markers of ``txn``, whose commit has landed."""
    for location in _PENDING.pop(txn, []):
        try:
            io.delete(location)
        except OSError:  # pragma: no cover - the next recover() removes it
            log.debug("cannot remove attempt marker %s", location)


def _listing(io: FileIO, folder: str, *, recursive: bool) -> list[str]:
    """Paths (with the folder's scheme) of the files under ``folder``; [] when absent."""
    from urllib.parse import urlparse

    from pyarrow.fs import FileSelector, FileType

    parsed = urlparse(folder)
    scheme = parsed.scheme or "file"
    fs_for = getattr(io, "fs_by_scheme", None)
    if fs_for is None:  # pragma: no cover - an fsspec FileIO: markers stay, files too
        return []
    fs = fs_for(scheme, parsed.netloc)
    root = parsed.path if scheme == "file" else f"{parsed.netloc}{parsed.path}"
    try:
        infos = fs.get_file_info(FileSelector(root, recursive=recursive, allow_not_found=True))
    except (OSError, FileNotFoundError):
        return []
    prefix = f"{scheme}://" if scheme != "file" else "file://"
    return [prefix + info.path for info in infos if info.type == FileType.File]


def recover(table: Table) -> int:
    """Delete the files of attempts on ``table`` that never committed; return how many.

    Call it only while holding the project's lock (no other writer is mid-attempt).
    """
    io = table.io
    location = table.metadata.location.rstrip("/")
    markers = [
        path
        for path in _listing(io, marker_folder(location), recursive=False)
        if path.endswith(".json")
    ]
    if not markers:
        return 0
    lists = [snapshot.manifest_list or "" for snapshot in table.metadata.snapshots]
    files: list[str] | None = None
    removed = 0
    for marker in markers:
        attempt = marker.rsplit("/", 1)[1].removesuffix(".json")
        if not any(attempt in manifest_list for manifest_list in lists):
            if files is None:
                files = _listing(io, f"{location}/data", recursive=True) + _listing(
                    io, f"{location}/metadata", recursive=False
                )
            for path in files:
                if attempt in path.rsplit("/", 1)[1]:
                    io.delete(path)
                    removed += 1
        io.delete(marker)
    if removed:
        log.info("table %s: removed %d file(s) of an interrupted commit", table.name(), removed)
    return removed


__all__ = ["finish", "mark", "marker_folder", "recover"]
