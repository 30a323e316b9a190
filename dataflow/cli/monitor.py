"""`dataflow metrics` and `dataflow alarms`: CloudWatch-style metrics and alarms."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dataflow.cli.common import (
    FormatOption,
    OutputFormat,
    ProjectOption,
    console,
    handle_errors,
    print_json,
    print_table,
    settings_for,
)

if TYPE_CHECKING:
    from dataflow.config import Settings
    from dataflow.metadata import MetadataDB

metrics_app = typer.Typer(
    help="Metrics (CloudWatch model: namespace + name + exact dimension set).",
    no_args_is_help=True,
)
alarms_app = typer.Typer(
    help="Alarms (CloudWatch semantics): states, history, evaluation, action tests.",
    no_args_is_help=True,
)

NamespaceOption = Annotated[
    str, typer.Option("--namespace", "-n", help="Metric namespace, e.g. Dataflow/Ingest.")
]
DimensionOption = Annotated[
    list[str] | None,
    typer.Option("--dimension", "-d", help="A dimension k=v; repeat for more (the exact set)."),
]

#: PutMetricData accepts timestamps up to two weeks in the past and two hours in the future.
_MAX_PAST = dt.timedelta(days=14)
_MAX_FUTURE = dt.timedelta(hours=2)


def register(app: typer.Typer) -> None:
    """Add the `metrics` and `alarms` groups."""
    app.add_typer(metrics_app, name="metrics")
    app.add_typer(alarms_app, name="alarms")


@contextmanager
def _project(project: Path | None) -> Iterator[tuple[Settings, MetadataDB]]:
    from dataflow.metadata import open_metadata

    settings = settings_for(project)
    db = open_metadata(settings.metadata_url)
    try:
        yield settings, db
    finally:
        db.dispose()


def _iso(when: dt.datetime | None) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S") if when else ""


# --- metrics --------------------------------------------------------------------------------------


@metrics_app.command("put")
@handle_errors
def put(
    name: Annotated[str, typer.Argument(help="Metric name.")],
    value: Annotated[float, typer.Argument(help="The value.")],
    namespace: NamespaceOption = "Custom",
    dimension: DimensionOption = None,
    unit: Annotated[str, typer.Option("--unit", help="A CloudWatch unit.")] = "None",
    timestamp: Annotated[
        str | None, typer.Option("--timestamp", help="ISO-8601 or relative (-5m); default now.")
    ] = None,
    project: ProjectOption = None,
) -> None:
    """Record one datapoint (PutMetricData)."""
    from dataflow.errors import ConfigError
    from dataflow.monitor.metrics import Metrics
    from dataflow.monitor.statistics import parse_dimensions, parse_time

    now = dt.datetime.now(dt.UTC)
    when = parse_time(timestamp, now=now) if timestamp else now
    if not now - _MAX_PAST <= when <= now + _MAX_FUTURE:
        raise ConfigError(
            f"--timestamp {when.isoformat()}: CloudWatch accepts datapoints from two weeks ago "
            "to two hours ahead"
        )
    with _project(project) as (_, db):
        try:
            Metrics(db).record(namespace, name, value, unit, parse_dimensions(dimension), when)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None


@metrics_app.command("list")
@handle_errors
def list_metrics(
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="Only this namespace.")
    ] = None,
    project: ProjectOption = None,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """List the metrics that have datapoints (ListMetrics)."""
    from dataflow.monitor.metrics import Metrics

    with _project(project) as (_, db):
        found = Metrics(db).list_metrics(namespace)
    if output is OutputFormat.JSON:
        print_json([{"namespace": ns, "name": n, "dimensions": d} for ns, n, d in found])
        return
    rows = [[ns, n, ", ".join(f"{k}={v}" for k, v in d.items())] for ns, n, d in found]
    print_table("Metrics", ["namespace", "name", "dimensions"], rows)


@metrics_app.command("get")
@handle_errors
def get(
    name: Annotated[str, typer.Argument(help="Metric name.")],
    stat: Annotated[
        str, typer.Option("--stat", help="Sum, Average, Minimum, Maximum, SampleCount or pNN.")
    ],
    namespace: NamespaceOption = "Custom",
    dimension: DimensionOption = None,
    period: Annotated[str, typer.Option("--period", help="60, 5m, 1h ...")] = "5m",
    start: Annotated[str, typer.Option("--start", help="ISO-8601 or relative (-3h).")] = "-3h",
    end: Annotated[str, typer.Option("--end", help="ISO-8601, relative or now.")] = "now",
    project: ProjectOption = None,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """A statistic of a metric per period (GetMetricStatistics)."""
    from dataflow.monitor.metrics import Metrics
    from dataflow.monitor.statistics import metric_statistics

    with _project(project) as (_, db):
        answer = metric_statistics(
            Metrics(db), namespace, name, dimensions=dimension, stat=stat, period=period,
            start=start, end=end,
        )  # fmt: skip
    if output is OutputFormat.JSON:
        print_json(answer.to_json())
        return
    print_table(
        f"{namespace} {name} {stat} per {answer.period} s",
        ["period start (UTC)", stat],
        [[_iso(t), f"{v:g}"] for t, v in answer.datapoints],
    )


# --- alarms ---------------------------------------------------------------------------------------


@alarms_app.command("list")
@handle_errors
def list_alarms(project: ProjectOption = None, output: FormatOption = OutputFormat.TABLE) -> None:
    """The project's alarms and their states (defaults when dataflow.yaml defines none)."""
    from dataflow.monitor.alarm_store import AlarmStore
    from dataflow.monitor.alarms import INITIAL_REASON
    from dataflow.monitor.default_alarms import configured_alarms

    with _project(project) as (settings, db):
        stored = {r.name: r for r in AlarmStore(db).list_states()}
        specs = configured_alarms(settings)
    rows = []
    for spec in specs:
        record = stored.get(spec.name)
        state = record.state if record else "INSUFFICIENT_DATA"
        reason = record.reason if record else INITIAL_REASON
        updated = record.updated_at if record else None
        rows.append((spec, state, reason, updated))
    if output is OutputFormat.JSON:
        print_json(
            [
                {
                    "name": spec.name,
                    "state": state,
                    "reason": reason,
                    "updated": updated.isoformat() if updated else None,
                    "enabled": spec.enabled,
                    "metric": f"{spec.metric.namespace} {spec.metric.name}",
                }
                for spec, state, reason, updated in rows
            ]
        )
        return
    print_table(
        "Alarms",
        ["name", "state", "reason", "updated (UTC)"],
        [[spec.name, state, reason, _iso(updated)] for spec, state, reason, updated in rows],
    )


@alarms_app.command("history")
@handle_errors
def history(
    name: Annotated[str, typer.Argument(help="Alarm name.")],
    item_type: Annotated[
        str | None,
        typer.Option("--type", help="ConfigurationUpdate, StateUpdate or Action."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="How many items.")] = 100,
    project: ProjectOption = None,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """An alarm's history, newest first (DescribeAlarmHistory)."""
    from dataflow.errors import ConfigError
    from dataflow.monitor.alarm_store import ITEM_TYPES, AlarmStore

    if item_type is not None and item_type not in ITEM_TYPES:
        raise ConfigError(f"--type {item_type!r}: use one of {', '.join(ITEM_TYPES)}")
    with _project(project) as (_, db):
        items = AlarmStore(db).history(name, item_type=item_type, limit=limit)
    if output is OutputFormat.JSON:
        print_json([asdict(item) for item in items])
        return
    if not items:
        console().print(f"No history for alarm {name!r}.")
        return
    print_table(
        f"History of {name}",
        ["time (UTC)", "type", "summary"],
        [[_iso(i.timestamp), i.item_type, i.summary] for i in items],
    )


@alarms_app.command("evaluate")
@handle_errors
def evaluate(
    at: Annotated[
        str | None, typer.Option("--at", help="Evaluate at this time (ISO-8601 or -1h).")
    ] = None,
    project: ProjectOption = None,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """Evaluate every alarm now (or at --at) and fire the actions of state changes."""
    from dataflow.monitor.alarm_store import evaluate_all
    from dataflow.monitor.statistics import parse_time

    when = parse_time(at) if at else None
    with _project(project) as (settings, db):
        results = evaluate_all(settings, db, when)
    if output is OutputFormat.JSON:
        print_json([asdict(r) for r in results])
        return
    print_table(
        "Alarm evaluation",
        ["name", "state", "was", "changed", "reason"],
        [
            [r.name, r.state, r.previous_state, "yes" if r.changed else "", r.reason]
            for r in results
        ],
    )


@alarms_app.command("test")
@handle_errors
def fire_test(
    name: Annotated[str, typer.Argument(help="Alarm name.")],
    state: Annotated[
        str, typer.Option("--state", help="Test change into ALARM, OK or INSUFFICIENT_DATA.")
    ] = "ALARM",
    project: ProjectOption = None,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """Fire an alarm's actions with a test state change (its stored state is kept)."""
    from dataflow.monitor.alarm_store import fire_test_actions

    with _project(project) as (settings, db):
        outcomes = fire_test_actions(settings, db, name, state=state)
    if output is OutputFormat.JSON:
        print_json([asdict(o) for o in outcomes])
    elif not outcomes:
        console().print(f"Alarm {name!r} has no actions for {state}.")
    else:
        print_table(
            f"Test of {name} -> {state}",
            ["action", "target", "result", "detail"],
            [[o.type, o.target, "ok" if o.ok else "FAILED", o.detail] for o in outcomes],
        )
    if any(not o.ok for o in outcomes):
        raise typer.Exit(1)
