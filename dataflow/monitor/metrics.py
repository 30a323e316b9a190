"""Metrics, with CloudWatch's model: every stage records datapoints through :class:`Metrics`.

A metric is a namespace, a name and an *exact* set of dimensions: ``Rows{endpoint=quote}`` and
``Rows{endpoint=quote, symbol=AAPL}`` are two different metrics, and a query for one never
returns points of the other (CloudWatch "Dimension combinations",
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch_concepts.html#dimension-combinations).
Units are CloudWatch's. Points are written through to the metadata database, one insert each;
alarms and dashboards read them back with :meth:`Metrics.query`.

Example:
    >>> from dataflow.metadata import open_metadata
    >>> metrics = Metrics(open_metadata("sqlite://"), run_id="r1")
    >>> metrics.record("Dataflow/Ingest", "Requests", 3, "Count", {"endpoint": "quote"})
    >>> points = metrics.query("Dataflow/Ingest", "Requests", dimensions={"endpoint": "quote"})
    >>> [p.value for p in points]
    [3.0]
    >>> metrics.query("Dataflow/Ingest", "Requests")  # no dimensions is another metric
    []
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from dataflow.metadata.db import MetadataDB
from dataflow.metadata.schema import canonical_dimensions, metric_points, utc, utcnow

#: CloudWatch's units (MetricDatum.Unit).
UNITS = frozenset(
    {
        "Seconds",
        "Microseconds",
        "Milliseconds",
        "Bytes",
        "Kilobytes",
        "Megabytes",
        "Gigabytes",
        "Terabytes",
        "Bits",
        "Kilobits",
        "Megabits",
        "Gigabits",
        "Terabits",
        "Percent",
        "Count",
        "Bytes/Second",
        "Kilobytes/Second",
        "Megabytes/Second",
        "Gigabytes/Second",
        "Terabytes/Second",
        "Bits/Second",
        "Kilobits/Second",
        "Megabits/Second",
        "Gigabits/Second",
        "Terabits/Second",
        "Count/Second",
        "None",
    }
)

#: CloudWatch's limits on names and dimensions.
MAX_NAME_LENGTH = 255
MAX_DIMENSIONS = 30
MAX_DIMENSION_VALUE_LENGTH = 1024


@dataclass(frozen=True)
class Datapoint:
    """One value of one metric at one time."""

    namespace: str
    name: str
    value: float
    unit: str = "None"
    dimensions: dict[str, str] = field(default_factory=dict, hash=False)
    timestamp: dt.datetime = field(default_factory=utcnow)
    run_id: str | None = None


class Metrics:
    """Records and reads metrics in the metadata database.

    Args:
        db: an open (migrated) :class:`~dataflow.metadata.MetadataDB`.
        run_id: stored with every point recorded here (not a dimension: it would make every
            run a new metric).
        default_dimensions: added to the dimensions of every point recorded here (explicit
            dimensions win). They become part of the metric's identity; :meth:`query` does not
            add them, pass the full set there.
    """

    def __init__(
        self,
        db: MetadataDB,
        *,
        run_id: str | None = None,
        default_dimensions: Mapping[str, str] | None = None,
    ) -> None:
        self.db = db
        self.run_id = run_id
        self.default_dimensions = dict(default_dimensions or {})

    def record(
        self,
        namespace: str,
        name: str,
        value: float,
        unit: str = "None",
        dimensions: Mapping[str, str] | None = None,
        timestamp: dt.datetime | None = None,
    ) -> None:
        """Record one datapoint (one insert, committed at once).

        Raises:
            ValueError: unknown unit, value not finite, empty or too long names, too many
                dimensions, a naive timestamp.

        Example:
            >>> from dataflow.metadata import open_metadata
            >>> Metrics(open_metadata("sqlite://")).record("Dataflow", "Rows", 10, "Count")
        """
        self.record_many(
            [
                Datapoint(
                    namespace,
                    name,
                    value,
                    unit,
                    dict(dimensions or {}),
                    timestamp or utcnow(),
                    self.run_id,
                )
            ]
        )

    def record_many(self, points: Iterable[Datapoint]) -> None:
        """Record many datapoints in one transaction (all or none).

        A point without ``run_id`` gets this object's run id; default dimensions are added.

        Example:
            >>> from dataflow.metadata import open_metadata
            >>> Metrics(open_metadata("sqlite://")).record_many([Datapoint("D", "Rows", 1.0)])
        """
        rows = [self._row(point) for point in points]
        if not rows:
            return
        with self.db.begin() as conn:
            conn.execute(metric_points.insert(), rows)

    def query(
        self,
        namespace: str,
        name: str,
        *,
        dimensions: Mapping[str, str] | None = None,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
    ) -> list[Datapoint]:
        """The datapoints of one metric, oldest first, with ``start <= timestamp < end``.

        The metric is ``namespace`` + ``name`` + exactly ``dimensions`` (``None`` = no
        dimensions), as in CloudWatch's GetMetricStatistics.

        Example:
            >>> from dataflow.metadata import open_metadata
            >>> Metrics(open_metadata("sqlite://")).query("Dataflow", "Rows", dimensions={"a": "b"})
            []
        """
        query = (
            sa.select(metric_points)
            .where(
                metric_points.c.namespace == namespace,
                metric_points.c.name == name,
                metric_points.c.dimensions == canonical_dimensions(_str_dims(dimensions)),
            )
            .order_by(metric_points.c.timestamp, metric_points.c.id)
        )
        if start is not None:
            query = query.where(metric_points.c.timestamp >= utc(start, what="start"))
        if end is not None:
            query = query.where(metric_points.c.timestamp < utc(end, what="end"))
        with self.db.read() as conn:
            rows = conn.execute(query).mappings().all()
        return [_point(row) for row in rows]

    def list_metrics(self, namespace: str | None = None) -> list[tuple[str, str, dict[str, str]]]:
        """Every metric that has datapoints: ``(namespace, name, dimensions)``, sorted.

        Example:
            >>> from dataflow.metadata import open_metadata
            >>> m = Metrics(open_metadata("sqlite://"), default_dimensions={"pipeline": "demo"})
            >>> m.record("Dataflow", "Rows", 1, "Count")
            >>> m.list_metrics()
            [('Dataflow', 'Rows', {'pipeline': 'demo'})]
        """
        cols = (metric_points.c.namespace, metric_points.c.name, metric_points.c.dimensions)
        query = sa.select(*cols).distinct().order_by(*cols)
        if namespace is not None:
            query = query.where(metric_points.c.namespace == namespace)
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        return [(ns, metric, json.loads(dims)) for ns, metric, dims in rows]

    # --- internals -------------------------------------------------------------------------------

    def _row(self, point: Datapoint) -> dict[str, Any]:
        _check_name(point.namespace, "namespace")
        _check_name(point.name, "metric name")
        if point.unit not in UNITS:
            raise ValueError(
                f"unknown unit {point.unit!r} for {point.namespace}/{point.name}; use a "
                f"CloudWatch unit: {', '.join(sorted(UNITS))}"
            )
        value = float(point.value)
        if not math.isfinite(value):
            raise ValueError(f"{point.namespace}/{point.name}: value {value} is not finite")
        dims = {**self.default_dimensions, **_str_dims(point.dimensions)}
        if len(dims) > MAX_DIMENSIONS:
            raise ValueError(
                f"{point.namespace}/{point.name}: more than {MAX_DIMENSIONS} dimensions"
            )
        for key, dim_value in dims.items():
            _check_name(key, "dimension name")
            if not dim_value or len(dim_value) > MAX_DIMENSION_VALUE_LENGTH:
                raise ValueError(
                    f"dimension {key}: value must be 1 to {MAX_DIMENSION_VALUE_LENGTH} characters"
                )
        return {
            "namespace": point.namespace,
            "name": point.name,
            "dimensions": canonical_dimensions(dims),
            "value": value,
            "unit": point.unit,
            "timestamp": utc(point.timestamp, what="timestamp"),
            "run_id": point.run_id if point.run_id is not None else self.run_id,
        }


def _str_dims(dimensions: Mapping[str, Any] | None) -> dict[str, str]:
    # Dimension values are strings in CloudWatch; accept ints etc. and store their text.
    return {str(k): str(v) for k, v in (dimensions or {}).items()}


def _check_name(value: str, what: str) -> None:
    if not value or len(value) > MAX_NAME_LENGTH:
        raise ValueError(f"{what} {value!r} must be 1 to {MAX_NAME_LENGTH} characters")


def _point(row: sa.RowMapping) -> Datapoint:
    return Datapoint(
        namespace=row["namespace"],
        name=row["name"],
        value=row["value"],
        unit=row["unit"],
        dimensions=json.loads(row["dimensions"]),
        timestamp=row["timestamp"],
        run_id=row["run_id"],
    )


__all__ = ["UNITS", "Datapoint", "Metrics"]
