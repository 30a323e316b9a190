"""The relation ``raw``: envelopes described in Python, records exploded in SQL."""

from __future__ import annotations

import datetime as dt
import json

from dataflow.config import Settings
from dataflow.engines.duckdb import DuckDBEngine
from dataflow.storage import ObjectStore, list_raw
from dataflow.transform.flatten import RAW_SCHEMA, flatten_files, raw_relation

from .conftest import land

T0 = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)


def test_shapes_become_records_with_paths_symbols_and_zones(
    tf_settings: Settings, tf_store: ObjectStore
) -> None:
    payloads = [
        [{"symbol": "X", "v": 1}, 7],  # bare list: a record's own symbol wins
        {'A"B': {"values": [{"v": 2}]}, "C": {"values": [{"v": 3}]}, "D": {"code": 404}},
        {"meta": {"symbol": "M", "exchange_timezone": "Nowhere/Zone"}, "values": []},  # empty
        {"symbol": "Q", "price": "1", "status": "ok"},  # snapshot: meta/status dropped
        {"status": "error", "code": 429, "message": "slow down"},  # error envelope
    ]
    key = land(
        tf_store, "misc", payloads, received_at=T0, run_id="r1",
        params={"symbol": "P", "timezone": "Europe/Paris"},
    )  # fmt: skip
    batch, stats = flatten_files(tf_store, list_raw(tf_store, endpoint="misc"))
    assert (stats.envelopes, stats.records, stats.empty) == (5, 5, 1)
    assert (stats.error_envelopes, stats.symbol_errors) == (1, 1)
    with DuckDBEngine() as engine, raw_relation(engine, batch):
        table = engine.sql("SELECT * FROM raw ORDER BY _raw_line, _record_path")
    assert table.schema == RAW_SCHEMA
    rows = [
        (r["_raw_line"], r["_record_path"], r["symbol"], json.loads(r["record"]), r["_tz"])
        for r in table.to_pylist()
    ]
    assert rows == [
        (1, "[0]", "X", {"symbol": "X", "v": 1}, "Europe/Paris"),
        (1, "[1]", "P", 7, "Europe/Paris"),
        (2, 'A"B:values[0]', 'A"B', {"v": 2}, "Europe/Paris"),
        (2, "C:values[0]", "C", {"v": 3}, "Europe/Paris"),
        (4, "", "Q", {"symbol": "Q", "price": "1"}, "Europe/Paris"),
    ]
    first = table.to_pylist()[0]
    assert (first["_raw_key"], first["_run_id"], first["_received_at"]) == (key, "r1", T0)
    assert json.loads(first["params"]) == {"symbol": "P", "timezone": "Europe/Paris"}
