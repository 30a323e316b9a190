"""CloudWatch metric-alarm evaluation: pure functions from datapoints to a state and its reason.

Semantics (CloudWatch "Using Amazon CloudWatch alarms", AlarmThatSendsEmail.md, sections
"Evaluating an alarm" and "How alarm state is evaluated when data is missing",
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html):

* The alarm's metric is reduced to one value per *period* with its statistic; a value breaches
  when ``value <op> threshold`` holds. Only complete periods are evaluated: at time T the newest
  period is the one that ended at or before T (pass ``include_partial_period`` to count the
  period in progress, e.g. right after a pipeline run).
* CloudWatch fetches an **evaluation range** longer than N (5 periods for N = 3); we use N + 2.
* If the range holds at least N real values, the newest N are evaluated and missing periods are
  ignored whatever ``treat_missing_data`` says. ALARM when at least M of them breach, else OK.
* Otherwise every real value in the range is evaluated plus as few filled periods as possible
  (N minus the real ones): ``breaching`` fills count as breaching, ``notBreaching`` as not.
  With ``missing`` and ``ignore`` nothing is filled: ALARM if at least M real values breach,
  OK if any real value does not breach; if every real value breaches but fewer than M,
  ``missing`` applies the **premature-alarm rule** (ALARM when the oldest breaching value is at
  least M periods old, since all newer periods are breaching or missing) and is otherwise
  INSUFFICIENT_DATA; ``ignore`` keeps the current state (so does ``missing``'s no-data case for
  ``ignore``). The doc's example tables are the fixture ``tests/monitor/fixtures/alarm_cases.yaml``.

  Why "OK if any real value does not breach" for ``missing``/``ignore``: the doc's M=2, N=3 row
  ``0 - X - -`` is OK even though its breaching X is 3 periods old and only missing periods
  follow it, so the premature rule can only apply when no real value in the range is good.

New alarms start in INSUFFICIENT_DATA with the reason ``Unchecked: Initial alarm creation``.
State reasons follow CloudWatch's wording ([Obs]), e.g. ``Threshold Crossed: 1 out of the last 1
datapoints [2.0 (09/07/24 11:51:00)] was greater than the threshold (1.0) (minimum 1 datapoint
for OK -> ALARM transition).``; the wording for filled periods and for INSUFFICIENT_DATA is
reconstructed from CloudWatch alarm histories ([R]).

Example:
    >>> decide([False, None, True, None, True], m=3, n=3, treat=TreatMissingData.MISSING).state
    <AlarmState.OK: 'OK'>
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from dataflow.config import AlarmSpec, ComparisonOperator, TreatMissingData
from dataflow.errors import ConfigError
from dataflow.monitor.metrics import Metrics
from dataflow.monitor.statistics import PeriodStatistic, check_statistic, period_start
from dataflow.monitor.statistics import period_statistics as _period_statistics

#: Reason of a new alarm that has not been evaluated yet.
INITIAL_REASON = "Unchecked: Initial alarm creation"

#: Longest Period x EvaluationPeriods for periods under an hour, and overall (PutMetricAlarm).
MAX_SHORT_WINDOW = 86_400
MAX_WINDOW = 7 * 86_400


class AlarmState(StrEnum):
    """CloudWatch's alarm states."""

    OK = "OK"
    """The metric is within the threshold."""
    ALARM = "ALARM"
    """The metric is outside the threshold."""
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"
    """New alarm, or not enough data to decide."""


_WORDS = {
    ComparisonOperator.GT: "greater than",
    ComparisonOperator.GE: "greater than or equal to",
    ComparisonOperator.LT: "less than",
    ComparisonOperator.LE: "less than or equal to",
}


@dataclass(frozen=True)
class Decision:
    """What the missing-data logic decided for one evaluation range.

    Attributes:
        state: the new state, or ``None`` to keep the current one (``ignore``).
        evaluated: indexes (into the range, oldest first) of the real values evaluated.
        fills: missing periods filled per ``treat_missing_data`` and evaluated.
        breaching: breaching values among the evaluated ones, fills included.
        premature: ALARM came from the premature-alarm rule.
    """

    state: AlarmState | None
    evaluated: tuple[int, ...]
    fills: int
    breaching: int
    premature: bool = False


def evaluation_range(n: int) -> int:
    """Periods fetched for an alarm of N evaluation periods (CloudWatch: 5 for N = 3).

    Example:
        >>> evaluation_range(3)
        5
    """
    return n + 2


def decide(slots: Sequence[bool | None], *, m: int, n: int, treat: TreatMissingData) -> Decision:
    """Apply M of N and missing-data treatment to a range (oldest first; None = missing).

    ``True`` is a breaching value, ``False`` a good one.

    Example:
        >>> d = decide([None, None, True, None, None], m=3, n=3, treat=TreatMissingData.MISSING)
        >>> d.state, d.premature
        (<AlarmState.ALARM: 'ALARM'>, True)
    """
    real = tuple(i for i, slot in enumerate(slots) if slot is not None)
    if len(real) >= n:
        chosen = real[-n:]
        bad = sum(1 for i in chosen if slots[i])
        return Decision(AlarmState.ALARM if bad >= m else AlarmState.OK, chosen, 0, bad)
    bad = sum(1 for i in real if slots[i])
    fills = n - len(real)
    if treat is TreatMissingData.BREACHING:
        total = bad + fills
        return Decision(AlarmState.ALARM if total >= m else AlarmState.OK, real, fills, total)
    if treat is TreatMissingData.NOT_BREACHING:
        return Decision(AlarmState.ALARM if bad >= m else AlarmState.OK, real, fills, bad)
    if bad >= m:
        return Decision(AlarmState.ALARM, real, 0, bad)
    if bad < len(real):
        return Decision(AlarmState.OK, real, 0, bad)
    if treat is TreatMissingData.MISSING:
        if real and len(slots) - real[0] >= m:
            return Decision(AlarmState.ALARM, real, 0, bad, premature=True)
        return Decision(AlarmState.INSUFFICIENT_DATA, real, 0, bad)
    return Decision(None, real, 0, bad)


def breaches(value: float, operator: ComparisonOperator, threshold: float) -> bool:
    """Whether one value is on the alarm side of the threshold.

    Example:
        >>> breaches(2.0, ComparisonOperator.GT, 1.0), breaches(1.0, ComparisonOperator.GT, 1.0)
        (True, False)
    """
    if operator is ComparisonOperator.GT:
        return value > threshold
    if operator is ComparisonOperator.GE:
        return value >= threshold
    if operator is ComparisonOperator.LT:
        return value < threshold
    return value <= threshold


@dataclass(frozen=True)
class Evaluation:
    """The outcome of evaluating one alarm at one time.

    ``state`` is ``None`` when the alarm keeps its current state (``ignore``); ``reason`` and
    ``reason_data`` are CloudWatch's StateReason and StateReasonData for the new state.
    """

    name: str
    state: AlarmState | None
    reason: str
    reason_data: dict[str, Any]
    decision: Decision
    datapoints: tuple[PeriodStatistic | None, ...]


def validate_alarm(spec: AlarmSpec) -> None:
    """Check what PutMetricAlarm checks beyond the field types.

    Raises:
        ConfigError: M > N, a too long evaluation window or an unknown statistic.

    Example:
        >>> from dataflow.config import MetricSpec
        >>> validate_alarm(AlarmSpec(name="a", metric=MetricSpec(namespace="N", name="M")))
    """
    n = spec.evaluation_periods
    m = spec.datapoints_to_alarm or n
    where = f"alarms: {spec.name}"
    if m > n:
        raise ConfigError(f"{where}: datapoints_to_alarm ({m}) is more than evaluation_periods")
    limit = MAX_SHORT_WINDOW if spec.period < 3600 else MAX_WINDOW
    if spec.period * n > limit:
        raise ConfigError(
            f"{where}: period x evaluation_periods is {spec.period * n} s, more than CloudWatch's "
            f"{limit} s — use fewer or shorter periods"
        )
    try:
        check_statistic(spec.statistic)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def config_hash(spec: AlarmSpec) -> str:
    """A hash of the alarm's definition; a change is a ConfigurationUpdate.

    Example:
        >>> from dataflow.config import MetricSpec
        >>> len(config_hash(AlarmSpec(name="a", metric=MetricSpec(namespace="N", name="M"))))
        64
    """
    text = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def evaluate(
    spec: AlarmSpec,
    metrics: Metrics,
    at: dt.datetime,
    *,
    current: AlarmState = AlarmState.INSUFFICIENT_DATA,
    include_partial_period: bool = False,
) -> Evaluation:
    """Evaluate an alarm at time ``at`` from the metrics store.

    Args:
        spec: the alarm.
        metrics: where the datapoints are.
        at: the evaluation time (aware).
        current: the alarm's current state (named in the reason's transition).
        include_partial_period: also evaluate the period in progress at ``at``.

    Example:
        >>> from dataflow.config import MetricSpec
        >>> from dataflow.metadata import open_metadata
        >>> spec = AlarmSpec(name="a", metric=MetricSpec(namespace="N", name="M"), threshold=1)
        >>> m = Metrics(open_metadata("sqlite://"))
        >>> m.record("N", "M", 2.0, timestamp=dt.datetime(2024, 7, 9, 11, 51, 5, tzinfo=dt.UTC))
        >>> at = dt.datetime(2024, 7, 9, 11, 52, 36, tzinfo=dt.UTC)
        >>> reason = evaluate(spec, m, at, current=AlarmState.OK).reason
        >>> reason[:76]
        'Threshold Crossed: 1 out of the last 1 datapoints [2.0 (09/07/24 11:51:00)] '
        >>> reason[76:]
        'was greater than the threshold (1.0) (minimum 1 datapoint for OK -> ALARM transition).'
    """
    validate_alarm(spec)
    period = spec.period
    end = period_start(at, period)
    if include_partial_period and end < at:
        end += dt.timedelta(seconds=period)
    size = evaluation_range(spec.evaluation_periods)
    start = end - dt.timedelta(seconds=period * size)
    found = {
        p.start: p
        for p in _period_statistics(
            metrics,
            spec.metric.namespace,
            spec.metric.name,
            spec.metric.dimensions,
            spec.statistic,
            period,
            start,
            end,
        )
    }
    slots = tuple(found.get(start + dt.timedelta(seconds=period * i)) for i in range(size))
    return evaluate_slots(spec, slots, at, current=current, range_start=start)


def evaluate_slots(
    spec: AlarmSpec,
    slots: Sequence[PeriodStatistic | None],
    at: dt.datetime,
    *,
    current: AlarmState = AlarmState.INSUFFICIENT_DATA,
    range_start: dt.datetime | None = None,
) -> Evaluation:
    """Evaluate an alarm over an evaluation range already reduced to one value per period.

    Example:
        >>> from dataflow.config import MetricSpec
        >>> spec = AlarmSpec(name="a", metric=MetricSpec(namespace="N", name="M"))
        >>> evaluate_slots(spec, [None, None, None], dt.datetime.now(dt.UTC)).reason
        'Insufficient Data: 1 datapoint was unknown.'
    """
    n = spec.evaluation_periods
    m = spec.datapoints_to_alarm or n
    flags = [
        None if s is None else breaches(s.value, spec.comparison_operator, spec.threshold)
        for s in slots
    ]
    decision = decide(flags, m=m, n=n, treat=spec.treat_missing_data)
    evaluated = [s for i in decision.evaluated if (s := slots[i]) is not None]
    reason = _reason(spec, decision, evaluated, flags, current, m, n)
    if range_start is None:
        range_start = period_start(at, spec.period) - dt.timedelta(seconds=spec.period * len(slots))
    data = _reason_data(spec, evaluated, range_start, at)
    return Evaluation(spec.name, decision.state, reason, data, decision, tuple(slots))


# --- CloudWatch's wording ------------------------------------------------------------------------


def java_double(value: float) -> str:
    """A number as Java's ``Double.toString`` prints it (CloudWatch's reasons do): 2.0, 1.0E7.

    Example:
        >>> java_double(2), java_double(0.25), java_double(12345678.0), java_double(0.0001)
        ('2.0', '0.25', '1.2345678E7', '1.0E-4')
    """
    value = float(value)
    if value == 0 or 1e-3 <= abs(value) < 1e7:
        text = repr(value)
        return text if "e" not in text else format(value, "f")
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)  # finite values only reach here
    mantissa = "".join(map(str, digits))
    power = exponent + len(mantissa) - 1
    rest = mantissa[1:] or "0"
    return f"{'-' if sign else ''}{mantissa[0]}.{rest}E{power}"


def reason_date(when: dt.datetime) -> str:
    """CloudWatch's date in reasons: ``dd/MM/yy HH:mm:ss`` UTC.

    Example:
        >>> reason_date(dt.datetime(2024, 7, 9, 11, 51, tzinfo=dt.UTC))
        '09/07/24 11:51:00'
    """
    return when.astimezone(dt.UTC).strftime("%d/%m/%y %H:%M:%S")


def _iso_ms(when: dt.datetime) -> str:
    when = when.astimezone(dt.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}+0000"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _reason(
    spec: AlarmSpec,
    decision: Decision,
    evaluated: list[PeriodStatistic],
    flags: Sequence[bool | None],
    current: AlarmState,
    m: int,
    n: int,
) -> str:
    state = decision.state
    if state is None:
        return ""
    if state is AlarmState.INSUFFICIENT_DATA:
        unknown = n - len(evaluated)
        return f"Insufficient Data: {_plural(unknown, 'datapoint')} {_was(unknown)} unknown."
    alarm = state is AlarmState.ALARM
    word = ("" if alarm else "not ") + _WORDS[spec.comparison_operator]
    # The datapoints named are the ones on the side of the new state, newest first.
    named = [
        s for i, s in zip(decision.evaluated, evaluated, strict=True) if bool(flags[i]) is alarm
    ][::-1]
    values = ", ".join(f"{java_double(s.value)} ({reason_date(s.start)})" for s in named)
    fill = ""
    if decision.fills:
        kind = (
            "Breaching"
            if spec.treat_missing_data is TreatMissingData.BREACHING
            else ("NonBreaching")
        )
        fill = (
            f"{_plural(decision.fills, 'missing datapoint')} {_was(decision.fills)} "
            f"treated as [{kind}]"
        )
    threshold = java_double(spec.threshold)
    if not evaluated:
        text = f"no datapoints were received for {_plural(decision.fills, 'period')} and {fill}"
    elif not named:
        text = fill
    else:
        text = (
            f"{len(named)} out of the last {len(evaluated)} datapoints [{values}] "
            f"{_was(len(named))} {word} the threshold ({threshold})"
        )
        if fill:
            text += f", and {fill}"
    minimum = m if alarm else n - m + 1
    return (
        f"Threshold Crossed: {text} (minimum {_plural(minimum, 'datapoint')} for "
        f"{current.value} -> {state.value} transition)."
    )


def _was(count: int) -> str:
    return "was" if count == 1 else "were"


def _reason_data(
    spec: AlarmSpec,
    evaluated: list[PeriodStatistic],
    range_start: dt.datetime,
    at: dt.datetime,
) -> dict[str, Any]:
    start = evaluated[0].start if evaluated else range_start
    return {
        "version": "1.0",
        "queryDate": _iso_ms(at),
        "startDate": _iso_ms(start),
        "statistic": spec.statistic,
        "period": spec.period,
        "recentDatapoints": [s.value for s in evaluated],
        "threshold": spec.threshold,
        "evaluatedDatapoints": [
            {"timestamp": _iso_ms(s.start), "sampleCount": float(s.sample_count), "value": s.value}
            for s in reversed(evaluated)
        ],
    }


__all__ = [
    "INITIAL_REASON",
    "AlarmState",
    "Decision",
    "Evaluation",
    "breaches",
    "config_hash",
    "decide",
    "evaluate",
    "evaluate_slots",
    "evaluation_range",
    "java_double",
    "reason_date",
    "validate_alarm",
]
