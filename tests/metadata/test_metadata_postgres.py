"""The stores on PostgreSQL (migrations run on both databases in test_metadata_db.py).

Runs against the suite's ``postgres_url`` server (tests/conftest.py: ``DATAFLOW_TEST_POSTGRES_URL``
or a throwaway server started on 127.0.0.1). Each test works in a fresh schema of its own and drops
it afterwards.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from dataflow.metadata import (
    MetadataDB,
    RunStore,
    WatermarkKey,
    WatermarkStore,
    open_metadata,
)
from dataflow.monitor import Metrics


@pytest.fixture
def md_pg(md_pg_url: str) -> Iterator[MetadataDB]:
    db = open_metadata(md_pg_url)
    yield db
    db.dispose()


def test_runs_round_trip(md_pg: MetadataDB) -> None:
    store = RunStore(md_pg)
    store.start_run("20260101T000000Z-aaaa", pipeline="p", params={"full_refresh": True})
    store.start_stage("20260101T000000Z-aaaa", "ingest")
    store.finish_stage("20260101T000000Z-aaaa", "ingest", status="partial", rows=5, errors=1)
    run = store.finish_run("20260101T000000Z-aaaa", status="partial")
    assert store.get("20260101T00").run_id == run.run_id
    assert run.params == {"full_refresh": True}
    assert run.started_at.tzinfo == dt.UTC
    assert [(s.stage, s.status, s.rows, s.errors) for s in run.stages] == [
        ("ingest", "partial", 5, 1)
    ]


def test_watermarks_never_move_backwards(md_pg: MetadataDB) -> None:
    store = WatermarkStore(md_pg)
    key = WatermarkKey("twelvedata", "time_series", "AAPL", "1day")
    new = dt.datetime(2024, 5, 2, 12, tzinfo=dt.UTC)
    store.advance({key: new}, run_id="r1")
    store.advance({key: new - dt.timedelta(days=1)}, run_id="r2")
    assert store.list() == [(key, new, "r1")]


def test_metrics_exact_dimensions(md_pg: MetadataDB) -> None:
    metrics = Metrics(md_pg, run_id="r1")
    metrics.record("Dataflow", "Rows", 1, "Count", {"a": "1"})
    metrics.record("Dataflow", "Rows", 2, "Count", {"a": "1", "b": "2"})
    assert [p.value for p in metrics.query("Dataflow", "Rows", dimensions={"a": "1"})] == [1.0]
