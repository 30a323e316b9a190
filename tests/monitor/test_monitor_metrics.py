"""Metrics: CloudWatch's exact-dimension-set identity, units, time ranges, persistence."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataflow.metadata import MetadataDB, open_metadata
from dataflow.monitor import Datapoint, Metrics

T0 = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
NS = "Dataflow/Ingest"


@pytest.fixture
def md_db(tmp_path: Path) -> Iterator[MetadataDB]:
    db = open_metadata(f"sqlite:///{tmp_path / 'dataflow.db'}")
    yield db
    db.dispose()


@pytest.fixture
def md_metrics(md_db: MetadataDB) -> Metrics:
    return Metrics(md_db, run_id="r1")


def test_a_metric_is_namespace_name_and_the_exact_dimension_set(md_metrics: Metrics) -> None:
    md_metrics.record(NS, "Rows", 1, "Count", timestamp=T0)
    md_metrics.record(NS, "Rows", 2, "Count", {"endpoint": "quote"}, timestamp=T0)
    md_metrics.record(NS, "Rows", 3, "Count", {"endpoint": "quote", "symbol": "AAPL"}, T0)
    md_metrics.record(NS, "Rows", 4, "Count", {"symbol": "AAPL", "endpoint": "quote"}, T0)
    md_metrics.record(NS, "Rows", 5, "Count", {"endpoint": "eod"}, timestamp=T0)
    md_metrics.record("Other", "Rows", 6, "Count", {"endpoint": "quote"}, timestamp=T0)

    def values(dims: dict[str, str] | None) -> list[float]:
        return [p.value for p in md_metrics.query(NS, "Rows", dimensions=dims)]

    assert values(None) == [1.0]
    assert values({}) == [1.0]
    assert values({"endpoint": "quote"}) == [2.0]
    assert values({"symbol": "AAPL", "endpoint": "quote"}) == [3.0, 4.0]
    assert values({"symbol": "AAPL"}) == []
    assert md_metrics.query(NS, "Bytes", dimensions={"endpoint": "quote"}) == []


def test_points_round_trip(md_db: MetadataDB, md_metrics: Metrics) -> None:
    md_metrics.record(NS, "Latency", 0.25, "Seconds", {"endpoint": "quote"}, timestamp=T0)
    [point] = Metrics(md_db).query(NS, "Latency", dimensions={"endpoint": "quote"})
    assert point == Datapoint(NS, "Latency", 0.25, "Seconds", {"endpoint": "quote"}, T0, "r1")
    assert point.timestamp.tzinfo == dt.UTC


def test_default_dimensions_join_the_identity(md_db: MetadataDB) -> None:
    metrics = Metrics(md_db, default_dimensions={"pipeline": "demo", "endpoint": "any"})
    metrics.record(NS, "Rows", 1, "Count", {"endpoint": "quote"}, timestamp=T0)
    assert metrics.query(NS, "Rows", dimensions={"endpoint": "quote"}) == []
    [point] = metrics.query(NS, "Rows", dimensions={"pipeline": "demo", "endpoint": "quote"})
    assert point.run_id is None


def test_time_range_is_start_inclusive_end_exclusive(md_metrics: Metrics) -> None:
    for minute in range(5):
        md_metrics.record(NS, "Rows", minute, "Count", timestamp=T0 + dt.timedelta(minutes=minute))
    got = md_metrics.query(
        NS, "Rows", start=T0 + dt.timedelta(minutes=1), end=T0 + dt.timedelta(minutes=3)
    )
    assert [p.value for p in got] == [1.0, 2.0]
    plus1 = dt.timezone(dt.timedelta(hours=1))
    assert len(md_metrics.query(NS, "Rows", start=T0.astimezone(plus1))) == 5


def test_default_timestamp_is_now(md_metrics: Metrics) -> None:
    before = dt.datetime.now(dt.UTC)
    md_metrics.record(NS, "Runs", 1, "Count")
    [point] = md_metrics.query(NS, "Runs")
    assert before <= point.timestamp <= dt.datetime.now(dt.UTC)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"unit": "Secs"}, "unknown unit 'Secs'"),
        ({"value": math.nan}, "not finite"),
        ({"value": math.inf}, "not finite"),
        ({"name": ""}, "metric name"),
        ({"namespace": "x" * 256}, "namespace"),
        ({"dimensions": {"endpoint": ""}}, "dimension endpoint"),
        ({"dimensions": {str(i): "v" for i in range(31)}}, "more than 30 dimensions"),
        ({"timestamp": dt.datetime(2026, 1, 1)}, "no time zone"),
    ],
)
def test_invalid_points_are_refused(
    md_metrics: Metrics, kwargs: dict[str, object], error: str
) -> None:
    args: dict[str, object] = {"namespace": NS, "name": "Rows", "value": 1.0, "unit": "Count"}
    with pytest.raises(ValueError, match=error):
        md_metrics.record(**{**args, **kwargs})  # type: ignore[arg-type]
    assert md_metrics.list_metrics() == []


def test_record_many_is_all_or_nothing(md_metrics: Metrics) -> None:
    good = Datapoint(NS, "Rows", 1.0, "Count", {"endpoint": "quote"}, T0)
    with pytest.raises(ValueError, match="unknown unit"):
        md_metrics.record_many([good, Datapoint(NS, "Rows", 2.0, "Rowz", {}, T0)])
    assert md_metrics.list_metrics() == []
    md_metrics.record_many([good, Datapoint(NS, "Rows", 2.0, "Count", {"endpoint": "quote"}, T0)])
    assert [p.run_id for p in md_metrics.query(NS, "Rows", dimensions={"endpoint": "quote"})] == [
        "r1",
        "r1",
    ]


def test_list_metrics(md_metrics: Metrics) -> None:
    md_metrics.record(NS, "Rows", 1, "Count", {"endpoint": "quote"})
    md_metrics.record(NS, "Rows", 2, "Count", {"endpoint": "quote"})
    md_metrics.record(NS, "Bytes", 9, "Bytes", {"endpoint": "quote", "n": 3})  # type: ignore[dict-item]
    md_metrics.record("Dataflow/Transform", "Rows", 1, "Count")
    assert md_metrics.list_metrics() == [
        (NS, "Bytes", {"endpoint": "quote", "n": "3"}),
        (NS, "Rows", {"endpoint": "quote"}),
        ("Dataflow/Transform", "Rows", {}),
    ]
    assert md_metrics.list_metrics("Dataflow/Transform") == [("Dataflow/Transform", "Rows", {})]
