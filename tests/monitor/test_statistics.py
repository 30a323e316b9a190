"""CloudWatch statistics per period: the five statistics, percentiles, alignment, retention."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataflow.errors import ConfigError
from dataflow.metadata import MetadataDB, open_metadata
from dataflow.monitor.metrics import Metrics
from dataflow.monitor.statistics import (
    RETENTION_TIERS,
    check_statistic,
    compute_statistic,
    get_metric_statistics,
    parse_period,
    parse_time,
    percentile,
    period_start,
    period_statistics,
    prune,
)

T0 = dt.datetime(2024, 7, 9, 11, 0, tzinfo=dt.UTC)
NS = "Dataflow/Ingest"
DIMS = {"pipeline": "p", "endpoint": "quote"}
# The nearest-rank example everyone checks against (Wikipedia, "Percentile").
SAMPLE = [35.0, 20.0, 50.0, 15.0, 40.0]


@pytest.fixture
def mon_db(tmp_path: Path) -> Iterator[MetadataDB]:
    db = open_metadata(f"sqlite:///{tmp_path / 'dataflow.db'}")
    yield db
    db.dispose()


@pytest.fixture
def mon_metrics(mon_db: MetadataDB) -> Metrics:
    return Metrics(mon_db)


def _at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


@pytest.mark.parametrize(
    ("stat", "expected"),
    [
        ("SampleCount", 5.0),
        ("Sum", 160.0),
        ("Average", 32.0),
        ("Minimum", 15.0),
        ("Maximum", 50.0),
        ("p5", 15.0),
        ("p30", 20.0),
        ("p40", 20.0),
        ("p50", 35.0),
        ("p99.9", 50.0),
        ("p100", 50.0),
    ],
)
def test_each_statistic(stat: str, expected: float) -> None:
    assert compute_statistic(stat, SAMPLE) == expected


def test_percentiles_are_observed_values_by_nearest_rank() -> None:
    values = [float(v) for v in range(1, 1001)]
    assert percentile(values, 99.9) == 999.0
    assert percentile(values, 99.99) == 1000.0
    assert percentile(values[:100], 7) == 7.0  # 7 / 100 * 100 is 7.000000000000001
    assert percentile([3.0], 1) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0  # not 2.5: no value between samples


@pytest.mark.parametrize("stat", ["p0", "p101", "p99.999", "Median", "sum", "p", "P99"])
def test_unknown_statistics_are_refused(stat: str) -> None:
    with pytest.raises(ConfigError, match="unknown statistic"):
        check_statistic(stat)


def test_periods_are_aligned_to_clock_boundaries() -> None:
    assert period_start(dt.datetime(2024, 7, 9, 11, 53, 10, tzinfo=dt.UTC), 300) == _at(50)
    assert period_start(_at(50), 300) == _at(50)
    assert period_start(dt.datetime(2024, 7, 9, 11, 59, 59, tzinfo=dt.UTC), 3600) == T0
    assert period_start(dt.datetime(2024, 7, 9, 11, 0, 25, tzinfo=dt.UTC), 10) == _at(1 / 3)


def test_get_metric_statistics_buckets_per_period(mon_metrics: Metrics) -> None:
    for minute, value in [(0.5, 1.0), (4.9, 3.0), (5.0, 10.0), (17, 7.0), (19.99, 9.0)]:
        mon_metrics.record(NS, "Rows", value, "Count", DIMS, _at(minute))
    mon_metrics.record(NS, "Rows", 1000.0, "Count", {"pipeline": "p"}, _at(1))  # another metric

    got = get_metric_statistics(mon_metrics, NS, "Rows", DIMS, "Sum", 300, _at(2), _at(60))
    # start 11:02 is rounded down to 11:00; the empty 11:10 period is absent, not 0.
    assert got == [(_at(0), 4.0), (_at(5), 10.0), (_at(15), 16.0)]
    averages = get_metric_statistics(mon_metrics, NS, "Rows", DIMS, "Average", 600, T0, _at(20))
    assert averages == [(_at(0), 14 / 3), (_at(10), 8.0)]
    counts = period_statistics(mon_metrics, NS, "Rows", DIMS, "p50", 3600, T0, _at(60))
    assert [(p.value, p.sample_count) for p in counts] == [(7.0, 5)]


def test_end_is_exclusive(mon_metrics: Metrics) -> None:
    mon_metrics.record(NS, "Rows", 1.0, "Count", DIMS, _at(5))
    assert get_metric_statistics(mon_metrics, NS, "Rows", DIMS, "Sum", 60, T0, _at(5)) == []
    assert len(get_metric_statistics(mon_metrics, NS, "Rows", DIMS, "Sum", 60, T0, _at(6))) == 1


def test_prune_deletes_only_older_points(mon_db: MetadataDB, mon_metrics: Metrics) -> None:
    for minute in (0, 10, 20):
        mon_metrics.record(NS, "Rows", 1.0, "Count", DIMS, _at(minute))
    assert prune(mon_db, _at(10)) == 1
    assert [p.timestamp for p in mon_metrics.query(NS, "Rows", dimensions=DIMS)] == [
        _at(10),
        _at(20),
    ]
    assert prune(mon_db, dt.timedelta(days=1)) == 2  # 2024 is more than a day ago
    assert dict(RETENTION_TIERS)[60] == dt.timedelta(days=15)
    assert dict(RETENTION_TIERS)[3600] == dt.timedelta(days=455)


@pytest.mark.parametrize(
    ("text", "seconds"), [("60", 60), ("5m", 300), ("1h", 3600), ("1d", 86400), ("10s", 10)]
)
def test_period_syntax(text: str, seconds: int) -> None:
    assert parse_period(text) == seconds


@pytest.mark.parametrize("text", ["0", "5 minutes", "-5m", "1.5h", ""])
def test_bad_periods(text: str) -> None:
    with pytest.raises(ConfigError, match="not a duration"):
        parse_period(text)


def test_time_syntax() -> None:
    now = dt.datetime(2024, 7, 9, 12, tzinfo=dt.UTC)
    assert parse_time("-1h", now=now) == _at(0)
    assert parse_time("now", now=now) == now
    assert parse_time("2024-07-09T11:00:00Z") == T0
    assert parse_time("2024-07-09T13:00:00+02:00") == T0
    assert parse_time("2024-07-09 11:00") == T0  # no offset: UTC
    with pytest.raises(ConfigError, match="ISO-8601"):
        parse_time("yesterday")
