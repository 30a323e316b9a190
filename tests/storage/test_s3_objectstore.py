"""S3Store against an S3-compatible server (moto) on loopback."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from dataflow.config import load_settings
from dataflow.errors import StorageError
from dataflow.storage import (
    RawWriter,
    S3Store,
    iter_envelopes,
    list_raw,
    make_envelope,
    open_store,
    read_manifest,
    write_manifest,
)
from dataflow.storage.manifest import Manifest

pytestmark = pytest.mark.s3


def test_raw_writer_and_manifest_on_s3(st_s3: S3Store) -> None:
    day = dt.date(2024, 5, 1)
    writer = RawWriter(st_s3, source="twelvedata", run_id="s3run", max_lines=2, ingest_date=day)
    envelopes = [
        make_envelope(
            source="twelvedata",
            endpoint="price",
            path="/price",
            params={"symbol": symbol},
            status_code=200,
            headers={},
            body=f'{{"price":"{n}.5"}}',
            received_at=dt.datetime(2024, 5, 1, tzinfo=dt.UTC),
            run_id="s3run",
            request_id=f"q{n}",
            symbols=[symbol],
        )
        for n, symbol in enumerate(["AAPL", "MSFT", "IBM"])
    ]
    assert writer.add(envelopes[0]) is None
    first = writer.add(envelopes[1])
    assert first is not None
    writer.add(envelopes[2])
    [second] = writer.flush()
    assert [list(iter_envelopes(st_s3, f.key)) for f in (first, second)] == [
        envelopes[:2],
        envelopes[2:],
    ]
    assert [(i.endpoint, i.seq) for i in list_raw(st_s3)] == [("price", 1), ("price", 2)]
    manifest = Manifest(run_id="s3run", source="twelvedata", started_at=dt.datetime.now(dt.UTC))
    manifest.record_files(writer.files)
    write_manifest(st_s3, manifest)
    write_manifest(st_s3, manifest)
    assert read_manifest(st_s3, "twelvedata", "s3run").files == writer.files


def test_errors_do_not_leak_secrets(st_moto_url: str, tmp_path: Path) -> None:
    settings = load_settings(
        tmp_path,
        overrides={
            "warehouse": "s3://no-such-bucket/wh",
            "storage.s3.endpoint_url": st_moto_url,
            "storage.s3.access_key_id": "AKIDLEAKCHECK",
            "storage.s3.secret_access_key": "very-secret-value",
            "storage.s3.region": "us-east-1",
        },
        env={},
    )
    store = open_store(settings)
    with pytest.raises(StorageError) as caught:
        store.put_bytes("raw/x", b"x")
    message = str(caught.value)
    assert "very-secret-value" not in message
    assert "AKIDLEAKCHECK" not in message
    assert "s3://no-such-bucket/wh" in message
