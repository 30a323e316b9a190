"""CloudWatch statistics per period, metric retention, and the period/time syntax of the CLI.

A statistic summarises the datapoints of one metric inside one *period*. Periods are aligned to
clock boundaries, i.e. to multiples of the period counted from the Unix epoch (a 300 s period
starts at :00, :05, :10 ...), which is how CloudWatch buckets GetMetricStatistics results when
the start time is on a boundary; we round ``start`` down to a boundary so the first period is
whole. A period without datapoints has no value (CloudWatch returns no datapoint for it, it does
not return 0). Statistics (CloudWatch "Statistics definitions",
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/Statistics-definitions.html):

==============  =========================================================================
SampleCount     number of datapoints in the period
Sum             their sum
Average         Sum / SampleCount
Minimum         the smallest value
Maximum         the largest value
pNN             percentile, NN in (0, 100] with up to two decimals: p50, p99, p99.9
==============  =========================================================================

**Percentiles use the nearest-rank method**: ``pNN`` is the smallest datapoint such that at
least NN % of the datapoints are less than or equal to it (the ``ceil(NN/100 * n)``-th value in
ascending order). Why: a percentile is then always a value that was actually observed (a latency
that really happened, never one invented between two samples), ``p100`` is the Maximum, and the
result does not depend on an interpolation convention. CloudWatch does not publish its method
(it computes percentiles from a compressed histogram with about 1 % relative error), so for
small samples any method is an approximation of it; nearest rank is the one that is exact for
the question "what value did NN % of the requests stay at or below".

Retention (CloudWatch, [R] "well known"): datapoints with a period under 60 s are kept 3 hours,
60 s aggregates 15 days, 300 s aggregates 63 days, 3600 s aggregates 455 days (15 months);
older data is rolled up into the coarser tier. Dataflow stores raw datapoints only and does not
roll up: :func:`prune` deletes points older than a cut-off, the equivalent of the last tier.

Example:
    >>> compute_statistic("p50", [1.0, 2.0, 3.0, 4.0])
    2.0
    >>> period_start(dt.datetime(2024, 7, 9, 11, 53, 10, tzinfo=dt.UTC), 300).isoformat()
    '2024-07-09T11:50:00+00:00'
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from dataflow.errors import ConfigError
from dataflow.metadata.db import MetadataDB
from dataflow.metadata.schema import metric_points, utc, utcnow
from dataflow.monitor.metrics import Datapoint, Metrics

#: The simple statistics (Statistic); percentiles are ExtendedStatistic ``pNN``.
SIMPLE_STATISTICS = ("SampleCount", "Sum", "Average", "Minimum", "Maximum")

#: CloudWatch's retention tiers: (datapoint period in seconds, how long it is kept).
RETENTION_TIERS: tuple[tuple[int, dt.timedelta], ...] = (
    (1, dt.timedelta(hours=3)),
    (60, dt.timedelta(days=15)),
    (300, dt.timedelta(days=63)),
    (3600, dt.timedelta(days=455)),
)

_PERCENTILE = re.compile(r"^p(\d{1,2}(?:\.\d{1,2})?|100(?:\.0{1,2})?)$")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class PeriodStatistic:
    """The statistic of one period: its start, value and how many datapoints it summarises."""

    start: dt.datetime
    value: float
    sample_count: int


def check_statistic(stat: str) -> str:
    """Return ``stat`` if CloudWatch knows it, else raise :class:`ConfigError`.

    Example:
        >>> check_statistic("p99.9")
        'p99.9'
    """
    if stat in SIMPLE_STATISTICS:
        return stat
    match = _PERCENTILE.match(stat)
    if match and 0 < float(match.group(1)) <= 100:
        return stat
    known = ", ".join(SIMPLE_STATISTICS)
    raise ConfigError(f"unknown statistic {stat!r}: use {known} or a percentile such as p99")


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile of ``values`` by nearest rank (see the module docstring).

    Example:
        >>> percentile([15.0, 20.0, 35.0, 40.0, 50.0], 30)
        20.0
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0 < pct <= 100:
        raise ValueError(f"percentile {pct} is not in (0, 100]")
    ordered = sorted(values)
    # round() first: 99.9 / 100 * 1000 is 998.9999999999999 in binary floating point.
    rank = math.ceil(round(pct / 100 * len(ordered), 9))
    return ordered[max(rank, 1) - 1]


def compute_statistic(stat: str, values: Sequence[float]) -> float:
    """One statistic of a non-empty list of values.

    Example:
        >>> compute_statistic("Average", [1.0, 2.0, 6.0])
        3.0
    """
    if not values:
        raise ValueError("a statistic of no values")
    if stat == "SampleCount":
        return float(len(values))
    if stat == "Sum":
        return math.fsum(values)
    if stat == "Average":
        return math.fsum(values) / len(values)
    if stat == "Minimum":
        return min(values)
    if stat == "Maximum":
        return max(values)
    check_statistic(stat)
    return percentile(values, float(stat[1:]))


def period_start(when: dt.datetime, period: int) -> dt.datetime:
    """The start of the period holding ``when``: a multiple of ``period`` since the epoch.

    Example:
        >>> period_start(dt.datetime(2024, 1, 1, 0, 0, 59, tzinfo=dt.UTC), 60).second
        0
    """
    if period <= 0:
        raise ValueError("period must be positive")
    seconds = (utc(when) - _EPOCH) // dt.timedelta(seconds=1)
    return _EPOCH + dt.timedelta(seconds=seconds - seconds % period)


def bucket(points: Iterable[Datapoint], period: int) -> dict[dt.datetime, list[float]]:
    """Group datapoints by the start of their period, oldest period first.

    Example:
        >>> t = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
        >>> pts = [Datapoint("N", "M", 1.0, timestamp=t), Datapoint("N", "M", 2.0, timestamp=t)]
        >>> bucket(pts, 60)[t]
        [1.0, 2.0]
    """
    groups: dict[dt.datetime, list[float]] = {}
    for point in points:
        groups.setdefault(period_start(point.timestamp, period), []).append(point.value)
    return dict(sorted(groups.items()))


def period_statistics(
    metrics: Metrics,
    namespace: str,
    name: str,
    dimensions: Mapping[str, str] | None,
    stat: str,
    period: int,
    start: dt.datetime,
    end: dt.datetime,
) -> list[PeriodStatistic]:
    """Like :func:`get_metric_statistics`, with each period's sample count (alarms need it).

    Example:
        >>> from dataflow.metadata import open_metadata
        >>> t = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
        >>> m = Metrics(open_metadata("sqlite://"))
        >>> m.record("N", "M", 4, timestamp=t)
        >>> period_statistics(m, "N", "M", None, "Sum", 60, t, t + dt.timedelta(minutes=1))[0].value
        4.0
    """
    check_statistic(stat)
    first = period_start(start, period)
    points = metrics.query(namespace, name, dimensions=dimensions, start=first, end=end)
    return [
        PeriodStatistic(when, compute_statistic(stat, values), len(values))
        for when, values in bucket(points, period).items()
    ]


def get_metric_statistics(
    metrics: Metrics,
    namespace: str,
    name: str,
    dimensions: Mapping[str, str] | None,
    stat: str,
    period: int,
    start: dt.datetime,
    end: dt.datetime,
) -> list[tuple[dt.datetime, float]]:
    """CloudWatch GetMetricStatistics: ``(period_start, value)`` for each period with data.

    The metric is ``namespace`` + ``name`` + exactly ``dimensions``. ``start`` is rounded down to
    a period boundary; datapoints at or after ``end`` are not read.

    Raises:
        ConfigError: an unknown statistic.

    Example:
        >>> from dataflow.metadata import open_metadata
        >>> t = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
        >>> m = Metrics(open_metadata("sqlite://"))
        >>> for s, v in ((0, 1.0), (30, 3.0), (65, 5.0)):
        ...     m.record("N", "M", v, timestamp=t + dt.timedelta(seconds=s))
        >>> got = get_metric_statistics(m, "N", "M", None, "Average", 60, t, t.replace(hour=1))
        >>> [v for _, v in got]
        [2.0, 5.0]
    """
    return [
        (p.start, p.value)
        for p in period_statistics(metrics, namespace, name, dimensions, stat, period, start, end)
    ]


def prune(db: MetadataDB, older_than: dt.datetime | dt.timedelta) -> int:
    """Delete datapoints older than a time (or an age before now); return how many.

    Example:
        >>> from dataflow.metadata import open_metadata
        >>> prune(open_metadata("sqlite://"), dt.timedelta(days=455))
        0
    """
    cutoff = utcnow() - older_than if isinstance(older_than, dt.timedelta) else utc(older_than)
    with db.begin() as conn:
        result = conn.execute(sa.delete(metric_points).where(metric_points.c.timestamp < cutoff))
    return int(result.rowcount or 0)


# --- the CLI's syntax for periods and times ------------------------------------------------------

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^(\d+)\s*([smhdw]?)$")
_RELATIVE = re.compile(r"^-\s*(\d+)\s*([smhdw])$")


def parse_period(text: str) -> int:
    """Seconds from ``60``, ``5m``, ``1h``, ``1d``.

    Raises:
        ConfigError: not a positive duration.

    Example:
        >>> parse_period("5m"), parse_period("60"), parse_period("1h")
        (300, 60, 3600)
    """
    match = _DURATION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise ConfigError(f"period {text!r} is not a duration: use seconds (60) or 5m, 1h, 1d")
    return int(match.group(1)) * _UNITS[match.group(2) or "s"]


def parse_time(text: str, *, now: dt.datetime | None = None) -> dt.datetime:
    """An aware UTC datetime from ISO-8601 (UTC if no offset), ``now`` or relative ``-1h``.

    Raises:
        ConfigError: neither form.

    Example:
        >>> now = dt.datetime(2024, 1, 2, 12, tzinfo=dt.UTC)
        >>> parse_time("-90m", now=now).isoformat()
        '2024-01-02T10:30:00+00:00'
        >>> parse_time("2024-01-02T10:00:00+02:00").isoformat()
        '2024-01-02T08:00:00+00:00'
    """
    now = now or utcnow()
    value = text.strip()
    if value == "now":
        return now
    match = _RELATIVE.match(value)
    if match:
        return now - dt.timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"time {text!r} is not ISO-8601 (2024-07-09T11:51:00Z), 'now' or relative (-1h)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def parse_dimensions(items: Sequence[str] | None) -> dict[str, str]:
    """``["k=v", ...]`` (from the command line or a query string) as a dimension mapping.

    Raises:
        ConfigError: an item without ``=``, a name or a value.

    Example:
        >>> parse_dimensions(["endpoint=quote", "symbol=A=B"])
        {'endpoint': 'quote', 'symbol': 'A=B'}
    """
    dims: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value:
            raise ConfigError(f"dimension {item!r}: use NAME=VALUE, e.g. endpoint=quote")
        dims[key.strip()] = value
    return dims


@dataclass(frozen=True)
class MetricStatistics:
    """The answer to a GetMetricStatistics-style request: one value per period."""

    namespace: str
    name: str
    dimensions: dict[str, str]
    stat: str
    period: int
    start: dt.datetime
    end: dt.datetime
    datapoints: list[tuple[dt.datetime, float]]

    def to_json(self) -> dict[str, object]:
        """Plain data (timestamps as ISO-8601 strings)."""
        return {
            "namespace": self.namespace,
            "name": self.name,
            "dimensions": self.dimensions,
            "stat": self.stat,
            "period": self.period,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "datapoints": [{"timestamp": t.isoformat(), "value": v} for t, v in self.datapoints],
        }


def metric_statistics(
    metrics: Metrics,
    namespace: str,
    name: str,
    *,
    dimensions: Sequence[str] | None,
    stat: str,
    period: str,
    start: str,
    end: str,
    now: dt.datetime | None = None,
) -> MetricStatistics:
    """Parse a request as the CLI and the HTTP API take it (``5m``, ``-3h``, ``k=v``) and answer it.

    Raises:
        ConfigError: an unknown statistic, a bad period, time or dimension, or end <= start.
    """
    check_statistic(stat)
    seconds = parse_period(period)
    now = now or dt.datetime.now(dt.UTC)
    first, last = parse_time(start, now=now), parse_time(end, now=now)
    if last <= first:
        raise ConfigError(f"end {end!r} is not after start {start!r}")
    dims = parse_dimensions(dimensions)
    points = get_metric_statistics(metrics, namespace, name, dims, stat, seconds, first, last)
    return MetricStatistics(namespace, name, dims, stat, seconds, first, last, points)


__all__ = [
    "RETENTION_TIERS",
    "SIMPLE_STATISTICS",
    "MetricStatistics",
    "PeriodStatistic",
    "bucket",
    "check_statistic",
    "compute_statistic",
    "get_metric_statistics",
    "metric_statistics",
    "parse_dimensions",
    "parse_period",
    "parse_time",
    "percentile",
    "period_start",
    "period_statistics",
    "prune",
]
