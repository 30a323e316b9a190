"""8 concurrent queries while the transform's commit path writes: one snapshot per query."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pyarrow as pa
import pytest

from dataflow.catalog.iceberg import create_table, open_catalog
from dataflow.config import Settings, load_settings
from dataflow.engines.registry import get_engine
from dataflow.query import QueryRunner, QuerySession

ROWS = 200  # rows per batch
COMMITS = 8  # commits made while the queries run
READERS = 8
# One query reads the table three times; a query mixing two snapshots shows as a total that is
# no snapshot's, as subqueries that disagree, or as duplicated ids (an update's old and new file).
CHECK_SQL = """
SELECT count(*) AS n, sum(v) AS s, count(DISTINCT id) AS ids,
    (SELECT count(*) FROM market.qb_ticks WHERE v >= 1) AS n_again,
    (SELECT max(batch) FROM qb_ticks) AS last_batch
FROM market.qb_ticks
"""


def _expected(commits: int) -> tuple[int, int]:
    """(count, sum) after ``commits`` upserts: batch 0's rows have v = commits + 1."""
    return ROWS * (commits + 1), ROWS * commits + ROWS * (commits + 1)


def _batch(commit: int) -> pa.Table:
    """Commit ``commit``: ROWS new ids (v = 1) and every id of batch 0 again, v = commit + 1."""
    new_ids = list(range(commit * ROWS, (commit + 1) * ROWS)) if commit else []
    ids = new_ids + list(range(ROWS))
    received = dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=commit)
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "batch": pa.array([commit] * len(new_ids) + [0] * ROWS, pa.int64()),
            "v": pa.array([1] * len(new_ids) + [commit + 1] * ROWS, pa.int64()),
            "_raw_key": [f"raw/{commit}.json.gz"] * len(ids),
            "_raw_line": pa.array(range(len(ids)), pa.int32()),
            "_received_at": pa.array([received] * len(ids), pa.timestamp("us", tz="UTC")),
        }
    )


@pytest.fixture
def qb_settings(tmp_path: Any) -> Settings:
    settings = load_settings(tmp_path / "project", env={})
    first = _batch(0)
    table = create_table(
        open_catalog(settings), "market", "qb_ticks", first.schema, partition="batch"
    )
    table.append(first)
    return settings


def _writer(settings: Settings, started: threading.Event, errors: list[BaseException]) -> None:
    """The transform's commit path (DuckDBEngine.upsert, copy-on-write) in a loop."""
    try:
        table = open_catalog(settings).load_table(("market", "qb_ticks"))
        engine = get_engine("duckdb", threads=1)
        try:
            started.wait(10)
            for commit in range(1, COMMITS + 1):
                table.refresh()
                engine.upsert(
                    table, _batch(commit), keys=["id"], snapshot_properties={"qb": str(commit)}
                )
        finally:
            engine.close()
    except BaseException as exc:  # reported by the test, not lost in the thread
        errors.append(exc)


def _reader(
    settings: Settings,
    use_runner: bool,
    stop: threading.Event,
    started: threading.Event,
    seen: list[tuple[Any, ...]],
    errors: list[BaseException],
) -> None:
    try:
        runner = QueryRunner(settings) if use_runner else None
        session = runner.session if runner else QuerySession(settings)
        try:
            started.set()
            while True:
                last = stop.is_set()  # one more query after the writer is done
                if runner is not None:
                    outcome = runner.run(CHECK_SQL)
                    row, snapshots = outcome.result.rows[0], outcome.execution.snapshots
                else:
                    plan = session.plan(CHECK_SQL)
                    row, snapshots = session.run(plan).rows[0], plan.snapshots
                seen.append((*row, snapshots["market.qb_ticks"]))
                if last:
                    break
        finally:
            if runner is not None:
                runner.close()
            else:
                session.close()
    except BaseException as exc:
        errors.append(exc)


def test_each_query_sees_one_snapshot_while_upserts_commit(qb_settings: Settings) -> None:
    stop, started = threading.Event(), threading.Event()
    errors: list[BaseException] = []
    seen: list[list[tuple[Any, ...]]] = [[] for _ in range(READERS)]
    readers = [
        threading.Thread(
            target=_reader, args=(qb_settings, i % 2 == 0, stop, started, seen[i], errors)
        )
        for i in range(READERS)
    ]
    writer = threading.Thread(target=_writer, args=(qb_settings, started, errors))
    for thread in [*readers, writer]:
        thread.start()
    writer.join(60)
    stop.set()
    for thread in readers:
        thread.join(60)

    assert not errors, errors
    assert not writer.is_alive()
    assert not any(t.is_alive() for t in readers)
    valid = {_expected(c) for c in range(COMMITS + 1)}
    results = [row for rows in seen for row in rows]
    for n, s, ids, n_again, last_batch, snapshot in results:
        assert (n, s) in valid, f"snapshot {snapshot}: count {n}, sum {s} is no snapshot's"
        assert ids == n == n_again, f"snapshot {snapshot}: {n} rows, {ids} ids, {n_again}"
        assert last_batch == n // ROWS - 1
    # every reader ends on the last snapshot, and the queries did overlap the commits
    assert all(rows and rows[-1][:2] == _expected(COMMITS) for rows in seen)
    assert len({row[:2] for row in results}) >= 2, "no query ran while a commit happened"
    by_snapshot: dict[str, set[tuple[int, int]]] = {}
    for n, s, *_, snapshot in results:
        by_snapshot.setdefault(snapshot, set()).add((n, s))
    assert all(len(totals) == 1 for totals in by_snapshot.values())
