"""No waste, no half-built table: files of a crashed commit go; a full refresh publishes at once."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from dataflow.catalog.iceberg import open_catalog
from dataflow.config import Settings
from dataflow.engines.duckdb import CRASH_ENV
from dataflow.storage import ObjectStore

from .conftest import land, read_table, transform
from .test_stage import CRASHING_TRANSFORM

T0 = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)
PARAMS = {"symbol": "IBM", "interval": "1day", "timezone": "UTC"}


def daily(first: dt.date, count: int, close: str = "1") -> dict:
    values = [
        {"datetime": (first + dt.timedelta(days=i)).isoformat(), "open": "1", "high": "2",
         "low": "1", "close": close}
        for i in range(count)
    ]  # fmt: skip
    return {"meta": {"symbol": "IBM", "interval": "1day"}, "values": values}


def files_on_disk(settings: Settings) -> set[str]:
    root = Path(settings.warehouse_uri, "iceberg", "market", "time_series", "data")
    return {str(p) for p in root.rglob("*.parquet")}


def referenced(settings: Settings) -> set[str]:
    """Data files any snapshot of the table references (deleted entries included)."""
    table = open_catalog(settings).load_table(("market", "time_series"))
    found = set()
    for snapshot in table.snapshots():
        for manifest in snapshot.manifests(table.io):
            for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=False):
                found.add(entry.data_file.file_path.removeprefix("file://"))
    return found


def test_files_of_a_crashed_commit_are_removed_by_the_next_transform(
    tf_settings: Settings, tf_store: ObjectStore
) -> None:
    land(tf_store, "time_series", [daily(dt.date(2024, 1, 1), 40)], received_at=T0,
         run_id="r1", params=PARAMS)  # fmt: skip
    transform(tf_settings, ["time_series"])
    # A second commit replaces a bar: the first file is now only referenced by the old snapshot.
    land(tf_store, "time_series", [daily(dt.date(2024, 1, 1), 1, close="9")],
         received_at=T0 + dt.timedelta(hours=1), run_id="r2", params=PARAMS)  # fmt: skip
    transform(tf_settings, ["time_series"])
    kept = files_on_disk(tf_settings)
    assert kept == referenced(tf_settings)

    land(tf_store, "time_series", [daily(dt.date(2024, 3, 1), 5, close="5")],
         received_at=T0 + dt.timedelta(days=1), run_id="r3", params=PARAMS)  # fmt: skip
    crashed = subprocess.run(
        [sys.executable, "-c", CRASHING_TRANSFORM, str(tf_settings.project_dir)],
        env={**os.environ, CRASH_ENV: "time_series"},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert crashed.returncode == 75, crashed.stderr
    orphans = files_on_disk(tf_settings) - referenced(tf_settings)
    assert orphans  # the crash left data files no snapshot references

    rerun = transform(tf_settings, ["time_series"])

    assert rerun.status == "succeeded"
    on_disk = files_on_disk(tf_settings)
    assert not orphans & on_disk
    assert on_disk == referenced(tf_settings)  # nothing referenced was deleted
    assert kept <= on_disk
    assert len(read_table(tf_settings, "time_series")) == 45
    attempts = Path(tf_settings.warehouse_uri, "iceberg", "market", "time_series", "metadata")
    assert not list((attempts / "dataflow-attempts").glob("*.json"))


def test_full_refresh_without_gate_never_shows_a_half_built_table(
    tf_settings: Settings, tf_store: ObjectStore
) -> None:
    for number in range(8):
        land(tf_store, "time_series", [daily(dt.date(2000 + number, 1, 1), 200)],
             received_at=T0 + dt.timedelta(minutes=number), run_id=f"r{number}",
             params=PARAMS)  # fmt: skip
    transform(tf_settings, ["time_series"])
    expected = len(read_table(tf_settings, "time_series"))
    assert expected == 1600

    seen: list[int] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            try:
                table = open_catalog(tf_settings).load_table(("market", "time_series"))
                seen.append(table.scan(selected_fields=("ts",)).to_arrow().num_rows)
            except BaseException as exc:
                errors.append(exc)
                return

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for thread in threads:
        thread.start()
    env = {
        **os.environ,
        "DATAFLOW_PROJECT": str(tf_settings.project_dir),
        "DATAFLOW__TRANSFORM__BATCH_FILES": "1",
    }
    started = time.monotonic()
    refresh = subprocess.run(
        [sys.executable, "-m", "dataflow", "transform", "--tables", "time_series",
         "--full-refresh", "--no-gate"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    done.set()
    for thread in threads:
        thread.join(timeout=60)

    assert refresh.returncode == 0, refresh.stdout + refresh.stderr
    assert not errors, errors
    assert len(seen) >= 3, (len(seen), time.monotonic() - started)
    assert set(seen) == {expected}
    table = open_catalog(tf_settings).load_table(("market", "time_series"))
    assert "dataflow-rebuild" not in table.metadata.refs
    assert len(read_table(tf_settings, "time_series")) == expected


def test_a_marker_left_by_a_commit_that_landed_deletes_nothing(
    tf_settings: Settings, tf_store: ObjectStore
) -> None:
    # A kill after the catalog commit but before the marker's removal: the attempt committed.
    land(tf_store, "time_series", [daily(dt.date(2024, 1, 1), 10)], received_at=T0,
         run_id="r1", params=PARAMS)  # fmt: skip
    transform(tf_settings, ["time_series"])
    before = files_on_disk(tf_settings)
    [name] = [Path(path).name for path in before]
    commit_uuid = "-".join(name.split("-")[2:7])
    folder = Path(tf_settings.warehouse_uri, "iceberg", "market", "time_series", "metadata")
    (folder / "dataflow-attempts").mkdir(exist_ok=True)
    marker = folder / "dataflow-attempts" / f"{commit_uuid}.json"
    marker.write_text("{}")

    land(tf_store, "time_series", [daily(dt.date(2024, 2, 1), 3)],
         received_at=T0 + dt.timedelta(hours=1), run_id="r2", params=PARAMS)  # fmt: skip
    transform(tf_settings, ["time_series"])

    assert before <= files_on_disk(tf_settings)
    assert not marker.exists()
    assert len(read_table(tf_settings, "time_series")) == 13


def test_full_refresh_of_a_new_table_in_several_batches_publishes_it(
    tf_settings: Settings, tf_store: ObjectStore
) -> None:
    for number in range(3):
        land(tf_store, "time_series", [daily(dt.date(2010 + number, 1, 1), 5)],
             received_at=T0 + dt.timedelta(minutes=number), run_id=f"r{number}",
             params=PARAMS)  # fmt: skip

    result = transform(tf_settings, ["time_series"], full_refresh=True, batch_files=1)

    assert result.results["transform"].details["tables"]["time_series"]["commits"] == 3
    table = open_catalog(tf_settings).load_table(("market", "time_series"))
    assert set(table.metadata.refs) == {"main"}
    assert len(read_table(tf_settings, "time_series")) == 15
    again = transform(tf_settings, ["time_series"])
    assert again.results["transform"].details["tables"]["time_series"]["files"] == 0
