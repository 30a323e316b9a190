"""Job bookmarks committed with the data: which raw files a table has consumed.

Glue keeps job bookmarks beside the job, so a crash between writing data and saving the
bookmark re-applies or loses files. Here the bookmark travels in the same Iceberg commit as the
rows: before committing, the writer stores the full set of consumed raw keys in a small gzip JSON
file next to the table's metadata, and the commit's snapshot summary points at it
(``dataflow.bookmark``). Until the catalog commit succeeds, nothing references the new file,
so a crash leaves the old bookmark — and the old rows — in force.

Snapshots written by other tools (compaction, manual fixes) carry no pointer; the bookmark is
then found on the nearest ancestor that has one.

Example:
    >>> BOOKMARK_PROPERTY
    'dataflow.bookmark'
"""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING

from dataflow.errors import StorageError

if TYPE_CHECKING:
    from pyiceberg.table import Table

BOOKMARK_PROPERTY = "dataflow.bookmark"
"""Snapshot-summary property: the location of the bookmark file of this commit."""
FILES_PROPERTY = "dataflow.bookmark.files"
"""Snapshot-summary property: how many raw files the table has consumed (for humans)."""
RUN_PROPERTY = "dataflow.run_id"
"""Snapshot-summary property: the run that made the commit."""
BOOKMARK_VERSION = 1


def bookmark_location(table: Table) -> str | None:
    """The bookmark file of the table's current state, or None (never transformed).

    Example:
        >>> bookmark_location(table)  # doctest: +SKIP
        'file:///wh/iceberg/market/time_series/metadata/dataflow-bookmark-….jsongz'
    """
    from pyiceberg.table.snapshots import ancestors_of

    current = table.current_snapshot()
    if current is None:
        return None
    for snapshot in ancestors_of(current, table.metadata):
        summary = snapshot.summary
        if summary is not None and summary.get(BOOKMARK_PROPERTY):
            return summary[BOOKMARK_PROPERTY]
    return None


def read_bookmark(table: Table) -> set[str]:
    """The raw keys the table has consumed.

    Raises:
        StorageError: the bookmark file a snapshot points at cannot be read.

    Example:
        >>> key = "raw/twelvedata/quote/ingest_date=2024-05-01/r1-00001.jsonl.gz"
        >>> key in read_bookmark(table)  # doctest: +SKIP
        True
    """
    location = bookmark_location(table)
    if location is None:
        return set()
    try:
        with table.io.new_input(location).open() as stream:
            data = json.loads(gzip.decompress(stream.read()))
    except (OSError, ValueError) as exc:
        raise StorageError(
            f"table {'.'.join(table.name())}: bookmark {location} cannot be read ({exc}) — "
            "run `dataflow transform --full-refresh` for this table to rebuild it from raw"
        ) from exc
    return set(data.get("files", []))


def write_bookmark(table: Table, files: Iterable[str], *, run_id: str) -> str:
    """Write a bookmark file (not yet referenced by any snapshot) and return its location.

    Example:
        >>> write_bookmark(table, ["raw/…"], run_id="r1")  # doctest: +SKIP
        'file:///…/metadata/dataflow-bookmark-….jsongz'
    """
    # Not "*.json.gz": PyArrow's file IO would gzip (and gunzip) such names a second time.
    folder = f"{table.location().rstrip('/')}/metadata"
    location = f"{folder}/dataflow-bookmark-{uuid.uuid4().hex}.jsongz"
    body = {"version": BOOKMARK_VERSION, "run_id": run_id, "files": sorted(set(files))}
    data = gzip.compress(json.dumps(body, separators=(",", ":")).encode("utf-8"), mtime=0)
    try:
        with table.io.new_output(location).create(overwrite=False) as stream:
            stream.write(data)
    except OSError as exc:
        raise StorageError(f"cannot write the transform bookmark {location} ({exc})") from exc
    return location


def snapshot_properties(location: str, files: int, run_id: str) -> dict[str, str]:
    """The summary properties of a transform commit.

    Example:
        >>> snapshot_properties("file:///b.jsongz", 3, "r1")["dataflow.bookmark.files"]
        '3'
    """
    return {BOOKMARK_PROPERTY: location, FILES_PROPERTY: str(files), RUN_PROPERTY: run_id}


__all__ = [
    "BOOKMARK_PROPERTY",
    "FILES_PROPERTY",
    "RUN_PROPERTY",
    "bookmark_location",
    "read_bookmark",
    "snapshot_properties",
    "write_bookmark",
]
