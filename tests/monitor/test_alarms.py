"""Alarm evaluation as CloudWatch documents it: the doc tables, reasons, states and history."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from dataflow.config import (
    AlarmSpec,
    ComparisonOperator,
    MetricSpec,
    Settings,
    TreatMissingData,
    load_settings,
)
from dataflow.errors import ConfigError
from dataflow.metadata import MetadataDB, open_metadata
from dataflow.monitor.alarm_store import AlarmStore, evaluate_all
from dataflow.monitor.alarms import (
    INITIAL_REASON,
    AlarmState,
    decide,
    evaluate,
    evaluation_range,
    java_double,
    validate_alarm,
)
from dataflow.monitor.default_alarms import (
    configured_alarms,
    default_alarms,
    record_run_duration,
    run_period,
)
from dataflow.monitor.metrics import Metrics

CASES = yaml.safe_load((Path(__file__).parent / "fixtures" / "alarm_cases.yaml").read_text())
TREATMENTS = ["missing", "ignore", "breaching", "notBreaching"]
PERIOD = 300
# 12:00 is a period boundary: evaluating at 12:00:30 looks at the 5 periods 11:35 .. 11:55.
AT = dt.datetime(2024, 7, 9, 12, 0, 30, tzinfo=dt.UTC)
NS = "Test/Alarms"


def _case_id(case: dict[str, Any]) -> str:
    return f"M{case['m']}N{case['n']}:{case['points']}"


TABLE = [
    pytest.param(case, treat, id=f"{_case_id(case)}:{treat}")
    for case in CASES
    for treat in TREATMENTS
]


def _spec(name: str = "a", **fields: Any) -> AlarmSpec:
    base: dict[str, Any] = {
        "name": name,
        "metric": MetricSpec(namespace=NS, name="Errors", dimensions={"pipeline": "p"}),
        "statistic": "Maximum",
        "period": PERIOD,
        "comparison_operator": ComparisonOperator.GT,
        "threshold": 1.0,
    }
    return AlarmSpec(**{**base, **fields})


def _record_pattern(metrics: Metrics, points: str, *, at: dt.datetime = AT) -> None:
    """Put one datapoint in each period of the evaluation range ending before ``at``."""
    end = at.replace(second=0, microsecond=0)
    end -= dt.timedelta(minutes=end.minute % 5)
    for i, mark in enumerate(points):
        when = end - dt.timedelta(seconds=PERIOD * (len(points) - i)) + dt.timedelta(seconds=42)
        if mark != "-":
            metrics.record(NS, "Errors", 2.0 if mark == "X" else 0.0, "Count",
                           {"pipeline": "p"}, when)  # fmt: skip


@pytest.fixture
def mon_db(tmp_path: Path) -> Iterator[MetadataDB]:
    db = open_metadata(f"sqlite:///{tmp_path / 'dataflow.db'}")
    yield db
    db.dispose()


@pytest.fixture
def mon_settings(tmp_path: Path) -> Settings:
    return load_settings(tmp_path, env={})


# --- the doc tables -------------------------------------------------------------------------------


@pytest.mark.parametrize(("case", "treat"), TABLE)
def test_decision_table(case: dict[str, Any], treat: str) -> None:
    slots = [None if c == "-" else c == "X" for c in case["points"]]
    decision = decide(slots, m=case["m"], n=case["n"], treat=TreatMissingData(treat))
    expected = case[treat]
    assert (decision.state or "retain") == expected


def test_the_range_is_five_periods_for_three() -> None:
    # The doc tables: "CloudWatch retrieves the 5 most recent data points" for N = 3.
    assert evaluation_range(3) == 5
    assert all(len(c["points"]) == evaluation_range(c["n"]) for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_doc_table_through_the_metric_store(case: dict[str, Any], mon_db: MetadataDB) -> None:
    """The same rows end to end: datapoints in the store, statistic per period, evaluation."""
    metrics = Metrics(mon_db)
    _record_pattern(metrics, case["points"])
    for treat in TREATMENTS:
        spec = _spec(
            datapoints_to_alarm=case["m"],
            evaluation_periods=case["n"],
            treat_missing_data=TreatMissingData(treat),
        )
        for current in AlarmState:
            got = evaluate(spec, metrics, AT, current=current).state or current
            expected = current if case[treat] == "retain" else AlarmState(case[treat])
            assert got is expected, (treat, current)


def test_breaching_data_is_ignored_for_another_dimension_set(mon_db: MetadataDB) -> None:
    metrics = Metrics(mon_db)
    when = AT - dt.timedelta(minutes=3)
    metrics.record(NS, "Errors", 9.0, "Count", {"pipeline": "p", "endpoint": "quote"}, when)
    spec = _spec(treat_missing_data=TreatMissingData.MISSING)
    assert evaluate(spec, metrics, AT).state is AlarmState.INSUFFICIENT_DATA


# --- reasons -------------------------------------------------------------------------------------


def test_reason_and_reason_data_in_cloudwatch_wording(mon_db: MetadataDB) -> None:
    metrics = Metrics(mon_db)
    metrics.record(NS, "Errors", 1.5, "Count", {"pipeline": "p"},
                   dt.datetime(2024, 7, 9, 11, 51, 5, tzinfo=dt.UTC))  # fmt: skip
    metrics.record(NS, "Errors", 0.5, "Count", {"pipeline": "p"},
                   dt.datetime(2024, 7, 9, 11, 51, 40, tzinfo=dt.UTC))  # fmt: skip
    spec = _spec(statistic="Sum", period=60)
    at = dt.datetime(2024, 7, 9, 11, 52, 36, 431000, tzinfo=dt.UTC)
    result = evaluate(spec, metrics, at, current=AlarmState.OK)
    assert result.state is AlarmState.ALARM
    assert result.reason == (
        "Threshold Crossed: 1 out of the last 1 datapoints [2.0 (09/07/24 11:51:00)] was greater "
        "than the threshold (1.0) (minimum 1 datapoint for OK -> ALARM transition)."
    )
    assert result.reason_data == {
        "version": "1.0",
        "queryDate": "2024-07-09T11:52:36.431+0000",
        "startDate": "2024-07-09T11:51:00.000+0000",
        "statistic": "Sum",
        "period": 60,
        "recentDatapoints": [2.0],
        "threshold": 1.0,
        "evaluatedDatapoints": [
            {"timestamp": "2024-07-09T11:51:00.000+0000", "sampleCount": 2.0, "value": 2.0}
        ],
    }


def test_ok_reason_lists_the_good_datapoints_newest_first(mon_db: MetadataDB) -> None:
    metrics = Metrics(mon_db)
    _record_pattern(metrics, "00X00")
    spec = _spec(evaluation_periods=3, datapoints_to_alarm=2,
                 comparison_operator=ComparisonOperator.GE)  # fmt: skip
    result = evaluate(spec, metrics, AT, current=AlarmState.ALARM)
    assert result.state is AlarmState.OK
    assert result.reason == (
        "Threshold Crossed: 2 out of the last 3 datapoints [0.0 (09/07/24 11:55:00), "
        "0.0 (09/07/24 11:50:00)] were not greater than or equal to the threshold (1.0) "
        "(minimum 2 datapoints for ALARM -> OK transition)."
    )


def test_filled_periods_are_named_in_the_reason(mon_db: MetadataDB) -> None:
    spec = _spec(evaluation_periods=3, treat_missing_data=TreatMissingData.NOT_BREACHING)
    result = evaluate(spec, Metrics(mon_db), AT)
    assert result.reason == (
        "Threshold Crossed: no datapoints were received for 3 periods and 3 missing datapoints "
        "were treated as [NonBreaching] (minimum 1 datapoint for INSUFFICIENT_DATA -> OK "
        "transition)."
    )
    missing = evaluate(_spec(evaluation_periods=3), Metrics(mon_db), AT)
    assert missing.reason == "Insufficient Data: 3 datapoints were unknown."


def test_numbers_print_like_java_doubles() -> None:
    assert [java_double(v) for v in (2, 0.5, -3.25, 1e7, 1.5e-5, 0)] == [
        "2.0", "0.5", "-3.25", "1.0E7", "1.5E-5", "0.0",
    ]  # fmt: skip


def test_only_complete_periods_unless_the_partial_one_is_asked_for(mon_db: MetadataDB) -> None:
    metrics = Metrics(mon_db)
    metrics.record(NS, "Errors", 5.0, "Count", {"pipeline": "p"}, AT - dt.timedelta(seconds=10))
    spec = _spec()
    assert evaluate(spec, metrics, AT).state is AlarmState.INSUFFICIENT_DATA
    assert evaluate(spec, metrics, AT, include_partial_period=True).state is AlarmState.ALARM


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"evaluation_periods": 2, "datapoints_to_alarm": 3}, "datapoints_to_alarm"),
        ({"period": 600, "evaluation_periods": 145}, "period x evaluation_periods"),
        ({"statistic": "Median"}, "unknown statistic"),
    ],
)
def test_alarms_cloudwatch_would_refuse(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_alarm(_spec(**fields))


# --- states and history ---------------------------------------------------------------------------


def test_state_history_and_configuration_updates(
    mon_settings: Settings, mon_db: MetadataDB
) -> None:
    spec = _spec(evaluation_periods=1, treat_missing_data=TreatMissingData.MISSING)
    settings = mon_settings.model_copy(update={"alarms": [spec]})
    store = AlarmStore(mon_db)

    first = evaluate_all(settings, mon_db, AT)
    assert [(r.state, r.changed) for r in first] == [("INSUFFICIENT_DATA", False)]
    assert first[0].reason == INITIAL_REASON
    created = store.history("a")
    assert [(h.item_type, h.summary) for h in created] == [
        ("ConfigurationUpdate", 'Alarm "a" created')
    ]

    metrics = Metrics(mon_db)
    metrics.record(NS, "Errors", 3.0, "Count", {"pipeline": "p"}, AT)
    later = AT + dt.timedelta(seconds=PERIOD)
    second = evaluate_all(settings, mon_db, later)
    assert [(r.state, r.previous_state, r.changed) for r in second] == [
        ("ALARM", "INSUFFICIENT_DATA", True)
    ]
    record = store.get("a")
    assert record is not None
    assert record.state == "ALARM"
    assert record.reason.startswith("Threshold Crossed: 1 out of the last 1 datapoints [3.0 (")
    assert record.reason_data["recentDatapoints"] == [3.0]

    # Same state again: no new history item.
    evaluate_all(settings, mon_db, later + dt.timedelta(seconds=30))
    assert len(store.history("a")) == 2

    # A changed definition is a ConfigurationUpdate; the state is kept (PutMetricAlarm).
    changed = settings.model_copy(update={"alarms": [_spec(threshold=10.0)]})
    third = evaluate_all(changed, mon_db, later + dt.timedelta(seconds=40))
    assert third[0].state == "OK"
    items = store.history("a")
    assert [h.item_type for h in items] == [
        "StateUpdate", "ConfigurationUpdate", "StateUpdate", "ConfigurationUpdate",
    ]  # fmt: skip
    assert items[1].summary == 'Alarm "a" updated'
    assert items[0].summary == "Alarm updated from ALARM to OK"
    assert items[0].data["newState"]["stateValue"] == "OK"
    assert "url" not in str(items[1].data)


def test_ignore_keeps_the_state_through_a_gap(mon_settings: Settings, mon_db: MetadataDB) -> None:
    spec = _spec(treat_missing_data=TreatMissingData.IGNORE)
    settings = mon_settings.model_copy(update={"alarms": [spec]})
    Metrics(mon_db).record(NS, "Errors", 3.0, "Count", {"pipeline": "p"}, AT)
    assert evaluate_all(settings, mon_db, AT + dt.timedelta(minutes=5))[0].state == "ALARM"
    gap = evaluate_all(settings, mon_db, AT + dt.timedelta(hours=2))
    assert [(r.state, r.changed) for r in gap] == [("ALARM", False)]


def test_disabled_alarms_are_not_evaluated(mon_settings: Settings, mon_db: MetadataDB) -> None:
    settings = mon_settings.model_copy(update={"alarms": [_spec(enabled=False)]})
    assert evaluate_all(settings, mon_db, AT) == []
    assert AlarmStore(mon_db).list_states() == []


# --- default alarms -------------------------------------------------------------------------------


def test_default_alarms_are_used_when_none_are_configured(mon_settings: Settings) -> None:
    names = [a.name for a in configured_alarms(mon_settings)]
    assert names == [
        "dataflow-run-failed", "dataflow-dq-score", "dataflow-freshness",
        "dataflow-rate-limited", "dataflow-slow-run",
    ]  # fmt: skip
    for alarm in default_alarms(mon_settings):
        validate_alarm(alarm)
        assert alarm.metric.dimensions == {"pipeline": mon_settings.name}
        assert alarm.period == run_period(mon_settings) == 3600
    freshness = {a.name: a for a in default_alarms(mon_settings)}["dataflow-freshness"]
    assert freshness.threshold == 2 * 86_400
    own = mon_settings.model_copy(update={"alarms": [_spec()]})
    assert [a.name for a in configured_alarms(own)] == ["a"]


def test_a_failed_run_and_a_slow_run_trip_the_default_alarms(
    mon_settings: Settings, mon_db: MetadataDB
) -> None:
    metrics = Metrics(mon_db, default_dimensions={"pipeline": mon_settings.name})
    start = AT - dt.timedelta(days=1)
    for i in range(6):
        assert record_run_duration(metrics, 10.0, at=start + dt.timedelta(hours=i)) in (None, 1.0)
    metrics.record("Dataflow/Pipeline", "RunFailed", 0.0, "Count", timestamp=AT)
    evaluate_all(mon_settings, mon_db, AT, include_partial_period=True, fire=False)
    states = {a.name: a.state for a in AlarmStore(mon_db).list_states()}
    assert states["dataflow-run-failed"] == "OK"
    assert states["dataflow-rate-limited"] == "OK"  # notBreaching: no 429 recorded

    later = AT + dt.timedelta(hours=1)
    assert record_run_duration(metrics, 45.0, at=later) == 4.5
    metrics.record("Dataflow/Pipeline", "RunFailed", 1.0, "Count", timestamp=later)
    results = evaluate_all(mon_settings, mon_db, later, include_partial_period=True, fire=False)
    changed = {r.name: r.state for r in results if r.changed}
    assert changed == {"dataflow-run-failed": "ALARM", "dataflow-slow-run": "ALARM"}
