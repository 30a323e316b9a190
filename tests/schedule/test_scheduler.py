"""The scheduler: fires, no overlap, retries, dead letters, catch-up, shutdown."""

from __future__ import annotations

import datetime as dt
import itertools
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dataflow.schedule.scheduler import Scheduler
from dataflow.schedule.store import SKIPPED_RUNNING, FireStore

from .conftest import T0, FakeClock, ScaledClock, ScriptedRunner, make_settings

MIN = dt.timedelta(minutes=1)


def _scheduler(settings: Any, clock: FakeClock, runner: ScriptedRunner, **kw: Any) -> Scheduler:
    return Scheduler(
        settings, clock=clock, sleep=clock.sleep, runner=runner, rng=random.Random(7), **kw
    )


def _fires(store: FireStore, job: str) -> list[Any]:
    return sorted(store.recent(job=job, limit=1000), key=lambda f: f.id)


def test_two_jobs_on_their_schedules(
    sch_project: Path,
    sch_clock: FakeClock,
    sch_runner: ScriptedRunner,
    sch_store: Callable[..., FireStore],
) -> None:
    settings = make_settings(
        sch_project,
        [
            {"name": "every-minute", "schedule": "rate(1 minute)", "command": ["runs"]},
            {"name": "even-minutes", "schedule": "cron(0/2 * * * ? *)"},
        ],
    )
    _scheduler(settings, sch_clock, sch_runner).run(until=T0 + 10 * MIN + dt.timedelta(seconds=30))

    # rate fires immediately at start and then every minute; cron on the even minutes after now.
    assert sch_runner.starts("every-minute") == [T0 + n * MIN for n in range(11)]
    assert sch_runner.starts("even-minutes") == [T0 + n * MIN for n in range(2, 11, 2)]
    store = sch_store(settings)
    rows = _fires(store, "even-minutes")
    assert [(r.scheduled_at, r.status, r.attempt, r.exit_code) for r in rows] == [
        (T0 + n * MIN, "succeeded", 1, 0) for n in range(2, 11, 2)
    ]
    assert store.running() == []
    assert store.dead_letters() == []
    _, _, env = sch_runner.started[0]
    assert env["DATAFLOW_SCHEDULE_JOB"] == "every-minute"
    assert env["DATAFLOW_SCHEDULE_ATTEMPT"] == "1"
    # Each fire record names the run id its child was told to use.
    given = {
        e["DATAFLOW_SCHEDULE_RUN_ID"] for job, _, e in sch_runner.started if job == "even-minutes"
    }
    assert {r.run_id for r in rows} == given
    assert len(given) == 5


def test_no_overlap_skips_and_records(
    sch_project: Path,
    sch_clock: FakeClock,
    sch_runner: ScriptedRunner,
    sch_store: Callable[..., FireStore],
) -> None:
    settings = make_settings(sch_project, [{"name": "slow", "schedule": "rate(1 minute)"}])
    sch_runner.plan["slow"] = [(150.0, 0)]  # each run takes 2.5 minutes
    _scheduler(settings, sch_clock, sch_runner).run(until=T0 + 6 * MIN + dt.timedelta(seconds=10))

    rows = _fires(sch_store(settings), "slow")
    summary = [(r.scheduled_at - T0, r.status, r.message) for r in rows]
    assert summary == [
        (0 * MIN, "succeeded", None),
        (1 * MIN, "skipped", SKIPPED_RUNNING),
        (2 * MIN, "skipped", SKIPPED_RUNNING),
        (3 * MIN, "succeeded", None),
        (4 * MIN, "skipped", SKIPPED_RUNNING),
        (5 * MIN, "skipped", SKIPPED_RUNNING),
        (6 * MIN, "succeeded", None),  # shutdown at 12:06:10 waited for it (until 12:08:30)
    ]
    # Never two runs at once: each start is after the previous run's end.
    starts = sch_runner.starts("slow")
    assert all(b - a >= dt.timedelta(seconds=150) for a, b in itertools.pairwise(starts))


def test_retries_with_backoff_then_dead_letter(
    sch_project: Path,
    sch_clock: FakeClock,
    sch_runner: ScriptedRunner,
    sch_store: Callable[..., FireStore],
) -> None:
    settings = make_settings(
        sch_project,
        [
            {
                "name": "flaky",
                "schedule": "cron(5 * * * ? *)",
                "retry": {"maximum_retry_attempts": 2, "maximum_event_age_seconds": 3600},
            }
        ],
    )
    sch_runner.plan["flaky"] = [(5.0, 1)]
    _scheduler(settings, sch_clock, sch_runner).run(until=T0 + 30 * MIN)

    store = sch_store(settings)
    rows = _fires(store, "flaky")
    scheduled = T0 + 5 * MIN
    assert [(r.scheduled_at, r.attempt, r.status, r.exit_code) for r in rows] == [
        (scheduled, 1, "failed", 1),
        (scheduled, 2, "failed", 1),
        (scheduled, 3, "failed", 1),
    ]
    assert rows[0].message == "flaky failed on purpose"
    # Exponential backoff: 60 s after the first failure, 120 s after the second.
    gaps = [(b.started_at - a.finished_at).total_seconds() for a, b in itertools.pairwise(rows)]
    assert [round(g) for g in gaps] == [60, 120]
    [dead] = store.dead_letters()
    assert (dead.job, dead.scheduled_at, dead.attempts) == ("flaky", scheduled, 3)
    assert dead.first_attempt_at == rows[0].started_at
    assert dead.last_error == "flaky failed on purpose"
    assert dead.payload["reason"] == "MaximumRetryAttempts (2) exhausted"
    assert dead.payload["exit_code"] == 1


def test_maximum_event_age_ends_retries(
    sch_project: Path,
    sch_clock: FakeClock,
    sch_runner: ScriptedRunner,
    sch_store: Callable[..., FireStore],
) -> None:
    settings = make_settings(
        sch_project,
        [
            {
                "name": "old",
                "schedule": "cron(1 * * * ? *)",
                "retry": {"maximum_retry_attempts": 185, "maximum_event_age_seconds": 300},
            }
        ],
    )
    sch_runner.plan["old"] = [(1.0, 3)]
    _scheduler(settings, sch_clock, sch_runner).run(until=T0 + 20 * MIN)

    store = sch_store(settings)
    # Attempts at ~0 s, ~61 s, ~182 s after 12:01; the next (after 240 s more) would be too old.
    assert [r.attempt for r in _fires(store, "old")] == [1, 2, 3]
    [dead] = store.dead_letters()
    assert dead.attempts == 3
    assert dead.payload["reason"] == "MaximumEventAgeInSeconds (300) exceeded"


def test_a_retry_that_succeeds_leaves_no_dead_letter(
    sch_project: Path,
    sch_clock: FakeClock,
    sch_runner: ScriptedRunner,
    sch_store: Callable[..., FireStore],
) -> None:
    settings = make_settings(sch_project, [{"name": "j", "schedule": "cron(2 12 * * ? *)"}])
    sch_runner.plan["j"] = [(1.0, 1), (1.0, 0)]
    _scheduler(settings, sch_clock, sch_runner).run(until=T0 + 10 * MIN)
    store = sch_store(settings)
    assert [(r.attempt, r.status) for r in _fires(store, "j")] == [(1, "failed"), (2, "succeeded")]
    assert store.dead_letters() == []


def test_no_retries_when_maximum_retry_attempts_is_zero(
    sch_project: Path,
    sch_clock: FakeClock,
    sch_runner: ScriptedRunner,
    sch_store: Callable[..., FireStore],
) -> None:
    settings = make_settings(
        sch_project,
        [
            {
                "name": "once",
                "schedule": "cron(2 12 * * ? *)",
                "retry": {"maximum_retry_attempts": 0},
            }
        ],
    )
    sch_runner.plan["once"] = [(1.0, 1)]
    _scheduler(settings, sch_clock, sch_runner).run(until=T0 + 10 * MIN)
    store = sch_store(settings)
    assert len(_fires(store, "once")) == 1
    assert store.dead_letters()[0].attempts == 1


@pytest.mark.parametrize(
    ("policy", "expected_status", "expected_message"),
    [
        (
            "latest",
            "succeeded",
            "catch-up: one run for 4 missed fire(s) since 2024-06-03T13:00:00+00:00",
        ),
        (
            "none",
            "skipped",
            "missed 4 fire(s) since 2024-06-03T13:00:00+00:00; not run (catch_up: none)",
        ),
    ],
)
def test_catch_up_after_downtime(
    sch_project: Path,
    sch_runner: ScriptedRunner,
    sch_store: Callable[..., FireStore],
    policy: str,
    expected_status: str,
    expected_message: str,
) -> None:
    settings = make_settings(
        sch_project, [{"name": "hourly", "schedule": "rate(1 hour)"}], catch_up=policy
    )
    first = FakeClock(T0)
    sch_runner.clock = first
    _scheduler(settings, first, sch_runner).run(until=T0 + 5 * MIN)  # fires at 12:00

    # Down from 12:05 to 16:30: 13:00, 14:00, 15:00 and 16:00 were missed.
    later = FakeClock(T0 + dt.timedelta(hours=4, minutes=30))
    sch_runner.clock = later
    _scheduler(settings, later, sch_runner).run(until=later.now + 20 * MIN)

    rows = _fires(sch_store(settings), "hourly")
    assert next((r.scheduled_at, r.status) for r in rows) == (T0, "succeeded")
    catch_up = rows[1]
    assert catch_up.scheduled_at == T0 + dt.timedelta(hours=4)  # the latest missed fire
    assert catch_up.started_at == T0 + dt.timedelta(hours=4, minutes=30)
    assert (catch_up.status, catch_up.message) == (expected_status, expected_message)
    assert len(rows) == 2  # each missed fire is served at most once; the next is 17:00
    runs_after_restart = [t for t in sch_runner.starts("hourly") if t > T0 + 5 * MIN]
    assert len(runs_after_restart) == (1 if policy == "latest" else 0)


def test_rate_keeps_its_phase_across_restarts(
    sch_project: Path, sch_runner: ScriptedRunner
) -> None:
    settings = make_settings(sch_project, [{"name": "r", "schedule": "rate(10 minutes)"}])
    first = FakeClock(T0)
    sch_runner.clock = first
    _scheduler(settings, first, sch_runner).run(until=T0 + 12 * MIN)  # 12:00, 12:10
    later = FakeClock(T0 + 13 * MIN)
    sch_runner.clock = later
    _scheduler(settings, later, sch_runner).run(until=T0 + 31 * MIN)
    assert sch_runner.starts("r") == [T0 + n * MIN for n in (0, 10, 20, 30)]


def test_flexible_time_window(
    sch_project: Path,
    sch_clock: FakeClock,
    sch_runner: ScriptedRunner,
    sch_store: Callable[..., FireStore],
) -> None:
    settings = make_settings(
        sch_project,
        [{"name": "flex", "schedule": "cron(0 * * * ? *)", "flexible_window_minutes": 15}],
    )
    _scheduler(settings, sch_clock, sch_runner).run(until=T0 + dt.timedelta(hours=6))
    rows = _fires(sch_store(settings), "flex")
    assert [r.scheduled_at for r in rows] == [T0 + dt.timedelta(hours=h) for h in range(1, 6)]
    offsets = [(r.started_at - r.scheduled_at).total_seconds() for r in rows]
    assert all(0 <= o <= 15 * 60 + 1 for o in offsets), offsets
    assert len({round(o) for o in offsets}) > 1, "the moment in the window should vary"


def test_start_and_end_dates(
    sch_project: Path, sch_clock: FakeClock, sch_runner: ScriptedRunner
) -> None:
    settings = make_settings(
        sch_project,
        [
            {
                "name": "window",
                "schedule": "cron(* * * * ? *)",
                "start_date": (T0 + 3 * MIN).isoformat(),
                "end_date": (T0 + 5 * MIN).isoformat(),
            },
            {"name": "gone", "schedule": "at(2020-01-01T00:00:00)"},
            {"name": "off", "schedule": "rate(1 minute)", "enabled": False},
        ],
    )
    _scheduler(settings, sch_clock, sch_runner).run(until=T0 + 10 * MIN)
    assert sch_runner.starts("window") == [T0 + n * MIN for n in (3, 4, 5)]
    assert sch_runner.starts("gone") == []
    assert sch_runner.starts("off") == []


def test_shutdown_waits_then_stops_runs_and_dead_letters_pending_retries(
    sch_project: Path,
    sch_clock: FakeClock,
    sch_runner: ScriptedRunner,
    sch_store: Callable[..., FireStore],
) -> None:
    settings = make_settings(
        sch_project,
        [
            {"name": "long", "schedule": "rate(1 hour)"},
            {"name": "failing", "schedule": "rate(1 hour)"},
        ],
    )
    sch_runner.plan = {"long": [(3600.0, 0)], "failing": [(1.0, 1)]}
    scheduler = _scheduler(settings, sch_clock, sch_runner, shutdown_timeout=30.0)
    scheduler.run(until=T0 + dt.timedelta(seconds=20))

    store = sch_store(settings)
    [long_run] = _fires(store, "long")
    assert (long_run.status, long_run.message) == (
        "interrupted",
        "stopped by the scheduler's shutdown",
    )
    assert long_run.finished_at is not None
    assert long_run.finished_at - long_run.started_at >= dt.timedelta(seconds=50)  # 20 s + 30 s
    [dead] = store.dead_letters()
    assert (dead.job, dead.payload["reason"]) == ("failing", "the scheduler stopped before a retry")
    assert store.running() == []


def test_invalid_job_expression_is_a_config_error(sch_project: Path) -> None:
    from dataflow.errors import ConfigError

    with pytest.raises(ConfigError, match=r"schedule.jobs.0.schedule: .*rate\(2 hour\): if the"):
        make_settings(sch_project, [{"name": "bad", "schedule": "rate(2 hour)"}])


# --- real processes -----------------------------------------------------------------------------


def test_real_processes_on_a_sped_up_clock(
    sch_project: Path, sch_store: Callable[..., FireStore]
) -> None:
    """Two real `python -m dataflow` jobs and one that fails, one real second per minute."""
    settings = make_settings(
        sch_project,
        [
            {"name": "history", "schedule": "rate(1 minute)", "command": ["runs"]},
            {"name": "latest", "schedule": "cron(* * * * ? *)", "command": ["runs", "-n", "1"]},
            {
                "name": "broken",
                "schedule": "rate(1 hour)",
                "command": ["no-such-command"],
                "retry": {"maximum_retry_attempts": 1},
            },
        ],
    )
    clock = ScaledClock(60.0)
    scheduler = Scheduler(
        settings, clock=clock, sleep=clock.sleep, poll_interval=6.0, idle_sleep=6.0
    )
    scheduler.run(until=clock() + dt.timedelta(minutes=9))

    store = sch_store(settings)
    history = _fires(store, "history")
    assert sum(r.status == "succeeded" for r in history) >= 2, history
    assert {r.status for r in history} <= {"succeeded", "skipped", "interrupted"}
    assert all(r.pid for r in history if r.status == "succeeded")
    latest = _fires(store, "latest")
    assert sum(r.status == "succeeded" for r in latest) >= 2, latest
    broken = _fires(store, "broken")
    assert [(r.attempt, r.status, r.exit_code) for r in broken] == [
        (1, "failed", 2),
        (2, "failed", 2),
    ]
    assert "No such command" in (broken[0].message or "")
    assert store.dead_letters(job="broken")[0].attempts == 2
    assert store.running() == []


@pytest.mark.timeout(60)
def test_sigterm_stops_the_daemon_gracefully(
    sch_project: Path,
    sch_cli_argv: list[str],
    sch_env: dict[str, str],
    sch_store: Callable[..., FireStore],
) -> None:
    settings = make_settings(
        sch_project, [{"name": "cheap", "schedule": "rate(1 minute)", "command": ["runs"]}]
    )
    proc = subprocess.Popen(
        [*sch_cli_argv, "schedule", "--project", str(sch_project), "--shutdown-timeout", "20"],
        env=sch_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        store = sch_store(settings)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not _fires_if_any(store):
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        assert _fires_if_any(store), "the rate job should fire at once"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "stopping" in err
    [row] = _fires(store, "cheap")
    assert row.status in {"succeeded", "interrupted"}
    assert row.status == "succeeded", row  # `runs` is quick: the shutdown waited for it
    assert store.running() == []


def _fires_if_any(store: FireStore) -> bool:
    try:
        return bool(store.recent())
    except Exception:  # the daemon may still be creating the database
        return False


def test_a_second_scheduler_on_the_same_project_is_refused(sch_project: Path) -> None:
    from dataflow.errors import LockTimeoutError
    from dataflow.metadata import ProjectLock

    settings = make_settings(sch_project, [{"name": "j", "schedule": "rate(1 hour)"}])
    held = ProjectLock(settings.state_dir / "scheduler.lock", timeout=0)
    held.acquire("scheduler")
    try:
        with pytest.raises(LockTimeoutError):
            Scheduler(settings).run()
    finally:
        held.release()
    assert sys.executable  # keep the import used on every platform
