"""`dataflow schedule`: the scheduler daemon, and `schedule next | list | status`."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated, Any

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
    from dataflow.config import JobSpec
    from dataflow.schedule.store import FireStore

schedule_app = typer.Typer(
    help=(
        "Run jobs on EventBridge Scheduler expressions: `dataflow schedule` runs the daemon "
        "in the foreground; `next`, `list` and `status` inspect schedules."
    ),
    invoke_without_command=True,
    no_args_is_help=False,
)


def register(app: typer.Typer) -> None:
    """Add the `schedule` group."""
    app.add_typer(schedule_app, name="schedule")


@schedule_app.callback()
@handle_errors
def daemon(
    ctx: typer.Context,
    project: ProjectOption = None,
    shutdown_timeout: Annotated[
        float | None,
        typer.Option(
            "--shutdown-timeout",
            min=0,
            help="On SIGTERM/SIGINT, seconds running jobs get to finish before they are stopped "
            "(default: schedule.shutdown_timeout, 300).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the scheduler in the foreground until SIGTERM or Ctrl-C."""
    if ctx.invoked_subcommand is not None:
        return
    from dataflow.errors import ConfigError
    from dataflow.monitor.logs import configure_logging
    from dataflow.schedule.scheduler import Scheduler

    settings = settings_for(project)
    configure_logging(level=settings.logging.level)
    timeout = settings.schedule.shutdown_timeout if shutdown_timeout is None else shutdown_timeout
    scheduler = Scheduler(settings, shutdown_timeout=timeout)
    scheduler.minute_hooks.append(lambda now: _evaluate_alarms(scheduler, now))
    if not scheduler.jobs:
        raise ConfigError(
            f"{settings.project_dir / 'dataflow.yaml'}: no enabled jobs in schedule.jobs — "
            "add one, e.g. {name: nightly, schedule: 'cron(0 2 * * ? *)', command: [run]}"
        )
    console(stderr=True).print(
        f"Scheduling {len(scheduler.jobs)} job(s) for {settings.project_dir}; "
        "stop with Ctrl-C or SIGTERM."
    )
    scheduler.run()


@schedule_app.command("next")
@handle_errors
def next_times(
    expression: Annotated[
        str, typer.Argument(help="rate(5 minutes), cron(0/15 13-21 ? * MON-FRI *), at(...).")
    ],
    tz: Annotated[str, typer.Option("--tz", help="IANA time zone of the schedule.")] = "UTC",
    after: Annotated[
        str | None,
        typer.Option(
            "--after",
            help="ISO time to count from (default now); without an offset it is read in --tz.",
        ),
    ] = None,
    count: Annotated[int, typer.Option("--count", "-n", min=1, help="How many times.")] = 5,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """Print the next fire times of a schedule expression."""
    from dataflow.schedule.expressions import next_fire_times, zone

    tzinfo = zone(tz)
    start = _parse_after(after, tzinfo)
    times = next_fire_times(expression, tz=tz, after=start, count=count)
    if output is OutputFormat.JSON:
        print_json([t.isoformat() for t in times])
        return
    if not times:
        console().print(f"{expression} does not fire after {start.isoformat()}.")
        return
    rows = [[t.isoformat(), t.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")] for t in times]
    print_table(f"{expression} ({tz})", ["fire time", "UTC"], rows)


@schedule_app.command("list")
@handle_errors
def list_jobs(project: ProjectOption = None, output: FormatOption = OutputFormat.TABLE) -> None:
    """List the scheduled jobs with their next fire time."""
    from dataflow.metadata import open_metadata
    from dataflow.schedule.store import FireStore

    settings = settings_for(project)
    db = open_metadata(settings.metadata_url)
    try:
        jobs = [_job_row(spec, FireStore(db)) for spec in settings.schedule.jobs]
    finally:
        db.dispose()
    if output is OutputFormat.JSON:
        print_json(jobs)
        return
    if not jobs:
        console().print("No jobs — add them under schedule.jobs in dataflow.yaml.")
        return
    rows = [
        [
            j["name"],
            j["schedule"],
            j["timezone"],
            "yes" if j["enabled"] else "no",
            " ".join(j["command"]),
            j["next_fire"] or j["note"],
        ]
        for j in jobs
    ]
    print_table("Jobs", ["job", "schedule", "zone", "enabled", "command", "next fire"], rows)


@schedule_app.command("status")
@handle_errors
def status(
    project: ProjectOption = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Rows of each list.")] = 20,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """Show running jobs, the latest fires and the dead letters."""
    from dataclasses import asdict

    from dataflow.metadata import open_metadata
    from dataflow.schedule.store import FireStore

    db = open_metadata(settings_for(project).metadata_url)
    try:
        store = FireStore(db)
        running, fires, dead = (
            store.running(),
            store.recent(limit=limit),
            store.dead_letters(limit=limit),
        )
    finally:
        db.dispose()
    if output is OutputFormat.JSON:
        print_json(
            {
                "running": [asdict(f) for f in running],
                "fires": [asdict(f) for f in fires],
                "dead_letters": [asdict(d) for d in dead],
            }
        )
        return
    out = console()
    out.print(f"Running: {', '.join(f.job for f in running) or 'nothing'}")
    if fires:
        print_table(
            "Latest fires",
            ["job", "scheduled", "attempt", "status", "exit", "started", "message"],
            [
                [
                    f.job,
                    _short(f.scheduled_at),
                    f.attempt,
                    f.status,
                    f.exit_code,
                    _short(f.started_at),
                    f.message,
                ]
                for f in fires
            ],
        )
    else:
        out.print("No fires yet — start the scheduler with `dataflow schedule`.")
    if dead:
        print_table(
            "Dead letters",
            ["job", "scheduled", "attempts", "recorded", "reason", "last error"],
            [
                [
                    d.job,
                    _short(d.scheduled_at),
                    d.attempts,
                    _short(d.recorded_at),
                    d.payload.get("reason"),
                    d.last_error,
                ]
                for d in dead
            ],
        )


def _parse_after(text: str | None, tzinfo: dt.tzinfo) -> dt.datetime:
    from dataflow.errors import ConfigError

    if text is None:
        return dt.datetime.now(dt.UTC)
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"--after {text!r}: not an ISO-8601 time; use e.g. 2024-03-10T00:00:00-05:00"
        ) from None
    return value.replace(tzinfo=tzinfo) if value.tzinfo is None else value


def _job_row(spec: JobSpec, store: FireStore) -> dict[str, Any]:
    from dataflow.schedule.expressions import RateExpression, next_fire_times, parse_expression

    expr = parse_expression(spec.schedule)
    now = dt.datetime.now(dt.UTC)
    anchor = spec.start_date
    note = ""
    if isinstance(expr, RateExpression) and anchor is None:
        anchor = store.first_scheduled(spec.name)
        if anchor is None:
            note = "when the scheduler starts"
    times = (
        []
        if note or not spec.enabled
        else next_fire_times(
            expr, tz=spec.timezone, after=now, count=1, start_date=anchor, end_date=spec.end_date
        )
    )
    if not spec.enabled:
        note = "disabled"
    elif not times and not note:
        note = "no more fires"
    return {
        "name": spec.name,
        "schedule": spec.schedule,
        "timezone": spec.timezone,
        "enabled": spec.enabled,
        "command": list(spec.command),
        "flexible_window_minutes": spec.flexible_window_minutes,
        "next_fire": times[0].isoformat() if times else None,
        "note": note or None,
    }


def _short(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else ""


def _evaluate_alarms(scheduler: Any, now: Any) -> None:
    """The scheduler's minute hook: CloudWatch evaluates every alarm every minute."""
    from dataflow.monitor.alarm_store import evaluate_all

    evaluate_all(scheduler.settings, scheduler.store.db, at=now)
