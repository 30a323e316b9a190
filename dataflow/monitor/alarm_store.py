"""Alarm states and history in the metadata database, and ``evaluate_all`` that ties it together.

``alarm_states`` holds one row per alarm (state, StateReason, StateReasonData, the hash of its
definition); ``alarm_history`` holds CloudWatch's history items (DescribeAlarmHistory):

* ``ConfigurationUpdate``: ``Alarm "NAME" created`` / ``Alarm "NAME" updated``. CloudWatch keeps
  the state of an updated alarm (PutMetricAlarm on an existing alarm), and so do we. The stored
  definition leaves out action targets (webhook URLs may be credentials).
* ``StateUpdate``: ``Alarm updated from OK to ALARM``, data ``{"version", "oldState",
  "newState"}`` with the reasons.
* ``Action``: ``Successfully executed action TARGET`` / ``Failed to execute action TARGET.
  Received error: "..."``.

A state change is a compare-and-set on the stored state inside one transaction, so two
evaluators (the scheduler's minute tick and a run's own) cannot both fire one transition.

Example:
    >>> from dataflow.config import load_settings
    >>> from dataflow.metadata import open_metadata
    >>> settings = load_settings("/nonexistent-project", env={})
    >>> [r.state for r in evaluate_all(settings, open_metadata("sqlite://"))][:1]
    ['INSUFFICIENT_DATA']
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from dataflow.config import AlarmSpec, Settings
from dataflow.errors import ConfigError
from dataflow.metadata.db import MetadataDB
from dataflow.metadata.schema import alarm_history, alarm_states, utc, utcnow
from dataflow.monitor.actions import ActionOutcome, AlarmEvent, fire_actions
from dataflow.monitor.alarms import (
    INITIAL_REASON,
    AlarmState,
    config_hash,
    evaluate,
    validate_alarm,
)
from dataflow.monitor.default_alarms import configured_alarms
from dataflow.monitor.metrics import Metrics

ITEM_TYPES = ("ConfigurationUpdate", "StateUpdate", "Action")


@dataclass(frozen=True)
class AlarmRecord:
    """The stored state of one alarm."""

    name: str
    state: str
    reason: str
    reason_data: dict[str, Any]
    config_hash: str
    updated_at: dt.datetime
    evaluated_at: dt.datetime | None


@dataclass(frozen=True)
class HistoryItem:
    """One alarm history item (CloudWatch AlarmHistoryItem)."""

    name: str
    timestamp: dt.datetime
    item_type: str
    old_state: str | None
    new_state: str | None
    summary: str
    data: dict[str, Any]


@dataclass(frozen=True)
class AlarmResult:
    """What one evaluation did to one alarm."""

    name: str
    state: str
    previous_state: str
    changed: bool
    reason: str
    evaluated_at: dt.datetime
    actions: tuple[ActionOutcome, ...] = ()


class AlarmStore:
    """Reads and writes ``alarm_states`` and ``alarm_history``.

    Example:
        >>> from dataflow.metadata import open_metadata
        >>> AlarmStore(open_metadata("sqlite://")).list_states()
        []
    """

    def __init__(self, db: MetadataDB) -> None:
        self.db = db

    def get(self, name: str) -> AlarmRecord | None:
        """The stored alarm, or ``None`` if it was never evaluated."""
        with self.db.read() as conn:
            row = (
                conn.execute(sa.select(alarm_states).where(alarm_states.c.name == name))
                .mappings()
                .first()
            )
        return _record(row) if row is not None else None

    def list_states(self) -> list[AlarmRecord]:
        """Every stored alarm, by name."""
        with self.db.read() as conn:
            rows = conn.execute(sa.select(alarm_states).order_by(alarm_states.c.name)).mappings()
            return [_record(row) for row in rows]

    def history(
        self, name: str, *, item_type: str | None = None, limit: int = 100
    ) -> list[HistoryItem]:
        """History items of an alarm, most recently recorded first."""
        query = (
            sa.select(alarm_history)
            .where(alarm_history.c.name == name)
            .order_by(alarm_history.c.id.desc())
            .limit(limit)
        )
        if item_type is not None:
            query = query.where(alarm_history.c.item_type == item_type)
        with self.db.read() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            HistoryItem(
                r["name"],
                r["timestamp"],
                r["item_type"],
                r["old_state"],
                r["new_state"],
                r["summary"],
                r["data"],
            )
            for r in rows
        ]

    def sync(self, spec: AlarmSpec, at: dt.datetime) -> AlarmRecord:
        """Create the alarm (INSUFFICIENT_DATA, "Unchecked: Initial alarm creation") or record
        a ConfigurationUpdate if its definition changed; return the stored alarm."""
        digest = config_hash(spec)
        with self.db.begin() as conn:
            row = (
                conn.execute(sa.select(alarm_states).where(alarm_states.c.name == spec.name))
                .mappings()
                .first()
            )
            if row is None:
                conn.execute(
                    alarm_states.insert().values(
                        name=spec.name,
                        state=AlarmState.INSUFFICIENT_DATA.value,
                        reason=INITIAL_REASON,
                        reason_data={},
                        config_hash=digest,
                        updated_at=at,
                        evaluated_at=None,
                    )
                )
                _add(
                    conn,
                    spec.name,
                    at,
                    "ConfigurationUpdate",
                    f'Alarm "{spec.name}" created',
                    {"version": "1.0", "type": "Create", "createdAlarm": _public(spec)},
                )
            elif row["config_hash"] != digest:
                conn.execute(
                    alarm_states.update()
                    .where(alarm_states.c.name == spec.name)
                    .values(config_hash=digest)
                )
                _add(
                    conn,
                    spec.name,
                    at,
                    "ConfigurationUpdate",
                    f'Alarm "{spec.name}" updated',
                    {"version": "1.0", "type": "Update", "updatedAlarm": _public(spec)},
                )
        record = self.get(spec.name)
        assert record is not None  # written just above
        return record

    def transition(
        self,
        name: str,
        old: str,
        new: str,
        reason: str,
        reason_data: dict[str, Any],
        at: dt.datetime,
    ) -> bool:
        """Move the alarm from ``old`` to ``new`` unless another evaluator moved it first."""
        with self.db.begin() as conn:
            done = conn.execute(
                alarm_states.update()
                .where(alarm_states.c.name == name, alarm_states.c.state == old)
                .values(
                    state=new,
                    reason=reason,
                    reason_data=reason_data,
                    updated_at=at,
                    evaluated_at=at,
                )
            )
            if done.rowcount != 1:
                return False
            data = {
                "version": "1.0",
                "oldState": {"stateValue": old},
                "newState": {
                    "stateValue": new,
                    "stateReason": reason,
                    "stateReasonData": reason_data,
                },
            }
            _add(
                conn, name, at, "StateUpdate", f"Alarm updated from {old} to {new}", data, old, new
            )
        return True

    def touch(self, name: str, at: dt.datetime) -> None:
        """Record an evaluation that kept the state."""
        with self.db.begin() as conn:
            conn.execute(
                alarm_states.update().where(alarm_states.c.name == name).values(evaluated_at=at)
            )

    def record_action(self, name: str, at: dt.datetime, outcome: ActionOutcome, state: str) -> None:
        """An Action history item for one fired action."""
        if outcome.ok:
            summary = f"Successfully executed action {outcome.target}"
        else:
            summary = (
                f'Failed to execute action {outcome.target}. Received error: "{outcome.detail}"'
            )
        data = {
            "actionState": "Succeeded" if outcome.ok else "Failed",
            "type": outcome.type,
            "target": outcome.target,
            "detail": outcome.detail,
            "state": state,
        }
        with self.db.begin() as conn:
            _add(conn, name, at, "Action", summary, data, None, state)


def evaluate_all(
    settings: Settings,
    db: MetadataDB,
    at: dt.datetime | None = None,
    *,
    include_partial_period: bool = False,
    fire: bool = True,
) -> list[AlarmResult]:
    """Evaluate every enabled alarm of the project at ``at`` (default now), firing actions on
    transitions.

    The alarms are ``settings.alarms``, or the default alarms when none are configured.

    Args:
        settings: the project settings.
        db: the (migrated) metadata database.
        at: evaluation time (aware; default now).
        include_partial_period: count the period in progress (right after a run).
        fire: run the actions of transitions (``False``: record the states only).

    Raises:
        ConfigError: an alarm CloudWatch would refuse (M > N, too long a window, statistic).

    Example:
        >>> from dataflow.config import load_settings
        >>> from dataflow.metadata import open_metadata
        >>> s = load_settings("/nonexistent-project", overrides={"alarms": []}, env={})
        >>> len(evaluate_all(s, open_metadata("sqlite://"))) > 0
        True
    """
    at = utc(at, what="at") if at is not None else utcnow()
    specs = [spec for spec in configured_alarms(settings) if spec.enabled]
    for spec in specs:
        validate_alarm(spec)
    store = AlarmStore(db)
    metrics = Metrics(db)
    results = []
    for spec in specs:
        record = store.sync(spec, at)
        current = AlarmState(record.state)
        evaluation = evaluate(
            spec, metrics, at, current=current, include_partial_period=include_partial_period
        )
        new = evaluation.state or current
        outcomes: list[ActionOutcome] = []
        changed = new is not current and store.transition(
            spec.name, current.value, new.value, evaluation.reason, evaluation.reason_data, at
        )
        if changed:
            if fire:
                event = AlarmEvent(
                    spec,
                    current.value,
                    new.value,
                    evaluation.reason,
                    evaluation.reason_data,
                    at,
                    pipeline=settings.name,
                )
                outcomes = fire_actions(_actions_for(spec, new.value), event)
                for outcome in outcomes:
                    store.record_action(spec.name, at, outcome, new.value)
            reason = evaluation.reason
        else:
            store.touch(spec.name, at)
            reason = record.reason
            new = current
        results.append(
            AlarmResult(spec.name, new.value, current.value, changed, reason, at, tuple(outcomes))
        )
    return results


def fire_test_actions(
    settings: Settings, db: MetadataDB, name: str, *, state: str = "ALARM"
) -> list[ActionOutcome]:
    """Fire an alarm's actions for ``state`` with a test state change (the state is not stored).

    Raises:
        ConfigError: no such alarm, or an unknown state.

    Example:
        >>> from dataflow.config import load_settings
        >>> from dataflow.metadata import open_metadata
        >>> s = load_settings("/nonexistent-project", env={})
        >>> db = open_metadata("sqlite://")
        >>> [o.type for o in fire_test_actions(s, db, "dataflow-run-failed")]
        ['log']
    """
    if state not in AlarmState.__members__:
        raise ConfigError(f"unknown state {state!r}: use OK, ALARM or INSUFFICIENT_DATA")
    specs = {spec.name: spec for spec in configured_alarms(settings)}
    spec = specs.get(name)
    if spec is None:
        known = ", ".join(sorted(specs)) or "none"
        raise ConfigError(f"no alarm named {name!r} (configured: {known})")
    at = utcnow()
    store = AlarmStore(db)
    record = store.sync(spec, at)
    reason = f"Testing alarm actions: {record.state} -> {state} (dataflow alarms test)"
    event = AlarmEvent(spec, record.state, state, reason, {}, at, test=True, pipeline=settings.name)
    outcomes = fire_actions(_actions_for(spec, state), event)
    for outcome in outcomes:
        store.record_action(name, at, outcome, state)
    return outcomes


def _actions_for(spec: AlarmSpec, state: str) -> list[Any]:
    if state == AlarmState.ALARM:
        return list(spec.actions)
    if state == AlarmState.OK:
        return list(spec.ok_actions)
    return list(spec.insufficient_data_actions)


def _public(spec: AlarmSpec) -> dict[str, Any]:
    data = spec.model_dump(mode="json")
    for key in ("actions", "ok_actions", "insufficient_data_actions"):
        data[key] = [action["type"] for action in data[key]]
    return data


def _add(
    conn: sa.Connection,
    name: str,
    at: dt.datetime,
    item_type: str,
    summary: str,
    data: dict[str, Any],
    old_state: str | None = None,
    new_state: str | None = None,
) -> None:
    conn.execute(
        alarm_history.insert().values(
            name=name,
            timestamp=at,
            item_type=item_type,
            old_state=old_state,
            new_state=new_state,
            summary=summary,
            data=data,
        )
    )


def _record(row: sa.RowMapping) -> AlarmRecord:
    return AlarmRecord(
        row["name"],
        row["state"],
        row["reason"],
        row["reason_data"] or {},
        row["config_hash"],
        row["updated_at"],
        row["evaluated_at"],
    )


__all__ = [
    "ITEM_TYPES",
    "AlarmRecord",
    "AlarmResult",
    "AlarmStore",
    "HistoryItem",
    "evaluate_all",
    "fire_test_actions",
]
