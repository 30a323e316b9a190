"""Run manifests: JSON round trip, in-place updates, resume bookkeeping."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from dataflow.errors import StorageError
from dataflow.storage import (
    LocalStore,
    Manifest,
    RawFile,
    RequestRecord,
    list_manifests,
    manifest_key,
    read_manifest,
    write_manifest,
)

STARTED = dt.datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=dt.UTC)


def sample_manifest() -> Manifest:
    return Manifest(
        run_id="20240501T120000Z-ab12",
        source="twelvedata",
        started_at=STARTED,
        finished_at=STARTED + dt.timedelta(seconds=42),
        status="partial",
        requests=[
            RequestRecord(
                request_id="q1",
                endpoint="time_series",
                path="/time_series",
                params={"symbol": "AAPL,MSFT", "interval": "1day", "outputsize": 30},
                symbols=["AAPL", "MSFT"],
                outcome="partial",
                status_code=200,
                error="1 of 2 symbols failed: **symbol** not found",
                credits=2,
                attempts=2,
                file="raw/twelvedata/time_series/ingest_date=2024-05-01/r-00001.jsonl.gz",
                rows=30,
            ),
            RequestRecord(
                request_id="q2",
                endpoint="quote",
                path="/quote",
                symbols=["IBM"],
                outcome="skipped",
                error="daily credit budget spent",
            ),
        ],
        files=[
            RawFile(
                key="raw/twelvedata/time_series/ingest_date=2024-05-01/r-00001.jsonl.gz",
                endpoint="time_series",
                lines=1,
                bytes=812,
                request_ids=["q1"],
                sha256="ab" * 32,
            )
        ],
    )


def test_json_round_trip() -> None:
    manifest = sample_manifest()
    text = manifest.to_json()
    data = json.loads(text)
    assert data["started_at"] == "2024-05-01T12:00:00.250000Z"
    assert data["manifest_version"] == 1
    assert Manifest.from_json(text) == manifest
    assert Manifest.from_json(text.encode()) == manifest


def test_write_read_and_update_in_place(st_store: LocalStore) -> None:
    manifest = sample_manifest()
    key = write_manifest(st_store, manifest)
    assert key == "raw/twelvedata/_manifests/20240501T120000Z-ab12.json"
    assert key == manifest_key("twelvedata", manifest.run_id)
    assert read_manifest(st_store, "twelvedata", manifest.run_id) == manifest
    manifest.status = "succeeded"
    assert write_manifest(st_store, manifest) == key  # a run rewrites its own manifest
    assert read_manifest(st_store, "twelvedata", manifest.run_id).status == "succeeded"
    assert list_manifests(st_store) == ["20240501T120000Z-ab12"]


def test_done_request_ids_and_record_files() -> None:
    manifest = Manifest(run_id="r", source="twelvedata", started_at=STARTED)
    manifest.requests = [
        RequestRecord(request_id=rid, endpoint="quote", path="/quote") for rid in "abc"
    ]
    assert manifest.done_request_ids() == set()
    raw_file = RawFile(key="raw/k", endpoint="quote", lines=2, bytes=10, request_ids=["a", "b"])
    manifest.record_files([raw_file])
    manifest.record_files([raw_file])  # idempotent
    assert manifest.files == [raw_file]
    assert [r.file for r in manifest.requests] == ["raw/k", "raw/k", None]
    manifest.requests[1].outcome = "error"
    assert manifest.done_request_ids() == {"a"}


def test_unreadable_manifests(st_store: LocalStore) -> None:
    with pytest.raises(StorageError, match="no such object"):
        read_manifest(st_store, "twelvedata", "missing")
    st_store.put_bytes(manifest_key("twelvedata", "broken"), b'{"run_id": "broken"}')
    with pytest.raises(StorageError, match="not a run manifest"):
        read_manifest(st_store, "twelvedata", "broken")
