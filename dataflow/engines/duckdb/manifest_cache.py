"""A per-process cache of decoded Iceberg manifest entries, keyed by immutable things only.

One commit decodes the same manifests several times: the upsert's file planning, the overwrite
producer (pyiceberg 0.12 reads every manifest its delete predicate matches twice, once for the
deleted entries and once for the manifests to keep) and, after the run, the freshness check.
Decoding Avro in Python is most of that cost (~1 ms per 20 entries), and a 5M-row table's six
first-load manifests were decoded four times in an incremental run.

A manifest file is never rewritten: a commit that changes one writes a new file under a new
name (a fresh UUID), so its path names its content for good. What pyiceberg adds to the decoded
entries (the snapshot id and sequence numbers they inherit, the spec id) comes from the
manifest-list record, which is part of the key. Manifests not committed yet (sequence number
unassigned) are not cached. So a commit by another process cannot make a cached value stale:
it only adds new paths, which are decoded when first read.

:func:`install` wraps ``ManifestFile.fetch_manifest_entry`` (the one place pyiceberg decodes
entries); it is called by the engine and by file planning, and is idempotent. The cache holds
at most :data:`MAX_ENTRIES` entries (least recently used manifests go first). Callers get a new
list each time; the entries themselves are shared, as pyiceberg never mutates an entry it read
(it copies one to change its status).

Example:
    >>> install()
    >>> install()  # idempotent
    >>> stats()["entries"] >= 0
    True
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyiceberg.io import FileIO
    from pyiceberg.manifest import ManifestEntry, ManifestFile

MAX_ENTRIES = 20_000
"""Most decoded entries kept (a few KB each: ~50-100 MB at most; a 5M-row table has ~360)."""

_Key = tuple[str, int | None, int | None, int]


class _Entries:
    """The cache: decoded entries per manifest, least recently used first."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.manifests: OrderedDict[_Key, tuple[ManifestEntry, ...]] = OrderedDict()
        self.held = 0
        self.hits = 0
        self.misses = 0
        self.original: Any = None

    def get(self, key: _Key) -> tuple[ManifestEntry, ...] | None:
        with self.lock:
            found = self.manifests.get(key)
            if found is not None:
                self.manifests.move_to_end(key)
                self.hits += 1
            return found

    def put(self, key: _Key, entries: tuple[ManifestEntry, ...]) -> None:
        with self.lock:
            self.misses += 1
            if key in self.manifests or len(entries) > MAX_ENTRIES:
                return
            self.manifests[key] = entries
            self.held += len(entries)
            while self.held > MAX_ENTRIES:
                _, dropped = self.manifests.popitem(last=False)
                self.held -= len(dropped)


_entries = _Entries()


def install() -> None:
    """Route pyiceberg's manifest decoding through the cache (once per process)."""
    from pyiceberg.manifest import ManifestFile

    with _entries.lock:
        if _entries.original is not None:
            return
        _entries.original = ManifestFile.fetch_manifest_entry
        ManifestFile.fetch_manifest_entry = _fetch_manifest_entry  # type: ignore[method-assign]


def clear() -> None:
    """Forget every cached manifest (tests; a long-lived process that wants the memory back)."""
    with _entries.lock:
        _entries.manifests.clear()
        _entries.held = _entries.hits = _entries.misses = 0


def stats() -> dict[str, int]:
    """Manifests and entries held, hits and misses since the last :func:`clear`.

    Example:
        >>> sorted(stats())
        ['entries', 'hits', 'manifests', 'misses']
    """
    with _entries.lock:
        return {
            "manifests": len(_entries.manifests),
            "entries": _entries.held,
            "hits": _entries.hits,
            "misses": _entries.misses,
        }


def _key(manifest: ManifestFile) -> _Key | None:
    from pyiceberg.manifest import UNASSIGNED_SEQ

    sequence = manifest.sequence_number
    if sequence is None or sequence == UNASSIGNED_SEQ:
        return None  # not committed yet: what its entries inherit is not final
    return (manifest.manifest_path, manifest.added_snapshot_id, sequence,
            manifest.partition_spec_id)  # fmt: skip


def _fetch_manifest_entry(
    self: ManifestFile, io: FileIO, discard_deleted: bool = True
) -> list[ManifestEntry]:
    """``ManifestFile.fetch_manifest_entry`` through the cache (see the module docstring)."""
    from pyiceberg.manifest import ManifestEntryStatus

    original = _entries.original
    key = _key(self)
    if key is None:
        return list(original(self, io, discard_deleted=discard_deleted))
    found = _entries.get(key)
    if found is None:
        # Decoded outside the lock (pyiceberg decodes manifests in a thread pool): two threads
        # may decode the same manifest once each, both results being equal.
        found = tuple(original(self, io, discard_deleted=False))
        _entries.put(key, found)
    if discard_deleted:
        return [entry for entry in found if entry.status != ManifestEntryStatus.DELETED]
    return list(found)


__all__ = ["MAX_ENTRIES", "clear", "install", "stats"]
