"""The alarms a new project gets when ``dataflow.yaml`` defines none.

All watch metrics recorded with the pipeline's dimension set ``{pipeline: <settings.name>}``
(CloudWatch never rolls up across dimensions, so the alarm must name exactly that set). The
period is the project's *run period*: the typical gap between fires of its scheduled jobs (the
median of the next fires of the most frequent enabled job), rounded up to a whole minute and
kept within 60 s .. 1 day; one hour when nothing is scheduled. One period holds about one run.

=======================  ==========================================  =========================
alarm                    metric, statistic, condition                missing data
=======================  ==========================================  =========================
dataflow-run-failed      Dataflow/Pipeline RunFailed, Sum > 0        ignore: a run's outcome
                                                                     stands until the next run
dataflow-dq-score        Dataflow/Quality Score, Minimum < 1.0       notBreaching (no DQ stage
                                                                     yet: no data is not bad)
dataflow-freshness       Dataflow/Freshness LagSeconds, Maximum >    notBreaching (same)
                         2 x schedule period (2 days unscheduled)
dataflow-rate-limited    Dataflow/Ingest RateLimited, Sum > 0        notBreaching (429s are
                                                                     reported when they happen)
dataflow-slow-run        Dataflow/Pipeline RunDurationRatio,         ignore
                         Maximum > 3
=======================  ==========================================  =========================

``RunFailed`` is 1 for every run that did not end ``succeeded``: ``failed``, ``partial`` (some
requests got no usable answer, or the daily budget ran out) and ``interrupted`` (SIGINT/SIGTERM).

"Much slower than its recent history": CloudWatch would use an anomaly-detection band
(``ANOMALY_DETECTION_BAND`` with ``GreaterThanUpperThreshold``), which our comparison operators
do not have, and a fixed threshold on the duration itself is wrong for every project but one.
So the run records a *self-normalised* metric, ``RunDurationRatio`` = this run's duration /
the median duration of the previous (up to 20) runs, through :func:`record_run_duration`, and
the alarm is a plain static threshold on it: ALARM when a run takes more than 3 x its median.
The median (not the mean) keeps one earlier slow run from hiding the next; no ratio is recorded
until 5 earlier runs exist, so a new project does not alarm on its first runs.

Example:
    >>> from dataflow.config import load_settings
    >>> [a.name for a in default_alarms(load_settings("/nonexistent-project", env={}))][:2]
    ['dataflow-run-failed', 'dataflow-dq-score']
"""

from __future__ import annotations

import datetime as dt
import itertools
import statistics
from typing import TYPE_CHECKING

from dataflow.config import (
    ActionSpec,
    AlarmSpec,
    ComparisonOperator,
    MetricSpec,
    Settings,
    TreatMissingData,
)
from dataflow.metadata.schema import utcnow

if TYPE_CHECKING:
    from dataflow.monitor.metrics import Metrics

#: Run period when no job is scheduled (seconds), and the freshness period assumed then.
UNSCHEDULED_PERIOD = 3600
UNSCHEDULED_FRESHNESS_PERIOD = 86_400
#: A run slower than this many times its recent median alarms.
SLOW_RUN_FACTOR = 3.0
#: Previous runs the median is taken over, and how many are needed before a ratio is recorded.
DURATION_HISTORY = 20
DURATION_MIN_HISTORY = 5


def schedule_period(settings: Settings, *, at: dt.datetime | None = None) -> int | None:
    """Seconds between fires of the most frequent enabled job (median gap), or ``None``.

    Example:
        >>> from dataflow.config import load_settings
        >>> schedule_period(load_settings("/nonexistent-project", env={})) is None
        True
    """
    try:
        from dataflow.schedule.expressions import next_fire_times
    except ImportError:  # the scheduler is optional for alarms
        return None
    after = at or utcnow()
    gaps: list[float] = []
    for job in settings.schedule.jobs:
        if not job.enabled:
            continue
        try:
            times = next_fire_times(job.schedule, tz=job.timezone, after=after, count=11)
        except Exception:  # a bad expression is the scheduler's error to report
            continue
        steps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
        if steps:
            gaps.append(statistics.median(steps))
    return int(min(gaps)) if gaps else None


def run_period(settings: Settings) -> int:
    """The period of the default alarms: the schedule period as a CloudWatch period.

    Example:
        >>> from dataflow.config import load_settings
        >>> run_period(load_settings("/nonexistent-project", env={}))
        3600
    """
    seconds = schedule_period(settings)
    if seconds is None:
        return UNSCHEDULED_PERIOD
    minutes = -(-seconds // 60)
    return int(min(max(minutes * 60, 60), 86_400))


def default_alarms(settings: Settings) -> list[AlarmSpec]:
    """The default alarms of a project (see the module docstring).

    Example:
        >>> from dataflow.config import load_settings
        >>> len(default_alarms(load_settings("/nonexistent-project", env={})))
        5
    """
    period = run_period(settings)
    freshness = 2 * (schedule_period(settings) or UNSCHEDULED_FRESHNESS_PERIOD)
    dims = {"pipeline": settings.name}
    log = [ActionSpec(type="log")]

    def alarm(
        name: str,
        description: str,
        namespace: str,
        metric: str,
        statistic: str,
        operator: ComparisonOperator,
        threshold: float,
        treat: TreatMissingData,
    ) -> AlarmSpec:
        return AlarmSpec(
            name=name,
            description=description,
            metric=MetricSpec(namespace=namespace, name=metric, dimensions=dims),
            statistic=statistic,
            period=period,
            evaluation_periods=1,
            comparison_operator=operator,
            threshold=threshold,
            treat_missing_data=treat,
            # ALARM only: an OK action would also fire on every new alarm's first evaluation.
            actions=log,
        )

    gt, lt = ComparisonOperator.GT, ComparisonOperator.LT
    ignore, good = TreatMissingData.IGNORE, TreatMissingData.NOT_BREACHING
    return [
        alarm("dataflow-run-failed",
              "A pipeline run did not get what it asked for (failed, partial or interrupted).",
              "Dataflow/Pipeline", "RunFailed", "Sum", gt, 0, ignore),
        alarm("dataflow-dq-score", "A data-quality score fell below 1.0 (a rule failed).",
              "Dataflow/Quality", "Score", "Minimum", lt, 1.0, good),
        alarm("dataflow-freshness", "The newest data is older than twice the schedule period.",
              "Dataflow/Freshness", "LagSeconds", "Maximum", gt, float(freshness), good),
        alarm("dataflow-rate-limited", "The API answered 429 (rate limited).",
              "Dataflow/Ingest", "RateLimited", "Sum", gt, 0, good),
        alarm("dataflow-slow-run",
              f"A run took more than {SLOW_RUN_FACTOR:g}x the median of its recent runs.",
              "Dataflow/Pipeline", "RunDurationRatio", "Maximum", gt, SLOW_RUN_FACTOR, ignore),
    ]  # fmt: skip


def configured_alarms(settings: Settings) -> list[AlarmSpec]:
    """``settings.alarms``, or the default alarms when the project defines none.

    Example:
        >>> from dataflow.config import load_settings
        >>> len(configured_alarms(load_settings("/nonexistent-project", env={})))
        5
    """
    return list(settings.alarms) or default_alarms(settings)


def record_run_duration(
    metrics: Metrics, seconds: float, *, at: dt.datetime | None = None
) -> float | None:
    """Record ``Dataflow/Pipeline RunDuration`` and, with enough history, ``RunDurationRatio``.

    Both use ``metrics``' default dimensions (the pipeline runner's ``{pipeline: name}``).
    Returns the ratio recorded, or ``None`` while fewer than 5 earlier runs exist.

    Example:
        >>> from dataflow.metadata import open_metadata
        >>> from dataflow.monitor.metrics import Metrics
        >>> m = Metrics(open_metadata("sqlite://"), default_dimensions={"pipeline": "p"})
        >>> t = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
        >>> [record_run_duration(m, s, at=t + dt.timedelta(hours=i))
        ...  for i, s in enumerate([10, 10, 12, 8, 10, 40])]
        [None, None, None, None, None, 4.0]
    """
    at = at or utcnow()
    earlier = metrics.query(
        "Dataflow/Pipeline",
        "RunDuration",
        dimensions=metrics.default_dimensions,
        start=at - dt.timedelta(days=30),
        end=at,
    )
    metrics.record("Dataflow/Pipeline", "RunDuration", seconds, "Seconds", timestamp=at)
    recent = [p.value for p in earlier[-DURATION_HISTORY:]]
    if len(recent) < DURATION_MIN_HISTORY:
        return None
    median = statistics.median(recent)
    if median <= 0:
        return None
    ratio = seconds / median
    metrics.record("Dataflow/Pipeline", "RunDurationRatio", ratio, "None", timestamp=at)
    return ratio


__all__ = [
    "DURATION_HISTORY",
    "DURATION_MIN_HISTORY",
    "SLOW_RUN_FACTOR",
    "UNSCHEDULED_FRESHNESS_PERIOD",
    "UNSCHEDULED_PERIOD",
    "configured_alarms",
    "default_alarms",
    "record_run_duration",
    "run_period",
    "schedule_period",
]
