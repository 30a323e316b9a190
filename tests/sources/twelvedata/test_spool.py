"""The ingest spool: answers left by a killed run land once, exactly as the live ingest would
have written them, and the watermarks they earned advance."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from dataflow.metadata import WatermarkKey, WatermarkStore, open_metadata
from dataflow.sources.twelvedata.spool import Spool, read_spool, recover
from dataflow.storage import RawWriter, iter_envelopes, list_raw, make_envelope
from dataflow.storage.objectstore import LocalStore

WHEN = dt.datetime(2026, 9, 1, 20, 30, 0, 123456, tzinfo=dt.UTC)


def sp_answer(n: int, body: bytes) -> tuple[dict[str, Any], bytes]:
    fields = {
        "source": "twelvedata", "endpoint": "quote", "path": "/quote",
        "params": {"symbol": f"S{n}"}, "status_code": 200,
        "headers": {"api-credits-used": "1"}, "received_at": WHEN + dt.timedelta(seconds=n),
        "run_id": "dead-run", "request_id": f"req{n}", "symbols": [f"S{n}"],
    }  # fmt: skip
    return fields, body


def sp_live(fields: dict[str, Any], body: bytes, decoded: str | None) -> dict[str, Any]:
    """The envelope the live ingest writes for this answer."""
    parsed: dict[str, Any] = {}
    if decoded == "json":
        parsed = {"parsed": json.loads(body)}
    elif decoded == "none":
        parsed = {"parsed": None}
    return make_envelope(body=body, **fields, **parsed)


def sp_spool(spool: Spool, fields: dict[str, Any], body: bytes, decoded: str | None) -> int:
    kept = {**fields, "received_at": fields["received_at"].isoformat(), "parsed": decoded}
    return spool.response(kept, body)


def sp_landed(store: LocalStore) -> list[dict[str, Any]]:
    return [env for info in list_raw(store) for env in iter_envelopes(store, info.key)]


def test_a_dead_runs_answers_land_once_as_the_live_ingest_would_write_them(
    tmp_path: Path,
) -> None:
    store = LocalStore(str(tmp_path / "wh"))
    folder = tmp_path / "spool"
    answers = [
        (*sp_answer(0, b'{"symbol":"S0","price":"1.5"}'), "json"),
        (*sp_answer(1, b"<html>502 Bad Gateway</html>"), "none"),
        (*sp_answer(2, b'{"symbol":"S2","close":NaN}'), None),
        (*sp_answer(3, b'{"symbol":"S3","price":"3.5"}'), "json"),
    ]
    spool = Spool.open(folder, "dead-run")
    numbers = [sp_spool(spool, f, b, d) for f, b, d in answers]
    # answer 0 made it into a raw file (and its D record); answer 3 into a file, not its record
    writer = RawWriter(store, source="twelvedata", run_id="dead-run")
    writer.add(sp_live(*answers[0]))
    writer.flush()
    spool.durable([numbers[0]])
    writer.add(sp_live(*answers[3]))
    writer.flush()
    key = WatermarkKey("twelvedata", "quote", "S0")
    spool.advance("dead-run", {key: WHEN})
    spool.close(delete=False)
    with (folder / "dead-run.spool").open("ab") as handle:
        handle.write(b'R {"endpoint":"quote","body_len":500}\n{"cut')  # the kill's last write

    marks = WatermarkStore(open_metadata("sqlite://"))
    files = recover(folder, current="new-run", store=store, source="twelvedata", marks=marks)

    assert len(files) == 1
    landed = sp_landed(store)
    expected = [sp_live(*answer) for answer in answers]
    assert sorted(landed, key=lambda e: e["request_id"]) == expected, "each answer exactly once"
    assert marks.get(key) == WHEN
    assert not list(folder.glob("*.spool")), "a recovered spool is deleted"
    assert recover(folder, current="new-run", store=store, source="twelvedata", marks=marks) == []


def test_the_current_runs_spool_is_left_alone_and_cut_bodies_are_ignored(tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    spool = Spool.open(folder, "live")
    sp_spool(spool, *sp_answer(0, b'{"price":"1"}'), "json")
    spool.close(delete=False)
    store = LocalStore(str(tmp_path / "wh"))
    marks = WatermarkStore(open_metadata("sqlite://"))
    assert recover(folder, current="live", store=store, source="twelvedata", marks=marks) == []
    assert (folder / "live.spool").exists()

    data = (folder / "live.spool").read_bytes()
    (folder / "live.spool").write_bytes(data[:-5])  # the body cut short
    cut = read_spool(folder / "live.spool")
    assert (cut.answers, cut.pending) == (0, [])
