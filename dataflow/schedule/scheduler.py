"""The `dataflow schedule` daemon: runs the jobs of ``dataflow.yaml`` on their schedules.

Behaviour (EventBridge Scheduler's, reference/aws-semantics.md §7, where it has one):

- **Precision** 60 s: a fire is due at its scheduled minute; with a flexible time window of
  W minutes it happens at a random time in ``[scheduled, scheduled + W]``.
- **Runs** are child processes (:mod:`dataflow.schedule.runner`); every attempt is a row of
  ``schedule_fires``.
- **No overlap**: a fire that comes due while the job's previous run is still running is not run;
  it is recorded with status ``skipped`` and message ``skipped: still running``.
- **Retries**: a run that exits non-zero is retried with exponential backoff (``backoff_base``
  × 2^(attempt-1), at most ``backoff_max``) while both limits of the job's retry policy hold:
  at most ``maximum_retry_attempts`` retries, and no attempt starts later than
  ``maximum_event_age_seconds`` after the scheduled time. Then the fire goes to ``dead_letters``.
- **Catch-up** after downtime (or a suspended machine): fires missed while the scheduler was not
  running are found from the last scheduled time recorded per job, looking back at most the
  job's ``maximum_event_age_seconds`` (older events are expired, as in EventBridge). With
  ``schedule.catch_up: latest`` one run serves all missed fires (recorded at the latest missed
  time); with ``none`` they are recorded as one ``skipped`` row and the job waits for its next
  fire. Either way a fire is never run twice.
- **Rate anchor**: ``rate(...)`` counts from the job's ``start_date``, else from its first
  recorded fire (so restarts keep the phase), else it fires immediately and counts from then.
- **Shutdown** on SIGTERM/SIGINT (:meth:`Scheduler.request_stop`): no new runs start; running
  ones get ``shutdown_timeout`` seconds to finish, then SIGTERM, then SIGKILL; their rows say
  ``interrupted``. Retries still pending become dead letters ("the scheduler stopped").

Example:
    >>> import datetime as dt
    >>> backoff_delays(3, base=60.0, cap=3600.0)
    [60.0, 120.0, 240.0]
"""

from __future__ import annotations

import datetime as dt
import random
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from dataflow.config import JobSpec, Settings
from dataflow.errors import ConfigError
from dataflow.metadata import ProjectLock, new_run_id, open_metadata
from dataflow.monitor.logs import get_logger
from dataflow.schedule.expressions import (
    RateExpression,
    ScheduleExpression,
    next_fire_times,
    parse_expression,
)
from dataflow.schedule.runner import RunHandle, Runner, SubprocessRunner
from dataflow.schedule.store import SKIPPED_RUNNING, FireStore

log = get_logger("dataflow.schedule")

Clock = Callable[[], dt.datetime]
Sleep = Callable[[float], None]
Hook = Callable[[dt.datetime], None]

#: EventBridge Scheduler's precision: a fire may happen anywhere in its minute.
PRECISION = dt.timedelta(seconds=60)
_TINY = dt.timedelta(microseconds=1)


def utc_now() -> dt.datetime:
    """The real clock: now, aware UTC."""
    return dt.datetime.now(dt.UTC)


def backoff_delays(attempts: int, *, base: float, cap: float) -> list[float]:
    """Seconds before retry 1, 2, ... ``attempts``: ``base × 2^(n-1)``, at most ``cap``.

    Example:
        >>> backoff_delays(4, base=1.0, cap=5.0)
        [1.0, 2.0, 4.0, 5.0]
    """
    return [min(base * 2**n, cap) for n in range(attempts)]


@dataclass
class _Fire:
    """One scheduled time of a job and the attempts made for it."""

    scheduled_at: dt.datetime
    attempts: int = 0
    first_attempt_at: dt.datetime | None = None
    last_error: str | None = None
    exit_code: int | None = None
    note: str | None = None


@dataclass
class _Active:
    fire: _Fire
    handle: RunHandle
    fire_id: int


@dataclass
class _Job:
    spec: JobSpec
    expr: ScheduleExpression
    anchor: dt.datetime | None = None
    next_at: dt.datetime | None = None  # nominal next scheduled time
    fire_at: dt.datetime | None = None  # next_at plus the flexible-window offset
    active: _Active | None = None
    retries: list[tuple[dt.datetime, _Fire]] = field(default_factory=list)


class Scheduler:
    """Runs the enabled jobs of ``settings.schedule`` until asked to stop.

    Args:
        settings: the project's settings.
        clock: returns now as aware UTC (tests pass a fake one).
        sleep: waits that many seconds (tests pass one that advances their clock).
        runner: starts runs (default: :class:`SubprocessRunner` for the project).
        rng: picks the moment inside a flexible time window.
        backoff_base: seconds before the first retry; doubled for each further one.
        backoff_max: the longest wait between retries.
        poll_interval: seconds between checks while runs are active.
        idle_sleep: the longest single wait while nothing runs (bounds the reaction to signals).
        shutdown_timeout: seconds running jobs get to finish on shutdown before SIGTERM.
        kill_timeout: seconds after SIGTERM before SIGKILL.
        minute_hooks: called with now about once a minute (e.g. alarm evaluation).

    Raises:
        ConfigError: an invalid expression or time zone in a job.

    Example:
        >>> from dataflow.config import load_settings
        >>> s = load_settings("/nonexistent", overrides={"schedule.jobs": [
        ...     {"name": "nightly", "schedule": "cron(0 2 * * ? *)"}]}, env={})
        >>> [job.name for job in Scheduler(s).jobs]
        ['nightly']
    """

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = utc_now,
        sleep: Sleep = time.sleep,
        runner: Runner | None = None,
        rng: random.Random | None = None,
        backoff_base: float = 60.0,
        backoff_max: float = 3600.0,
        poll_interval: float = 1.0,
        idle_sleep: float = 1.0,
        shutdown_timeout: float = 300.0,
        kill_timeout: float = 10.0,
        minute_hooks: Sequence[Hook] = (),
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.sleep = sleep
        self.runner: Runner = runner or SubprocessRunner(settings.project_dir)
        self.rng = rng or random.Random()
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.poll_interval = poll_interval
        self.idle_sleep = idle_sleep
        self.shutdown_timeout = shutdown_timeout
        self.kill_timeout = kill_timeout
        self.minute_hooks = list(minute_hooks)
        self.jobs = [spec for spec in settings.schedule.jobs if spec.enabled]
        self._jobs = [_Job(spec, _parse(spec)) for spec in self.jobs]
        self._stop = False
        self._store: FireStore | None = None
        self._last_minute: dt.datetime | None = None

    # --- public ----------------------------------------------------------------------------

    def request_stop(self, *_: Any) -> None:
        """Stop scheduling; :meth:`run` then shuts down gracefully (the signal handler)."""
        if not self._stop:
            log.info("stopping: no new runs; waiting for running jobs")
        self._stop = True

    @property
    def store(self) -> FireStore:
        """The fire records (opens the metadata database on first use)."""
        if self._store is None:
            self._store = FireStore(open_metadata(self.settings.metadata_url))
        return self._store

    def run(self, *, until: dt.datetime | None = None) -> None:
        """Run the loop until SIGTERM/SIGINT, :meth:`request_stop` or ``until``; then shut down.

        Only one scheduler runs per project: a second one fails with ``LockTimeoutError``.
        """
        lock = ProjectLock(self.settings.state_dir / "scheduler.lock", timeout=0)
        lock.acquire("scheduler")
        restore = self._install_signal_handlers()
        try:
            self.start(self.clock())
            while not self._stop:
                now = self.clock()
                if until is not None and now >= until:
                    break
                self.tick(now)
                self.sleep(self._wait(now))
        finally:
            try:
                self.shutdown()
            finally:
                restore()
                lock.release()
                if self._store is not None:
                    self._store.db.dispose()

    def start(self, now: dt.datetime) -> None:
        """Compute each job's next fire, resuming from what the database recorded."""
        orphans = self.store.mark_orphans(now)
        if orphans:
            log.warning("marked %d run(s) of a previous scheduler as interrupted", orphans)
        for job in self._jobs:
            last = self.store.last_scheduled(job.spec.name)
            if isinstance(job.expr, RateExpression) and job.spec.start_date is None:
                first = self.store.first_scheduled(job.spec.name)
                job.anchor = first or now.replace(second=0, microsecond=0)
            if last is None:
                # Never fired: a rate schedule fires now ("immediately"), others at their next.
                after = job.anchor - _TINY if job.anchor is not None else now
            else:
                oldest = now - dt.timedelta(seconds=job.spec.retry.maximum_event_age_seconds)
                after = max(last, oldest)
            self._advance(job, after)
            log.info("job %s: %s, next %s", job.spec.name, job.expr.text, _iso(job.next_at))

    def tick(self, now: dt.datetime) -> None:
        """One pass: collect finished runs, start due retries and fires."""
        self._reap(now)
        if self._stop:
            return
        self._minute(now)
        for job in self._jobs:
            self._due_retries(job, now)
            self._due_fires(job, now)

    def shutdown(self) -> None:
        """Wait for running jobs (up to ``shutdown_timeout``), then stop them; record all."""
        self._stop = True
        deadline = self.clock() + dt.timedelta(seconds=self.shutdown_timeout)
        while any(job.active for job in self._jobs) and self.clock() < deadline:
            self.sleep(self.poll_interval)
            self._reap(self.clock())
        for job in self._jobs:
            if job.active is not None:
                log.warning(
                    "job %s: still running after %ss; stopping it",
                    job.spec.name,
                    self.shutdown_timeout,
                )
                self._stop_run(job, job.active)
            for _, fire in job.retries:
                self._dead_letter(job, fire, self.clock(), "the scheduler stopped before a retry")
            job.retries.clear()

    # --- the loop --------------------------------------------------------------------------

    def _advance(self, job: _Job, after: dt.datetime) -> None:
        spec = job.spec
        times = next_fire_times(
            job.expr,
            tz=spec.timezone,
            after=after,
            count=1,
            start_date=job.anchor if spec.start_date is None else spec.start_date,
            end_date=spec.end_date,
        )
        job.next_at = times[0].astimezone(dt.UTC) if times else None
        job.fire_at = None
        if job.next_at is not None:
            window = spec.flexible_window_minutes * 60
            offset = self.rng.uniform(0, window) if window else 0.0
            job.fire_at = job.next_at + dt.timedelta(seconds=offset)

    def _due_fires(self, job: _Job, now: dt.datetime) -> None:
        if job.fire_at is None or job.next_at is None or job.fire_at > now:
            return
        # Every fire whose moment has come; more than one only after downtime or a stall.
        due = [(job.next_at, job.fire_at)]
        self._advance(job, job.next_at)
        while job.next_at is not None and job.fire_at is not None and job.fire_at <= now:
            due.append((job.next_at, job.fire_at))
            self._advance(job, job.next_at)
        latest, latest_fire_at = due[-1]
        missed = len(due) - 1
        late = now - latest_fire_at > PRECISION
        note = None
        if late or missed:
            since = _iso(due[0][0])
            if self.settings.schedule.catch_up == "none":
                if late:
                    note = f"missed {missed + 1} fire(s) since {since}; not run (catch_up: none)"
                    self.store.start(
                        job.spec.name,
                        latest,
                        attempt=1,
                        started_at=now,
                        status="skipped",
                        message=note,
                    )
                    log.warning("job %s: %s", job.spec.name, note)
                    return
                note = f"skipped {missed} missed fire(s) since {since} (catch_up: none)"
            else:
                count = missed + (1 if late else 0)
                note = f"catch-up: one run for {count} missed fire(s) since {since}"
        if job.active is not None:
            self.store.start(
                job.spec.name,
                latest,
                attempt=1,
                started_at=now,
                status="skipped",
                message=SKIPPED_RUNNING,
            )
            log.warning("job %s: fire at %s %s", job.spec.name, _iso(latest), SKIPPED_RUNNING)
            return
        self._launch(job, _Fire(latest, note=note), now)

    def _due_retries(self, job: _Job, now: dt.datetime) -> None:
        if job.active is not None or not job.retries:
            return
        job.retries.sort(key=lambda item: item[0])
        due_at, fire = job.retries[0]
        if due_at > now:
            return
        job.retries.pop(0)
        self._launch(job, fire, now)

    def _launch(self, job: _Job, fire: _Fire, now: dt.datetime) -> None:
        fire.attempts += 1
        fire.first_attempt_at = fire.first_attempt_at or now
        # The run the child starts takes this id, so the fire record points at its run history.
        run_id = new_run_id()
        env = {
            "DATAFLOW_SCHEDULE_JOB": job.spec.name,
            "DATAFLOW_SCHEDULE_SCHEDULED_AT": fire.scheduled_at.isoformat(),
            "DATAFLOW_SCHEDULE_ATTEMPT": str(fire.attempts),
            "DATAFLOW_SCHEDULE_RUN_ID": run_id,
        }
        try:
            handle = self.runner(job.spec, env)
        except OSError as exc:
            fire.last_error = f"could not start the run: {exc}"
            self.store.start(
                job.spec.name,
                fire.scheduled_at,
                attempt=fire.attempts,
                started_at=now,
                status="failed",
                message=fire.last_error,
            )
            self._after_failure(job, fire, now)
            return
        fire_id = self.store.start(
            job.spec.name,
            fire.scheduled_at,
            attempt=fire.attempts,
            started_at=now,
            pid=handle.pid,
            message=fire.note,
            run_id=run_id,
        )
        job.active = _Active(fire, handle, fire_id)
        log.info(
            "job %s: started (scheduled %s, attempt %d)",
            job.spec.name,
            _iso(fire.scheduled_at),
            fire.attempts,
        )

    def _reap(self, now: dt.datetime) -> None:
        for job in self._jobs:
            active = job.active
            if active is None:
                continue
            code = active.handle.poll()
            if code is None:
                continue
            job.active = None
            fire = active.fire
            fire.exit_code = code
            if code == 0:
                self.store.finish(
                    active.fire_id,
                    status="succeeded",
                    exit_code=0,
                    finished_at=now,
                    message=fire.note,
                )
                log.info("job %s: succeeded", job.spec.name)
                continue
            fire.last_error = active.handle.message() or f"exit code {code}"
            self.store.finish(
                active.fire_id,
                status="failed",
                exit_code=code,
                finished_at=now,
                message=fire.last_error,
            )
            log.warning("job %s: failed (exit %d): %s", job.spec.name, code, fire.last_error)
            self._after_failure(job, fire, now)

    def _after_failure(self, job: _Job, fire: _Fire, now: dt.datetime) -> None:
        policy = job.spec.retry
        if fire.attempts > policy.maximum_retry_attempts:
            reason = f"MaximumRetryAttempts ({policy.maximum_retry_attempts}) exhausted"
            self._dead_letter(job, fire, now, reason)
            return
        delay = backoff_delays(fire.attempts, base=self.backoff_base, cap=self.backoff_max)[-1]
        due = now + dt.timedelta(seconds=delay)
        if due - fire.scheduled_at > dt.timedelta(seconds=policy.maximum_event_age_seconds):
            reason = f"MaximumEventAgeInSeconds ({policy.maximum_event_age_seconds}) exceeded"
            self._dead_letter(job, fire, now, reason)
            return
        job.retries.append((due, fire))
        log.info("job %s: retry %d in %.0fs", job.spec.name, fire.attempts, delay)

    def _dead_letter(self, job: _Job, fire: _Fire, now: dt.datetime, reason: str) -> None:
        payload = {
            "job": job.spec.name,
            "schedule": job.expr.text,
            "timezone": job.spec.timezone,
            "command": list(job.spec.command),
            "scheduled_at": fire.scheduled_at.isoformat(),
            "exit_code": fire.exit_code,
            "reason": reason,
        }
        self.store.dead_letter(
            job.spec.name,
            fire.scheduled_at,
            attempts=fire.attempts,
            first_attempt_at=fire.first_attempt_at,
            last_error=fire.last_error,
            recorded_at=now,
            payload=payload,
        )
        log.error("job %s: dead letter for %s: %s", job.spec.name, _iso(fire.scheduled_at), reason)

    def _stop_run(self, job: _Job, active: _Active) -> None:
        active.handle.terminate()
        deadline = self.clock() + dt.timedelta(seconds=self.kill_timeout)
        while active.handle.poll() is None and self.clock() < deadline:
            self.sleep(min(self.poll_interval, 0.1))
        if active.handle.poll() is None:
            active.handle.kill()
            deadline = self.clock() + dt.timedelta(seconds=self.kill_timeout)
            while active.handle.poll() is None and self.clock() < deadline:
                self.sleep(min(self.poll_interval, 0.1))
        self.store.finish(
            active.fire_id,
            status="interrupted",
            exit_code=active.handle.poll(),
            finished_at=self.clock(),
            message="stopped by the scheduler's shutdown",
        )
        job.active = None

    def _minute(self, now: dt.datetime) -> None:
        minute = now.replace(second=0, microsecond=0)
        if not self.minute_hooks or minute == self._last_minute:
            return
        self._last_minute = minute
        for hook in self.minute_hooks:
            try:
                hook(now)
            except Exception:  # a hook must never stop the schedule
                log.exception("a minute hook failed")

    def _wait(self, now: dt.datetime) -> float:
        if any(job.active for job in self._jobs):
            return self.poll_interval
        upcoming = [job.fire_at for job in self._jobs if job.fire_at is not None]
        upcoming += [due for job in self._jobs for due, _ in job.retries]
        if not upcoming:
            return self.idle_sleep
        seconds = (min(upcoming) - now).total_seconds()
        return max(0.0, min(seconds, self.idle_sleep))

    def _install_signal_handlers(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

        def handler(signum: int, frame: FrameType | None) -> None:  # noqa: ARG001
            self.request_stop()

        for sig in previous:
            signal.signal(sig, handler)

        def restore() -> None:
            for sig, old in previous.items():
                signal.signal(sig, old)

        return restore


def _parse(spec: JobSpec) -> ScheduleExpression:
    try:
        expr = parse_expression(spec.schedule)
        next_fire_times(expr, tz=spec.timezone, after=utc_now(), count=0)
    except ConfigError as exc:
        raise ConfigError(f"schedule.jobs[{spec.name}].schedule: {exc}") from None
    return expr


def _iso(value: dt.datetime | None) -> str:
    return value.isoformat() if value is not None else "never"
