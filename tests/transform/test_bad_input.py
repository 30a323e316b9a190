"""Bad raw input never stops the transform: poison values, offsets, DST, duplicate keys."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dataflow.catalog.iceberg import open_catalog
from dataflow.config import Settings
from dataflow.storage import ObjectStore

from .conftest import SAMPLES, import_sample, land, read_table, transform

T0 = dt.datetime(2026, 12, 7, 12, tzinfo=dt.UTC)
UTC = dt.UTC


def series(symbol: str, values: list[dict[str, Any]], **meta: Any) -> dict[str, Any]:
    return {"meta": {"symbol": symbol, "interval": "1min", **meta}, "values": values}


def bar(when: str, close: Any = "1.5", volume: Any = "10") -> dict[str, Any]:
    return {
        "datetime": when,
        "open": "1",
        "high": "2",
        "low": "1",
        "close": close,
        "volume": volume,
    }


def quarantine(settings: Settings) -> list[dict[str, Any]]:
    table = open_catalog(settings).load_table(("market", "quarantine"))
    return table.scan().to_arrow().to_pylist()


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("volume", "NaN", "volume is not a whole number"),
        ("volume", "1e23", "volume is not a whole number"),
        ("volume", "1e99", "volume is not a whole number"),
        ("close", "NaN", "close is not a finite number"),
        ("close", "Infinity", "close is not a finite number"),
        ("close", "1e999", "close is not a finite number"),
        ("close", "abc", "close is not a number"),
    ],
)
def test_a_poison_value_quarantines_its_row_and_the_rest_lands(
    tf_settings: Settings, tf_store: ObjectStore, field: str, value: str, reason: str
) -> None:
    bad = bar("2026-12-07 10:01:00")
    bad[field] = value
    land(
        tf_store, "time_series",
        [series("AAPL", [bar("2026-12-07 10:00:00"), bad, bar("2026-12-07 10:02:00")])],
        received_at=T0, run_id="r1", params={"timezone": "UTC"},
    )  # fmt: skip

    result = transform(tf_settings, ["time_series"])

    assert result.status == "succeeded", result.results
    rows = read_table(tf_settings, "time_series")
    assert sorted(r["ts"].minute for r in rows) == [0, 2]
    [parked] = quarantine(tf_settings)
    assert reason in parked["reason"]
    assert value in parked["reason"]
    assert parked["_record_path"] == "values[1]"
    # A later run is not blocked either.
    assert transform(tf_settings, ["time_series"]).status == "succeeded"


def test_a_stated_offset_is_that_instant(tf_settings: Settings, tf_store: ObjectStore) -> None:
    land(
        tf_store, "time_series",
        [series("AAPL", [bar("2026-12-07T10:00:00Z"), bar("2026-12-07T10:00:00+05:00"),
                         bar("2026-12-07 10:00:00")],
                exchange_timezone="America/New_York")],
        received_at=T0, run_id="r1",
    )  # fmt: skip

    assert transform(tf_settings, ["time_series"]).status == "succeeded"

    got = sorted(r["ts"] for r in read_table(tf_settings, "time_series"))
    assert got == [
        dt.datetime(2026, 12, 7, 5, tzinfo=UTC),  # +05:00
        dt.datetime(2026, 12, 7, 10, tzinfo=UTC),  # Z
        dt.datetime(2026, 12, 7, 15, tzinfo=UTC),  # naive: New York time
    ]


def minutes(start: dt.datetime, count: int, zone: str) -> list[str]:
    """Local datetimes of ``count`` 1min bars from the UTC instant ``start``, newest first."""
    from zoneinfo import ZoneInfo

    local = ZoneInfo(zone)
    stamps = [(start + dt.timedelta(minutes=i)).astimezone(local) for i in range(count)]
    return [s.strftime("%Y-%m-%d %H:%M:%S") for s in reversed(stamps)]


@pytest.mark.parametrize("order", ["desc", "asc"])
def test_the_repeated_hour_of_a_dst_change_loses_no_bar(
    tf_settings: Settings, tf_store: ObjectStore, order: str
) -> None:
    # 2026-11-01: New York goes from EDT back to EST at 06:00 UTC; 01:00-01:59 happens twice.
    start = dt.datetime(2026, 11, 1, 4, tzinfo=UTC)
    local = minutes(start, 240, "America/New_York")
    assert len(set(local)) == 180  # 60 local times repeat
    values = [bar(when, close=str(i)) for i, when in enumerate(local)]
    if order == "asc":
        values.reverse()
    params = {"symbol": "AAPL", "interval": "1min"} | ({"order": "asc"} if order == "asc" else {})
    land(
        tf_store, "time_series",
        [series("AAPL", values, exchange_timezone="America/New_York")],
        received_at=T0, run_id="r1", params=params,
    )  # fmt: skip

    result = transform(tf_settings, ["time_series"])

    assert result.status == "succeeded"
    rows = read_table(tf_settings, "time_series")
    assert len(rows) == 240
    assert "_fold_ts" not in rows[0]  # a helper column of the model, never stored
    expected = [start + dt.timedelta(minutes=i) for i in range(240)]
    assert sorted(r["ts"] for r in rows) == expected
    # Each bar kept its own values: close i was the i-th listed (newest first).
    by_ts = {r["ts"]: r["close"] for r in rows}
    assert (by_ts[expected[-1]], by_ts[expected[0]]) == (0.0, 239.0)
    assert result.results["transform"].details["quarantined"] == 0


def test_a_time_the_clocks_skip_is_quarantined(
    tf_settings: Settings, tf_store: ObjectStore
) -> None:
    land(
        tf_store, "time_series",
        [series("AAPL", [bar("2026-03-08 02:30:00"), bar("2026-03-08 03:30:00")],
                exchange_timezone="America/New_York")],
        received_at=T0, run_id="r1",
    )  # fmt: skip

    assert transform(tf_settings, ["time_series"]).status == "succeeded"

    [row] = read_table(tf_settings, "time_series")
    assert row["ts"] == dt.datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
    [parked] = quarantine(tf_settings)
    assert "does not exist in America/New_York" in parked["reason"]


def test_same_key_in_one_payload_identical_collapse_different_quarantined(
    tf_settings: Settings, tf_store: ObjectStore
) -> None:
    values = [
        bar("2026-12-07 10:00:00"),
        bar("2026-12-07 10:00:00"),  # identical: collapses, counted
        bar("2026-12-07 09:59:00", close="3"),  # listed first = later in time: quarantined
        bar("2026-12-07 09:59:00", close="2"),  # earlier in time (desc order): kept
    ]
    land(
        tf_store, "time_series", [series("AAPL", values)],
        received_at=T0, run_id="r1", params={"timezone": "UTC"},
    )  # fmt: skip

    result = transform(tf_settings, ["time_series"])

    details = result.results["transform"].details
    stats = details["tables"]["time_series"]
    assert (stats["rows_in"], stats["rows_out"], stats["quarantined"]) == (4, 2, 1)
    assert details["duplicates"] == 1
    rows = {r["ts"].minute: r["close"] for r in read_table(tf_settings, "time_series")}
    assert rows == {0: 1.5, 59: 2.0}
    [parked] = quarantine(tf_settings)
    assert parked["_record_path"] == "values[2]"
    assert "duplicate key" in parked["reason"]
    assert "kept values[3]" in parked["reason"]


def test_eur_usd_sample_repeats_a_day_with_two_bars(
    tf_settings: Settings, tf_store: ObjectStore
) -> None:
    if not (SAMPLES / "SOURCES.md").is_file():
        pytest.skip(f"real API samples not found at {SAMPLES}")
    import_sample(
        tf_store, "time_series__forex_daily_eur_usd.json", "time_series", "EUR/USD",
        interval="1day",
    )  # fmt: skip

    result = transform(tf_settings, ["time_series"])

    rows = read_table(tf_settings, "time_series")
    assert len(rows) == 149
    [june3] = [r for r in rows if r["ts"] == dt.datetime(2022, 6, 3, tzinfo=UTC)]
    # The bar kept opens at the previous day's close (1.07480): the first in time order.
    assert (june3["open"], june3["close"]) == (1.0748, 1.0727)
    [parked] = quarantine(tf_settings)
    assert parked["_record_path"] == "values[125]"
    assert "duplicate key" in parked["reason"]
    assert result.results["transform"].details["quarantined"] == 1


def test_same_key_in_two_payloads_newest_wins_and_is_counted(
    tf_settings: Settings, tf_store: ObjectStore
) -> None:
    old = series("AAPL", [bar("2026-12-07 10:00:00", close="1")])
    new = series("AAPL", [bar("2026-12-07 10:00:00", close="2")])
    land(tf_store, "time_series", [old], received_at=T0, run_id="r1", params={"timezone": "UTC"})
    later = T0 + dt.timedelta(minutes=5)
    land(tf_store, "time_series", [new], received_at=later, run_id="r2", params={"timezone": "UTC"})

    result = transform(tf_settings, ["time_series"])

    [row] = read_table(tf_settings, "time_series")
    assert row["close"] == 2.0
    assert result.results["transform"].details["superseded"] == 1


def test_an_unreadable_raw_file_is_set_aside_and_never_blocks(
    tf_settings: Settings, tf_store: ObjectStore
) -> None:
    good = land(
        tf_store, "time_series", [series("AAPL", [bar("2026-12-07 10:00:00")])],
        received_at=T0, run_id="r1", params={"timezone": "UTC"},
    )  # fmt: skip
    folder = good.rsplit("/", 1)[0]
    tf_store.put_bytes(f"{folder}/r0-000001.jsonl.gz", b"this is not gzip", overwrite=True)
    lines = gzip.compress(b'{"truncated": \n' + json.dumps({"x": 1}).encode() + b"\n")
    tf_store.put_bytes(f"{folder}/r0-000002.jsonl.gz", lines, overwrite=True)

    first = transform(tf_settings, ["time_series"])

    assert first.status == "succeeded"
    assert len(read_table(tf_settings, "time_series")) == 1
    reasons = {(q["_raw_key"].rsplit("/", 1)[1], q["_raw_line"]) for q in quarantine(tf_settings)}
    assert reasons == {("r0-000001.jsonl.gz", 0), ("r0-000002.jsonl.gz", 1)}
    assert first.results["transform"].details["set_aside"] == 2
    again = transform(tf_settings, ["time_series"])
    assert again.status == "succeeded"
    assert again.results["transform"].details["tables"]["time_series"]["files"] == 0


def test_json_nested_thousands_deep_is_set_aside(
    tf_settings: Settings, tf_store: ObjectStore, tmp_path: Path
) -> None:
    deep = "[" * 50_000 + "]" * 50_000
    key = land(
        tf_store, "time_series", [series("AAPL", [bar("2026-12-07 10:00:00")])],
        received_at=T0, run_id="r1", params={"timezone": "UTC"},
    )  # fmt: skip
    envelope = json.loads(gzip.decompress(tf_store.get_bytes(key)))
    text = json.dumps(envelope).replace('"payload": {', '"deep": ' + deep + ', "payload": {')
    tf_store.put_bytes(key, gzip.compress(text.encode() + b"\n"), overwrite=True)

    result = transform(tf_settings, ["time_series"])

    assert result.status == "succeeded"
    [parked] = quarantine(tf_settings)
    assert "nested too deep" in parked["reason"]


@pytest.mark.parametrize("value", ["NaN", "1e23", "1e99"])
def test_cli_transform_with_a_poison_volume_exits_0_now_and_later(
    tf_settings: Settings, tf_store: ObjectStore, value: str
) -> None:
    land(
        tf_store, "time_series",
        [series("AAPL", [bar("2026-12-07 10:00:00"), bar("2026-12-07 10:01:00", volume=value)])],
        received_at=T0, run_id="r1", params={"timezone": "UTC"},
    )  # fmt: skip
    env = {**os.environ, "DATAFLOW_PROJECT": str(tf_settings.project_dir)}
    command = [sys.executable, "-m", "dataflow", "transform", "--tables", "time_series"]
    for _ in range(2):
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=180, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Traceback" not in done.stderr
    assert len(read_table(tf_settings, "time_series")) == 1
    [parked] = quarantine(tf_settings)
    assert f"volume is not a whole number within BIGINT: {value}" in parked["reason"]
