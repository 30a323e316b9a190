"""Envelopes, raw-zone keys, the buffered writer and reading raw files back."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from dataflow.errors import ConfigError, StorageError
from dataflow.storage import (
    LocalStore,
    RawWriter,
    iter_envelopes,
    list_raw,
    make_envelope,
    raw_key,
)
from dataflow.storage.raw import encode_envelope

DAY = dt.date(2024, 5, 1)
WHEN = dt.datetime(2024, 5, 1, 13, 30, 5, 123456, tzinfo=dt.UTC)


def envelope(
    endpoint: str = "quote", n: int = 1, body: bytes | str | None = None
) -> dict[str, Any]:
    return make_envelope(
        source="twelvedata",
        endpoint=endpoint,
        path=f"/{endpoint}",
        params={"symbol": f"S{n}", "interval": "1day"},
        status_code=200,
        headers={"api-credits-used": "1"},
        body=body if body is not None else json.dumps({"symbol": f"S{n}", "close": "1.5"}),
        received_at=WHEN,
        run_id="run1",
        request_id=f"q{n}",
        symbols=[f"S{n}"],
    )


def test_envelope_fields() -> None:
    env = make_envelope(
        source="twelvedata",
        endpoint="time_series",
        path="/time_series",
        params={"symbol": "AAPL", "interval": "1day", "start_date": dt.date(2024, 1, 2)},
        status_code=200,
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "Api-Credits-Used": "1",
            "api-credits-left": "7",
            "Set-Cookie": "session=abc",
        },
        body=b'{"meta":{"symbol":"AAPL"},"values":[],"status":"ok"}',
        received_at=dt.datetime(2024, 5, 1, 15, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        run_id="run1",
        request_id="q1",
        symbols=("AAPL",),
    )
    assert env == {
        "envelope_version": 1,
        "source": "twelvedata",
        "endpoint": "time_series",
        "run_id": "run1",
        "request_id": "q1",
        "request": {
            "path": "/time_series",
            "params": {"symbol": "AAPL", "interval": "1day", "start_date": "2024-01-02"},
        },
        "symbols": ["AAPL"],
        "status_code": 200,
        "received_at": "2024-05-01T13:30:00.000000Z",
        "headers": {
            "api-credits-used": "1",
            "api-credits-left": "7",
            "content-type": "application/json; charset=utf-8",
        },
        "payload_format": "json",
        "payload": {"meta": {"symbol": "AAPL"}, "values": [], "status": "ok"},
    }


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"<html><body>502 Bad Gateway</body></html>", "<html><body>502 Bad Gateway</body></html>"),
        (b"", ""),
        (b'{"price": NaN}', '{"price": NaN}'),
        (b'{"truncated": [1, 2', '{"truncated": [1, 2'),
        ("plain str body", "plain str body"),
    ],
)
def test_non_json_bodies_are_kept_as_text(body: bytes | str, expected: str) -> None:
    env = envelope(body=body)
    assert env["payload_format"] == "text"
    assert env["payload"] == expected


def test_the_api_key_is_written_nowhere(st_store: LocalStore, st_fake_key: str) -> None:
    FAKE_KEY = st_fake_key
    env = make_envelope(
        source="twelvedata",
        endpoint="quote",
        path=f"/quote?symbol=AAPL&apikey={FAKE_KEY}",
        params={"APIKEY": FAKE_KEY, "api_key": FAKE_KEY, "ApiKey": FAKE_KEY, "symbol": "AAPL"},
        status_code=401,
        headers={"Authorization": f"apikey {FAKE_KEY}", "X-Api-Key": FAKE_KEY},
        body=b'{"code":401,"message":"**apikey** parameter is incorrect","status":"error"}',
        received_at=WHEN,
        run_id="run1",
        request_id="q1",
    )
    assert env["request"] == {"path": "/quote", "params": {"symbol": "AAPL"}}
    writer = RawWriter(st_store, source="twelvedata", run_id="run1", ingest_date=DAY)
    writer.add(env)
    [raw_file] = writer.flush()
    stored = gzip.decompress(st_store.get_bytes(raw_file.key))
    assert FAKE_KEY.encode() not in stored
    assert b"AAPL" in stored  # the check above would be vacuous if nothing was stored


def test_raw_key_layout_and_name_checks() -> None:
    assert (
        raw_key("twelvedata", "time_series", DAY, "20240501T120000Z-ab12", 7)
        == "raw/twelvedata/time_series/ingest_date=2024-05-01/20240501T120000Z-ab12-00007.jsonl.gz"
    )
    for bad in ["time_series/cross", "", "../x", "_manifests", "a b"]:
        with pytest.raises(ConfigError, match="cannot name a raw-zone folder"):
            raw_key("twelvedata", bad, DAY, "run1", 1)


def test_writer_flushes_at_max_lines(st_store: LocalStore) -> None:
    writer = RawWriter(st_store, source="twelvedata", run_id="run1", max_lines=3, ingest_date=DAY)
    assert writer.add(envelope(n=1)) is None
    assert writer.add(envelope(n=2)) is None
    assert st_store.list() == [], "nothing is written before a threshold or flush"
    written = writer.add(envelope(n=3))
    assert written is not None
    assert written.lines == 3
    assert written.request_ids == ["q1", "q2", "q3"]
    assert written.key == "raw/twelvedata/quote/ingest_date=2024-05-01/run1-00001.jsonl.gz"
    assert written.bytes == st_store.list()[0].size
    assert writer.pending == 0
    assert writer.add(envelope(n=4)) is None
    assert writer.pending == 1
    [second] = writer.flush()
    assert second.key.endswith("run1-00002.jsonl.gz")
    assert writer.files == [written, second]
    assert writer.flush() == []


def test_writer_flushes_at_max_bytes(st_store: LocalStore) -> None:
    big = json.dumps({"values": ["x" * 1000]})
    line = len(encode_envelope(envelope(body=big)))
    assert line > 1000
    writer = RawWriter(st_store, source="twelvedata", run_id="run1", max_bytes=line * 5 // 2)
    assert writer.add(envelope(body=big, n=1)) is None
    assert writer.add(envelope(body=big, n=2)) is None
    written = writer.add(envelope(body=big, n=3))
    assert written is not None
    assert written.lines == 3
    # One envelope larger than the limit still makes a (one-line) file.
    single = RawWriter(st_store, source="twelvedata", run_id="run2", max_bytes=10)
    result = single.add(envelope(n=1))
    assert result is not None
    assert result.lines == 1


def test_writer_buffers_per_endpoint(st_store: LocalStore) -> None:
    writer = RawWriter(st_store, source="twelvedata", run_id="run1", ingest_date=DAY)
    writer.add(envelope("quote", 1))
    writer.add(envelope("price", 2))
    writer.add(envelope("quote", 3))
    [price] = writer.flush("price")
    assert (price.endpoint, price.lines) == ("price", 1)
    assert writer.pending == 2
    [quote] = writer.flush()
    assert (quote.endpoint, quote.lines, quote.request_ids) == ("quote", 2, ["q1", "q3"])
    infos = list_raw(st_store)
    assert [(i.endpoint, i.run_id, i.seq, i.ingest_date) for i in infos] == [
        ("price", "run1", 1, DAY),
        ("quote", "run1", 2, DAY),
    ]
    assert [i.key for i in list_raw(st_store, endpoint="quote")] == [quote.key]


def test_writer_rejects_foreign_envelopes(st_store: LocalStore) -> None:
    writer = RawWriter(st_store, source="other", run_id="run1")
    with pytest.raises(ValueError, match="does not belong"):
        writer.add(envelope())


def test_round_trip_and_reproducible_bytes(tmp_path: Path) -> None:
    envelopes = [envelope(n=n) for n in range(5)]
    envelopes.append(envelope(body="Ünïcødé text 💹", n=99))
    keys_and_bytes = []
    for name in ("a", "b"):
        store = LocalStore(tmp_path / name)
        writer = RawWriter(store, source="twelvedata", run_id="run1", ingest_date=DAY)
        for env in envelopes:
            writer.add(env)
        [raw_file] = writer.flush()
        assert list(iter_envelopes(store, raw_file.key)) == envelopes
        keys_and_bytes.append((raw_file.key, store.get_bytes(raw_file.key), raw_file.sha256))
    assert keys_and_bytes[0] == keys_and_bytes[1], "same envelopes must give identical files"
    assert keys_and_bytes[0][1][4:8] == b"\0\0\0\0", "gzip header mtime must be 0"
    line = gzip.decompress(keys_and_bytes[0][1]).splitlines()[0]
    assert b", " not in line
    assert b": " not in line  # compact separators


def test_a_resumed_run_never_overwrites(st_store: LocalStore) -> None:
    first = RawWriter(st_store, source="twelvedata", run_id="run1", ingest_date=DAY)
    first.add(envelope(n=1))
    [old] = first.flush()
    before = st_store.get_bytes(old.key)
    again = RawWriter(st_store, source="twelvedata", run_id="run1", ingest_date=DAY)
    again.add(envelope(n=2))
    [new] = again.flush()
    assert new.key != old.key
    assert new.key.endswith("run1-00002.jsonl.gz")
    assert st_store.get_bytes(old.key) == before


def test_iter_envelopes_reports_corrupt_files(st_store: LocalStore) -> None:
    st_store.put_bytes("raw/twelvedata/quote/ingest_date=2024-05-01/x-00001.jsonl.gz", b"nope")
    with pytest.raises(StorageError, match="not a readable gzip"):
        list(
            iter_envelopes(st_store, "raw/twelvedata/quote/ingest_date=2024-05-01/x-00001.jsonl.gz")
        )
    st_store.put_bytes("bad.jsonl.gz", gzip.compress(b'{"a":1}\n[1,2\n'))
    with pytest.raises(StorageError, match=r"bad.jsonl.gz:2"):
        list(iter_envelopes(st_store, "bad.jsonl.gz"))


def test_list_raw_skips_manifests_and_strays(st_store: LocalStore) -> None:
    st_store.put_bytes("raw/twelvedata/_manifests/run1.json", b"{}")
    st_store.put_bytes("raw/twelvedata/quote/README.txt", b"hi")
    st_store.put_bytes("raw/twelvedata/quote/ingest_date=2024-13-45/r-00001.jsonl.gz", b"x")
    st_store.put_bytes(
        "raw/twelvedata/quote/ingest_date=2024-05-01/import-x-1a2b-00003.jsonl.gz", b"x"
    )
    [info] = list_raw(st_store)
    assert (info.endpoint, info.run_id, info.seq, info.size) == ("quote", "import-x-1a2b", 3, 1)
