"""Round 3 of the incremental run: the manifest cache, and the upsert's one-read path.

The manifest cache must never serve stale entries (another process commits in between), must
stay within its bound, and must give what pyiceberg's own decoding gives. The upsert reads a
few small overlapping files whole, once; it must decide winners exactly as the streamed path
does (which larger overlaps take).
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.expressions import AlwaysTrue

from dataflow.catalog.iceberg import create_table
from dataflow.engines.duckdb import DuckDBEngine, manifest_cache
from dataflow.engines.duckdb import merge as merge_module
from dataflow.engines.duckdb.pruning import plan_tasks

UTC = dt.UTC
KEYS = ["symbol", "interval", "ts"]


def catalog(tmp_path: Path) -> SqlCatalog:
    warehouse = tmp_path / "wh"
    warehouse.mkdir(exist_ok=True)
    return SqlCatalog("t", uri=f"sqlite:///{tmp_path / 'c.db'}", warehouse=f"file://{warehouse}")


def bars(symbol: str, days: range, received: int, raw_key: str | None = None) -> pa.Table:
    rows = [
        {
            "symbol": symbol, "interval": "1day", "ts": dt.datetime(2024, 1, 1, tzinfo=UTC)
            + dt.timedelta(days=d), "close": float(d + received),
            "_received_at": dt.datetime(2024, 7, 1, received, tzinfo=UTC),
            "_raw_key": raw_key or f"k{received}", "_raw_line": 1, "_record_path": f"values[{d}]",
        }
        for d in days
    ]  # fmt: skip
    return pa.Table.from_pylist(rows)


def content(table: object) -> list[tuple[object, ...]]:
    rows = table.refresh().scan().to_arrow().to_pylist()  # type: ignore[attr-defined]
    return sorted((r["symbol"], r["ts"], r["close"], r["_raw_key"]) for r in rows)


def test_cached_entries_equal_pyiceberg_decoding_and_are_reused(tmp_path: Path) -> None:
    cat = catalog(tmp_path)
    cat.create_namespace("m")
    first = bars("A", range(5), 1)
    table = create_table(cat, "m", "bars", first.schema, partition="interval, year(ts)")
    with DuckDBEngine() as engine:  # installs the cache
        engine.upsert(table, first, keys=KEYS, snapshot_properties={"b": "1"})
        engine.upsert(table.refresh(), bars("B", range(5), 1), keys=KEYS,
                      snapshot_properties={"b": "2"})  # fmt: skip
    table = table.refresh()
    manifest_cache.clear()
    head = table.current_snapshot()
    assert head is not None
    planned = plan_tasks(table, AlwaysTrue(), head.snapshot_id)
    assert manifest_cache.stats()["misses"] == 2
    assert manifest_cache.stats()["hits"] == 0
    again = plan_tasks(table, AlwaysTrue(), head.snapshot_id)
    assert manifest_cache.stats()["hits"] == 2
    assert [t.file.file_path for t in again] == [t.file.file_path for t in planned]
    # What pyiceberg's own decoding gives, entry for entry (status, inherited numbers, file).
    original = manifest_cache._entries.original
    for manifest in head.manifests(table.io):
        for discard in (True, False):
            mine = manifest.fetch_manifest_entry(table.io, discard_deleted=discard)
            theirs = original(manifest, table.io, discard_deleted=discard)
            assert [(e.status, e.snapshot_id, e.sequence_number, e.file_sequence_number,
                     e.data_file.file_path, e.data_file.spec_id) for e in mine] == [
                (e.status, e.snapshot_id, e.sequence_number, e.file_sequence_number,
                 e.data_file.file_path, e.data_file.spec_id) for e in theirs]  # fmt: skip


def test_a_commit_by_another_process_is_seen(tmp_path: Path) -> None:
    cat = catalog(tmp_path)
    cat.create_namespace("m")
    first = bars("A", range(3), 1)
    table = create_table(cat, "m", "bars", first.schema, partition="interval, year(ts)")
    with DuckDBEngine() as engine:
        engine.upsert(table, first, keys=KEYS, snapshot_properties={"b": "1"})
        table = table.refresh()
        head = table.current_snapshot()
        assert head is not None
        assert len(plan_tasks(table, AlwaysTrue(), head.snapshot_id)) == 1  # now cached
        # Another process replaces A's newest bar and adds B (an overwrite + append).
        script = textwrap.dedent(f"""
            import datetime as dt, pyarrow as pa
            from pyiceberg.catalog.sql import SqlCatalog
            from dataflow.engines.duckdb import DuckDBEngine
            cat = SqlCatalog("t", uri="sqlite:///{tmp_path / "c.db"}",
                             warehouse="file://{tmp_path / "wh"}")
            rows = pa.Table.from_pylist([
                {{"symbol": s, "interval": "1day", "ts": dt.datetime(2024, 1, 3, tzinfo=dt.UTC),
                  "close": 99.0, "_received_at": dt.datetime(2024, 7, 1, 5, tzinfo=dt.UTC),
                  "_raw_key": "other", "_raw_line": 1, "_record_path": "values[2]"}}
                for s in ("A", "B")])
            with DuckDBEngine() as engine:
                engine.upsert(cat.load_table(("m", "bars")), rows,
                              keys=["symbol", "interval", "ts"], snapshot_properties={{}})
        """)
        subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
        # This process still holds the first manifest decoded; the new snapshot's manifests
        # are new files, so the upsert below plans against the other process's commit.
        result = engine.upsert(
            table.refresh(), bars("A", range(2, 4), 3), keys=KEYS, snapshot_properties={}
        )
        # A's 3rd bar: the other process's copy (received at 5h) beats ours (3h); the 4th is new.
        assert (result.rows_written, result.rows_replaced, result.rows_skipped) == (1, 0, 1)
    assert content(table) == [
        ("A", dt.datetime(2024, 1, 1, tzinfo=UTC), 1.0, "k1"),
        ("A", dt.datetime(2024, 1, 2, tzinfo=UTC), 2.0, "k1"),
        ("A", dt.datetime(2024, 1, 3, tzinfo=UTC), 99.0, "other"),
        ("A", dt.datetime(2024, 1, 4, tzinfo=UTC), 6.0, "k3"),
        ("B", dt.datetime(2024, 1, 3, tzinfo=UTC), 99.0, "other"),
    ]


def test_the_cache_stays_within_its_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cat = catalog(tmp_path)
    cat.create_namespace("m")
    first = bars("A", range(3), 1)
    table = create_table(cat, "m", "bars", first.schema, partition="interval, month(ts)")
    with DuckDBEngine() as engine:
        for number, symbol in enumerate("ABCDEF"):
            engine.upsert(table.refresh(), bars(symbol, range(40 * number, 40 * number + 40), 1),
                          keys=KEYS, snapshot_properties={})  # fmt: skip
    table = table.refresh()
    head = table.current_snapshot()
    assert head is not None
    monkeypatch.setattr(manifest_cache, "MAX_ENTRIES", 5)
    manifest_cache.clear()
    tasks = plan_tasks(table, AlwaysTrue(), head.snapshot_id)
    assert sum(t.file.record_count for t in tasks) == 240
    held = manifest_cache.stats()
    assert 0 < held["entries"] <= 5
    assert held["manifests"] < len(head.manifests(table.io))
    manifest_cache.clear()


@pytest.mark.parametrize("one_pass_rows", [0, 100_000], ids=["streamed", "read-whole"])
def test_winners_losers_and_replaced_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_pass_rows: int
) -> None:
    monkeypatch.setattr(merge_module, "ONE_PASS_ROWS", one_pass_rows)
    cat = catalog(tmp_path)
    cat.create_namespace("m")
    first = pa.concat_tables([bars("A", range(6), 5), bars("B", range(3), 5)])
    table = create_table(cat, "m", "bars", first.schema, partition="interval, year(ts)")
    with DuckDBEngine() as engine:
        # Three commits: three files of one partition, all overlapping the batch below.
        for part in (first.slice(0, 2), first.slice(2, 2), first.slice(4)):
            engine.upsert(table.refresh(), part, keys=KEYS, snapshot_properties={})
        assert len(table.refresh().scan().plan_files()) == 3
        batch = pa.concat_tables(
            [
                bars("A", range(0, 2), 3),  # older lineage: loses
                bars("A", range(2, 4), 5),  # the same raw records again: changes nothing
                bars("A", range(4, 6), 7),  # newer: replaces
                bars("B", range(3, 5), 1),  # new keys (even with an old lineage): added
            ]
        )
        result = engine.upsert(table.refresh(), batch, keys=KEYS, snapshot_properties={})
        assert (result.rows_written, result.rows_replaced, result.rows_skipped) == (4, 2, 4)
    got = content(table)
    assert len(got) == 11
    closes = {(s, ts.day): (c, k) for s, ts, c, k in got}  # type: ignore[attr-defined]
    assert closes[("A", 1)] == (5.0, "k5")
    assert closes[("A", 3)] == (7.0, "k5")
    assert closes[("A", 5)] == (11.0, "k7")
    assert closes[("A", 6)] == (12.0, "k7")
    assert closes[("B", 4)] == (4.0, "k1")
    assert closes[("B", 5)] == (5.0, "k1")


def test_rows_not_in_the_tables_own_schema_still_get_pyicebergs_check(tmp_path: Path) -> None:
    import uuid

    from pyiceberg.schema import Schema
    from pyiceberg.types import DoubleType, NestedField, StringType

    from dataflow.engines.duckdb.iceberg_io import transaction, write_data_files

    cat = catalog(tmp_path)
    cat.create_namespace("m")
    schema = Schema(
        NestedField(1, "symbol", StringType(), required=True),
        NestedField(2, "close", DoubleType(), required=False),
    )
    table = cat.create_table(("m", "req"), schema=schema)
    own = pa.table(
        {"symbol": ["A"], "close": [1.0]},
        schema=pa.schema(
            [pa.field("symbol", pa.string(), nullable=False), ("close", pa.float64())]
        ),
    )
    txn = transaction(table)
    assert len(write_data_files(txn, own, uuid.uuid4())) == 1  # the table's own shape
    # A nullable column where the table requires a value: not the table's shape, so pyiceberg's
    # compatibility check runs, and refuses it.
    loose = pa.table({"symbol": ["A"], "close": [1.0]})
    with pytest.raises(ValueError, match="Mismatch in fields"):
        write_data_files(txn, loose, uuid.uuid4())
    assert txn.table_metadata is txn.table_metadata  # computed once per staged state
