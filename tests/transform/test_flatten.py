"""The relation ``raw``: envelopes described in Python, records exploded in SQL."""

from __future__ import annotations

import datetime as dt
import itertools
import json

from dataflow.config import Settings
from dataflow.engines.duckdb import DuckDBEngine
from dataflow.storage import ObjectStore, list_raw
from dataflow.transform.flatten import flatten_files
from dataflow.transform.raw_view import RAW_SCHEMA, raw_relation

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


def test_big_record_lists_are_counted_without_parsing_them_and_doubt_parses_all(
    tf_settings: Settings, tf_store: ObjectStore
) -> None:
    from dataflow.transform.flatten import SKELETON_MIN_BYTES, _parse, _Records

    bar = {"datetime": "2024-05-01 12:00:00", "open": "1.5", "close": "2"}
    many = SKELETON_MIN_BYTES // 40 + 10  # enough bars for the line to take the fast path
    plain = {"meta": {"symbol": "A"}, "values": [bar] * many, "status": "ok"}
    tricky = {"meta": {"symbol": "B"}, "values": [{**bar, "note": "x],[{y"}] * many}
    nested = {"meta": {"symbol": "C"}, "values": [{**bar, "extra": {"k": 1}}] * many}
    after = {"values": [bar] * many, "meta": {"symbol": "D"}, "status": "ok"}
    cases = ((plain, True), (tricky, False), (nested, False), (after, True))
    for (payload, fast), spaced in itertools.product(cases, (False, True)):
        # RawWriter writes compact JSON; spaced-out JSON takes the whole parse.
        separators = (", ", ": ") if spaced else (",", ":")
        line = json.dumps({"status_code": 200, "payload": payload}, separators=separators)
        line = line.encode()
        assert len(line) >= SKELETON_MIN_BYTES
        parsed = _parse(line)
        assert isinstance(parsed["payload"]["values"], _Records) is (fast and not spaced)
        assert len(parsed["payload"]["values"]) == many
        assert {k: v for k, v in parsed["payload"].items() if k != "values"} == {
            k: v for k, v in payload.items() if k != "values"
        }
    land(tf_store, "big", [plain, tricky, nested, after], received_at=T0, run_id="r1",
         params={"symbol": "P", "timezone": "UTC"})  # fmt: skip
    batch, stats = flatten_files(tf_store, list_raw(tf_store, endpoint="big"))
    assert (stats.envelopes, stats.records, stats.empty) == (4, 4 * many, 0)
    with DuckDBEngine() as engine, raw_relation(engine, batch):
        counted = engine.sql(
            "SELECT symbol, count(*) AS n, count(DISTINCT _record_path) AS paths FROM raw "
            "GROUP BY symbol ORDER BY symbol"
        ).to_pylist()
    assert counted == [{"symbol": s, "n": many, "paths": many} for s in "ABCD"]


def test_typed_records_read_as_the_json_text_does(
    tf_settings: Settings, tf_store: ObjectStore
) -> None:
    # A model declaring `-- record:` / `-- meta:` reads rec.<field> / meta_rec.<field>: the same
    # rows, lineage and symbols as the JSON text path, each field the value of `->>`.
    payloads = [
        [{"symbol": "X", "v": 1}, 7, {"symbol": 5, "v": None}, {"symbol": "A,B", "v": [1, 2]}],
        {'A"B': {"values": [{"v": 2}]}, "C": {"values": [{"v": {"n": 3}, "symbol": "Z"}]}},
        {"meta": {"symbol": "M", "interval": "1h"}, "values": [{"v": "1.50"}, {"w": 1}]},
        {"symbol": "Q", "v": 0.0000012, "status": "ok"},  # snapshot: written inline
    ]
    land(tf_store, "misc", payloads, received_at=T0, run_id="r1", params={"symbol": "P"})
    batch, _ = flatten_files(tf_store, list_raw(tf_store, endpoint="misc"))
    lineage = "_raw_key, _raw_line, _record_path, _run_id, _received_at, symbol, _tz"
    order = "ORDER BY _raw_line, _record_path"
    with DuckDBEngine() as engine:
        with raw_relation(engine, batch):
            text = engine.sql(
                f"SELECT {lineage}, record ->> 'v' AS v, record ->> 'symbol' AS s, "
                f"meta ->> 'interval' AS i FROM raw {order}"
            ).to_pylist()
        with raw_relation(engine, batch, record_fields=["v", "symbol"], meta_fields=["interval"]):
            typed = engine.sql(
                f"SELECT {lineage}, rec.v AS v, rec.symbol AS s, meta_rec.interval AS i "
                f"FROM raw {order}"
            ).to_pylist()
            assert "record" not in engine.sql("SELECT * FROM raw LIMIT 0").column_names
    assert len(typed) == len(text) == 9
    for got, want in zip(typed, text, strict=True):
        if got["v"] is not None and want["v"] is not None and got["v"] != want["v"]:
            assert float(got["v"]) == float(want["v"])  # a JSON number's text may differ
            got["v"] = want["v"]
        assert got == want
    assert [r["symbol"] for r in typed] == ["X", "P", "P", "P", 'A"B', "C", "M", "M", "Q"]


def test_quarantine_reads_record_text_under_a_typed_model(
    tf_settings: Settings, tf_store: ObjectStore
) -> None:
    from dataflow.transform.models import builtin_models
    from dataflow.transform.writer import quarantine_rows, split_rows

    model = builtin_models()["time_series"]
    assert model.record_fields
    assert model.meta_fields
    bars = [
        {"datetime": "2024-05-01 12:00:00", "open": "1", "close": "N/A"},
        {"datetime": "2024-05-01 12:01:00", "open": "1", "close": "2"},
    ]
    land(
        tf_store, "time_series", [{"meta": {"symbol": "S", "interval": "1min"}, "values": bars}],
        received_at=T0, run_id="r1", params={"timezone": "UTC"},
    )  # fmt: skip
    batch, _ = flatten_files(tf_store, list_raw(tf_store, endpoint="time_series"))
    with (
        DuckDBEngine() as engine,
        raw_relation(
            engine, batch, record_fields=model.record_fields, meta_fields=model.meta_fields
        ),
    ):
        good, rejected = split_rows(model, engine.sql(model.sql))
        rows = quarantine_rows(model, rejected, engine, "r2").to_pylist()
    assert good.num_rows == 1
    (row,) = rows
    assert row["reason"] == "close is not a number: N/A"
    assert (row["_record_path"], row["symbol"]) == ("values[0]", "S")
    assert json.loads(row["record"]) == bars[0]
