"""``append_rows``: partitioned appends without pyiceberg's filter-per-partition."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog

from dataflow.catalog.iceberg import create_table
from dataflow.engines.duckdb import DuckDBEngine
from dataflow.engines.duckdb.engine import append_rows

UTC = dt.UTC


def catalog(tmp_path: Path) -> SqlCatalog:
    warehouse = tmp_path / "wh"
    warehouse.mkdir()
    return SqlCatalog("t", uri=f"sqlite:///{tmp_path / 'c.db'}", warehouse=f"file://{warehouse}")


def bars(symbols: list[str], months: list[int], interval: str, received: int) -> pa.Table:
    rows = [
        {
            "symbol": s, "interval": interval, "ts": dt.datetime(2024, m, 1 + d, tzinfo=UTC),
            "close": float(m * 100 + d),
            "_received_at": dt.datetime(2024, 7, 1, received, tzinfo=UTC),
            "_raw_key": f"k{received}", "_raw_line": 1, "_record_path": f"values[{d}]",
        }
        for s in symbols for m in months for d in range(3)
    ]  # fmt: skip
    return pa.Table.from_pylist(rows)


def test_scattered_partitions_give_one_file_each(tmp_path: Path) -> None:
    cat = catalog(tmp_path)
    cat.create_namespace("m")
    # Interleaved: every partition (interval, month) appears in several separate runs.
    rows = pa.concat_tables(
        [bars(["A"], [1, 2], "1day", 1), bars(["B"], [1, 2], "1day", 1), bars(["A"], [1], "1h", 1)]
    )
    table = create_table(cat, "m", "bars", rows.schema, partition="interval, month(ts)")
    with table.transaction() as txn:
        files = append_rows(txn, rows, {"dataflow.run_id": "r1"})
    assert files == 3
    table = table.refresh()
    assert table.current_snapshot().summary["dataflow.run_id"] == "r1"
    got = table.scan().to_arrow().sort_by([("symbol", "ascending"), ("interval", "ascending"),
                                           ("ts", "ascending")])  # fmt: skip
    want = rows.sort_by([("symbol", "ascending"), ("interval", "ascending"), ("ts", "ascending")])
    assert got.to_pylist() == want.to_pylist()
    # Partition pruning works on the written partition values.
    from pyiceberg.expressions import EqualTo

    assert table.scan(row_filter=EqualTo("interval", "1h")).to_arrow().num_rows == 3


def test_upsert_across_batches_reads_only_key_groups(tmp_path: Path) -> None:
    cat = catalog(tmp_path)
    cat.create_namespace("m")
    first = bars(["A", "B"], [1, 2], "1day", 1)
    table = create_table(cat, "m", "bars", first.schema, partition="interval, month(ts)")
    keys = ["symbol", "interval", "ts"]
    with DuckDBEngine() as engine:
        done = engine.upsert(table, first, keys=keys, snapshot_properties={"b": "1"})
        assert done.rows_written == 12
        # A newer copy of B's January bars, plus new March bars for A.
        newer = bars(["B"], [1], "1day", 2)
        later = bars(["A"], [3], "1day", 2)
        result = engine.upsert(
            table.refresh(), pa.concat_tables([newer, later]), keys=keys,
            snapshot_properties={"b": "2"},
        )  # fmt: skip
        assert (result.rows_written, result.rows_replaced) == (6, 3)
        # The same batch again changes nothing.
        again = engine.upsert(
            table.refresh(), pa.concat_tables([newer, later]), keys=keys,
            snapshot_properties={"b": "3"},
        )  # fmt: skip
        assert (again.rows_written, again.rows_skipped) == (0, 6)
    rows = table.refresh().scan().to_arrow().to_pylist()
    assert len(rows) == 15
    by_key = {(r["symbol"], r["ts"]): r["_raw_key"] for r in rows}
    assert by_key[("B", dt.datetime(2024, 1, 1, tzinfo=UTC))] == "k2"
    assert by_key[("B", dt.datetime(2024, 2, 1, tzinfo=UTC))] == "k1"
    assert by_key[("A", dt.datetime(2024, 1, 1, tzinfo=UTC))] == "k1"


def _data_files(table: object) -> set[str]:
    return {task.file.file_path for task in table.scan().plan_files()}  # type: ignore[attr-defined]


def test_upsert_rewrites_only_the_files_holding_replaced_keys(tmp_path: Path) -> None:
    cat = catalog(tmp_path)
    cat.create_namespace("m")
    first = bars(["A", "B"], [1, 2, 3], "1day", 1)
    table = create_table(cat, "m", "bars", first.schema, partition="interval, month(ts)")
    keys = ["symbol", "interval", "ts"]
    with DuckDBEngine() as engine:
        engine.upsert(table, first, keys=keys, snapshot_properties={"b": "1"})
        before = _data_files(table.refresh())
        assert len(before) == 3  # one file per month
        # A newer copy of one February bar of A: only February's file is rewritten.
        newer = bars(["A"], [2], "1day", 2).slice(0, 1)
        result = engine.upsert(table.refresh(), newer, keys=keys, snapshot_properties={"b": "2"})
        assert (result.rows_written, result.rows_replaced) == (1, 1)
    table = table.refresh()
    after = _data_files(table)
    assert len(before & after) == 2
    assert len(after) == 3
    assert table.current_snapshot().summary["b"] == "2"
    rows = table.scan().to_arrow().to_pylist()
    assert len(rows) == 18
    by_key = {(r["symbol"], r["ts"]): r["_raw_key"] for r in rows}
    assert by_key[("A", dt.datetime(2024, 2, 1, tzinfo=UTC))] == "k2"
    assert by_key[("B", dt.datetime(2024, 2, 1, tzinfo=UTC))] == "k1"
    assert sum(1 for key in by_key.values() if key == "k2") == 1


def test_plan_tasks_prunes_as_plan_files_does(tmp_path: Path) -> None:
    from pyiceberg.expressions import EqualTo, GreaterThanOrEqual

    from dataflow.engines.duckdb.pruning import plan_tasks

    cat = catalog(tmp_path)
    cat.create_namespace("m")
    first = bars(["A", "B"], [1, 2, 3], "1day", 1)
    table = create_table(cat, "m", "bars", first.schema, partition="interval, month(ts)")
    with DuckDBEngine() as engine:
        engine.upsert(table, first, keys=["symbol", "interval", "ts"], snapshot_properties={})
        engine.upsert(
            table.refresh(), bars(["A"], [3, 4], "1h", 2), keys=["symbol", "interval", "ts"],
            snapshot_properties={},
        )  # fmt: skip
    table = table.refresh()
    head = table.current_snapshot().snapshot_id
    filters = [
        EqualTo("interval", "1h"),
        GreaterThanOrEqual("ts", "2024-03-02T00:00:00+00:00"),
        EqualTo("symbol", "B"),
    ]
    for row_filter in filters:
        want = {t.file.file_path for t in table.scan(row_filter=row_filter).plan_files()}
        got = {t.file.file_path for t in plan_tasks(table, row_filter, head)}
        assert got == want
        assert 0 < len(got) < 6


def ts_bound(bounds: dict[int, bytes]) -> int:
    from pyiceberg.conversions import from_bytes
    from pyiceberg.types import TimestamptzType

    return int(from_bytes(TimestamptzType(), bounds[3]))  # field 3: ts


def test_big_partitions_are_clustered_by_time_and_upserts_rewrite_the_newest_file(
    tmp_path: Path,
) -> None:
    from dataflow.engines.duckdb.iceberg_io import (
        MAX_FILE_ROWS_PROPERTY,
        NEWEST_FILE_ROWS_PROPERTY,
    )

    cat = catalog(tmp_path)
    cat.create_namespace("m")
    # One partition (1day, 2024) of 3 symbols x 6 months x 3 days, in symbol order.
    first = bars(["A", "B", "C"], [1, 2, 3, 4, 5, 6], "1day", 1)
    table = create_table(
        cat, "m", "bars", first.schema, partition="interval, year(ts)",
        properties={MAX_FILE_ROWS_PROPERTY: "10", NEWEST_FILE_ROWS_PROPERTY: "9"},
    )  # fmt: skip
    keys = ["symbol", "interval", "ts"]
    with DuckDBEngine() as engine:
        engine.upsert(table, first, keys=keys, snapshot_properties={"b": "1"})
        table = table.refresh()
        tasks = sorted(table.scan().plan_files(), key=lambda t: ts_bound(t.file.lower_bounds))
        # 54 rows -> the newest 9 in a file, the other 45 in 5 files of 9 (at most 10), each
        # file one range of ts, the ranges in order.
        assert [t.file.record_count for t in tasks] == [9] * 6
        spans = [(ts_bound(t.file.lower_bounds), ts_bound(t.file.upper_bounds)) for t in tasks]
        assert all(hi < lo for (_, hi), (lo, _) in itertools.pairwise(spans))
        # A newer copy of June's last bar of B: only the newest file is read and rewritten.
        newer = bars(["B"], [6], "1day", 2).slice(2, 1)
        result = engine.upsert(table, newer, keys=keys, snapshot_properties={"b": "2"})
        assert (result.rows_written, result.rows_replaced) == (1, 1)
    table = table.refresh()
    after = _data_files(table)
    before = {t.file.file_path for t in tasks}
    assert before - after == {tasks[-1].file.file_path}
    rows = table.scan().to_arrow().to_pylist()
    assert len(rows) == 54
    by_key = {(r["symbol"], r["ts"]): r["_raw_key"] for r in rows}
    assert by_key[("B", dt.datetime(2024, 6, 3, tzinfo=UTC))] == "k2"
    assert sum(1 for key in by_key.values() if key == "k2") == 1


def test_small_partitions_and_tables_without_a_time_key_are_not_split(tmp_path: Path) -> None:
    from dataflow.engines.duckdb.iceberg_io import NEWEST_FILE_ROWS_PROPERTY

    cat = catalog(tmp_path)
    cat.create_namespace("m")
    rows = bars(["A", "B"], [1, 2], "1day", 1)  # 12 rows
    big = create_table(cat, "m", "big", rows.schema, partition="interval, year(ts)",
                       properties={NEWEST_FILE_ROWS_PROPERTY: "12"})  # fmt: skip
    plain = create_table(cat, "m", "plain", rows.schema, partition="interval",
                         properties={NEWEST_FILE_ROWS_PROPERTY: "5"})  # fmt: skip
    with DuckDBEngine() as engine:
        engine.upsert(big, rows, keys=["symbol", "interval", "ts"], snapshot_properties={})
        # Keyed without a time column: nothing to cluster by, one file per partition.
        engine.upsert(plain, rows, keys=["symbol", "interval", "_record_path"],
                      snapshot_properties={})  # fmt: skip
    assert len(_data_files(big.refresh())) == 1
    assert len(_data_files(plain.refresh())) == 1
