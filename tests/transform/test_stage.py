"""The transform stage end to end: simulator ingest -> raw zone -> Iceberg, bookmarks, upserts."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from dataflow.catalog.iceberg import open_catalog
from dataflow.config import Settings, load_settings
from dataflow.engines.duckdb import CRASH_ENV
from dataflow.metadata import open_metadata
from dataflow.monitor.metrics import Metrics
from dataflow.pipeline import RunOptions, run_pipeline
from dataflow.sources.twelvedata.ingest import IngestStage
from dataflow.storage import ObjectStore, list_raw
from dataflow.transform.bookmarks import read_bookmark

from .conftest import land, read_table, snapshot_ids, transform

T0 = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)


def ingest(settings: Settings, endpoints: list[str]) -> None:
    result = run_pipeline(settings, RunOptions(endpoints=endpoints), stages=[IngestStage()])
    assert result.status == "succeeded"


def keys(rows: list[dict], *names: str) -> list[tuple]:
    return sorted(tuple(r[n] for n in names) for r in rows)


def test_ingest_then_transform_builds_every_table_once(tf_settings: Settings) -> None:
    ingest(tf_settings, ["time_series", "quote", "price", "exchange_rate", "rsi", "stocks"])
    first = transform(tf_settings)
    assert first.status == "succeeded"
    tables = first.results["transform"].details["tables"]
    assert tables["time_series"]["rows_out"] > 0
    rows = read_table(tf_settings, "time_series")
    bar_keys = keys(rows, "symbol", "interval", "ts")
    assert len(bar_keys) == len(set(bar_keys))
    assert {r["interval"] for r in rows} == {"1day", "1h"}
    assert all(r["ts"].tzinfo is not None for r in rows)
    assert {t for t, s in tables.items() if s["commits"]} == {
        "time_series", "quotes", "prices", "fx_rates", "indicators", "stocks",
    }  # fmt: skip

    # Metrics and the run record carry the stage's counts.
    db = open_metadata(tf_settings.metadata_url)
    try:
        listed = Metrics(db).list_metrics("Dataflow/Transform")
    finally:
        db.dispose()
    names = {name for _, name, dims in listed if dims.get("table") == "time_series"}
    assert {"RowsIn", "RowsOut", "Quarantined", "Files", "Bytes", "Seconds"} <= names
    assert first.run.stages[0].rows == first.results["transform"].rows

    # Idempotence: nothing new -> no commit, identical table.
    before = {t: snapshot_ids(tf_settings, t) for t in ("time_series", "quotes")}
    again = transform(tf_settings)
    assert again.results["transform"].rows == 0
    assert {t: snapshot_ids(tf_settings, t) for t in before} == before
    assert keys(read_table(tf_settings, "time_series"), "symbol", "interval", "ts") == bar_keys


def test_upsert_keeps_the_latest_received_at(tf_settings: Settings, tf_store: ObjectStore) -> None:
    def payload(close: str) -> dict:
        return {
            "meta": {"symbol": "AAPL", "interval": "1day", "exchange_timezone": "America/New_York"},
            "values": [
                {"datetime": "2024-04-30", "open": "1", "high": "2", "low": "0.5", "close": close},
                {"datetime": "2024-04-29", "open": "1", "high": "2", "low": "0.5", "close": "9"},
            ],
        }

    params = {"symbol": "AAPL", "interval": "1day", "timezone": "UTC"}
    land(tf_store, "time_series", [payload("1.5")], received_at=T0, run_id="r1", params=params)
    transform(tf_settings, ["time_series"])
    newer = land(
        tf_store, "time_series", [payload("1.7")], received_at=T0 + dt.timedelta(hours=1),
        run_id="r2", params=params,
    )  # fmt: skip
    land(
        tf_store, "time_series", [payload("1.1")], received_at=T0 - dt.timedelta(hours=1),
        run_id="r0", params=params,
    )  # fmt: skip
    transform(tf_settings, ["time_series"])
    rows = {r["ts"].date(): r for r in read_table(tf_settings, "time_series")}
    assert len(rows) == 2
    latest = rows[dt.date(2024, 4, 30)]
    assert (latest["close"], latest["_raw_key"]) == (1.7, newer)
    assert rows[dt.date(2024, 4, 29)]["_raw_key"] == newer

    # Full refresh rebuilds from every raw file and reaches the same rows.
    refreshed = transform(tf_settings, ["time_series"], full_refresh=True)
    assert refreshed.results["transform"].details["tables"]["time_series"]["files"] == 3
    again = {
        r["ts"].date(): (r["close"], r["_raw_key"]) for r in read_table(tf_settings, "time_series")
    }
    assert again == {d: (r["close"], r["_raw_key"]) for d, r in rows.items()}


def test_bounded_batches_commit_file_groups(tmp_path: Path) -> None:
    today = dt.datetime.now(dt.UTC).date()
    settings = load_settings(
        tmp_path / "p",
        overrides={
            "sources.twelvedata.history_start": (today - dt.timedelta(days=10)).isoformat(),
            "sources.twelvedata.endpoints.time_series.intervals": ["1day"],
            "sources.twelvedata.batch_size": 2,
            "storage.raw.file_max_lines": 1,
        },
        env={},
    )
    ingest(settings, ["time_series"])
    files = list_raw(open_store_of(settings), endpoint="time_series")
    assert len(files) >= 5
    result = transform(settings, ["time_series"], batch_files=2)
    stats = result.results["transform"].details["tables"]["time_series"]
    assert stats["files"] == len(files)
    assert stats["commits"] == (len(files) + 1) // 2
    table = open_catalog(settings).load_table(("market", "time_series"))
    assert read_bookmark(table) == {f.key for f in files}
    rows = read_table(settings, "time_series")
    assert len(rows) == len(set(keys(rows, "symbol", "interval", "ts")))
    assert {r["symbol"] for r in rows} >= {"AAPL", "EUR/USD", "BTC/USD"}


def open_store_of(settings: Settings) -> ObjectStore:
    from dataflow.storage import open_store

    return open_store(settings)


CRASHING_TRANSFORM = textwrap.dedent(
    """
    import sys
    from dataflow.config import load_settings
    from dataflow.pipeline import RunOptions, run_pipeline
    from dataflow.transform import TransformStage
    settings = load_settings(sys.argv[1], env={})
    run_pipeline(settings, RunOptions(), stages=[TransformStage(tables=["time_series"])])
    """
)


def test_a_crash_before_commit_leaves_the_table_unchanged(
    tf_settings: Settings, tf_store: ObjectStore
) -> None:
    params = {"symbol": "IBM", "interval": "1day", "timezone": "UTC"}
    bar = {"datetime": "2024-04-30", "open": "1", "high": "1", "low": "1", "close": "1"}
    body = {"meta": {"symbol": "IBM", "interval": "1day"}, "values": [bar]}
    land(tf_store, "time_series", [body], received_at=T0, run_id="r1", params=params)
    transform(tf_settings, ["time_series"])
    before = snapshot_ids(tf_settings, "time_series")
    rows_before = read_table(tf_settings, "time_series")

    later = {**bar, "datetime": "2024-05-01", "close": "2"}
    body2 = {"meta": {"symbol": "IBM", "interval": "1day"}, "values": [later, bar]}
    second = land(
        tf_store, "time_series", [body2], received_at=T0 + dt.timedelta(days=1),
        run_id="r2", params=params,
    )  # fmt: skip
    env = {**os.environ, CRASH_ENV: "time_series"}
    crashed = subprocess.run(
        [sys.executable, "-c", CRASHING_TRANSFORM, str(tf_settings.project_dir)],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert crashed.returncode == 75, crashed.stderr
    # Data files were written, but no commit references them: table and bookmark unchanged.
    data_files = list(Path(tf_settings.warehouse_uri, "iceberg").rglob("*.parquet"))
    assert len(data_files) > 1
    assert snapshot_ids(tf_settings, "time_series") == before
    assert read_table(tf_settings, "time_series") == rows_before
    table = open_catalog(tf_settings).load_table(("market", "time_series"))
    assert second not in read_bookmark(table)

    # The rerun (the lock of the dead run is stale) commits the file exactly once.
    rerun = transform(tf_settings, ["time_series"])
    assert rerun.results["transform"].details["tables"]["time_series"]["commits"] == 1
    rows = {r["ts"].date(): r for r in read_table(tf_settings, "time_series")}
    assert sorted(rows) == [dt.date(2024, 4, 30), dt.date(2024, 5, 1)]
    assert rows[dt.date(2024, 5, 1)]["_raw_key"] == second
    assert transform(tf_settings, ["time_series"]).results["transform"].rows == 0
