"""Prometheus exposition of the metadata database: ``GET /metrics`` on ``dataflow serve``.

A scrape reads the database at that moment (a custom collector, no state in the process), so
any number of servers, or a restarted one, expose the same numbers:

* every CloudWatch-style metric as a gauge holding its **newest datapoint**; the name is
  namespace + name, snake-cased and prefixed ``dataflow_`` (``Dataflow/Ingest`` ``Requests`` →
  ``dataflow_ingest_requests``), its dimensions become labels;
* ``dataflow_pipeline_runs{status="…"}``: how many runs are in each status;
* ``dataflow_alarm_state{alarm="…", state="…"}``: 1 for each stored alarm's current state,
  0 for its other states (Prometheus' "enum as labels" idiom).

Datapoints carry no timestamps: Prometheus stamps each sample with the scrape time, and
rejects samples older than its head block, which a metric recorded an hour ago would be.

Example:
    >>> prometheus_name("Dataflow/Ingest", "RowsWritten")
    'dataflow_ingest_rows_written'
    >>> prometheus_name("Custom", "p99 latency (ms)")
    'dataflow_custom_p99_latency_ms'
    >>> label_name("data-set")
    'data_set'
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from dataflow.dashboard.data import latest_metric_values, run_counts

if TYPE_CHECKING:
    from dataflow.metadata.db import MetadataDB

PREFIX = "dataflow_"
RUNS_METRIC = "dataflow_pipeline_runs"
ALARMS_METRIC = "dataflow_alarm_state"
ALARM_STATES = ("OK", "ALARM", "INSUFFICIENT_DATA")

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_INVALID = re.compile(r"[^a-zA-Z0-9_]+")


def prometheus_name(namespace: str, name: str) -> str:
    """The Prometheus metric name of a CloudWatch-style metric (``[a-z0-9_]``, ``dataflow_``)."""
    text = _CAMEL.sub("_", f"{namespace}_{name}")
    text = _INVALID.sub("_", text).strip("_").lower()
    text = re.sub(r"_+", "_", text)
    return text if text.startswith(PREFIX) else PREFIX + text


def label_name(key: str) -> str:
    """A dimension name as a Prometheus label name (no leading digit, no ``__`` prefix)."""
    text = _INVALID.sub("_", key)
    if not text or text[0].isdigit() or text.startswith("__"):
        text = "dim_" + text.lstrip("_")
    return text


class DataflowCollector(Collector):
    """Collects the gauges described in the module docstring from one metadata database.

    Example:
        >>> from dataflow.metadata import open_metadata
        >>> text = exposition(open_metadata("sqlite://")).decode()
        >>> 'dataflow_pipeline_runs{status="succeeded"} 0.0' in text
        True
    """

    def __init__(self, db: MetadataDB) -> None:
        self.db = db

    def collect(self) -> Iterator[Metric]:
        """One gauge family per metric name, then runs and alarms."""
        families: dict[str, Metric] = {}
        seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        for point in latest_metric_values(self.db):
            name = prometheus_name(point.namespace, point.name)
            if name in (RUNS_METRIC, ALARMS_METRIC):
                continue  # ours; a user metric cannot shadow them
            labels = {label_name(k): v for k, v in point.dimensions.items()}
            key = (name, tuple(sorted(labels.items())))
            if key in seen:
                continue  # two metrics whose names sanitise alike: the first one wins
            seen.add(key)
            family = families.get(name)
            if family is None:
                help_text = (
                    f"Newest datapoint of {point.namespace} {point.name} (unit {point.unit})"
                )
                family = families[name] = Metric(name, help_text, "gauge")
            family.add_sample(name, labels, point.value)
        yield from families.values()

        runs = GaugeMetricFamily(RUNS_METRIC, "Pipeline runs by status", labels=["status"])
        for status, count in run_counts(self.db).items():
            runs.add_metric([status], count)
        yield runs
        yield self._alarms()

    def _alarms(self) -> Metric:
        from dataflow.monitor.alarm_store import AlarmStore

        family = GaugeMetricFamily(
            ALARMS_METRIC, "1 for the alarm's current state, else 0", labels=["alarm", "state"]
        )
        for record in AlarmStore(self.db).list_states():
            for state in ALARM_STATES:
                family.add_metric([record.name, state], 1.0 if record.state == state else 0.0)
        return family


def exposition(db: MetadataDB) -> bytes:
    """The Prometheus text exposition (format 0.0.4) of ``db``'s metrics."""
    return generate_latest(DataflowCollector(db))


__all__ = [
    "CONTENT_TYPE_LATEST",
    "DataflowCollector",
    "exposition",
    "label_name",
    "prometheus_name",
]
