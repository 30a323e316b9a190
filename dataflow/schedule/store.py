"""What the scheduler records: one ``schedule_fires`` row per attempt, ``dead_letters`` rows.

A fire is one scheduled time of a job; each attempt to run it (the first and every retry) is a
row of ``schedule_fires`` with ``attempt`` 1, 2, ... A fire skipped because the previous run of
the job was still running is a row with status ``skipped``. A fire that failed every attempt is
copied into ``dead_letters`` — the local stand-in for EventBridge Scheduler's SQS dead-letter
queue.

Example:
    >>> import datetime as dt
    >>> from dataflow.metadata import open_metadata
    >>> store = FireStore(open_metadata("sqlite://"))
    >>> t = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    >>> fire_id = store.start("nightly", t, attempt=1, started_at=t, pid=42)
    >>> store.finish(fire_id, status="succeeded", exit_code=0, finished_at=t)
    >>> [f.status for f in store.recent()]
    ['succeeded']
"""

from __future__ import annotations

import datetime as dt
import socket
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from dataflow.metadata.db import MetadataDB
from dataflow.metadata.lock import pid_alive
from dataflow.metadata.schema import dead_letters, schedule_fires

#: Statuses of a fire attempt.
FIRE_STATUSES = ("running", "succeeded", "failed", "skipped", "interrupted")
#: The message of a fire skipped because the job's previous run had not finished.
SKIPPED_RUNNING = "skipped: still running"


@dataclass(frozen=True)
class FireRecord:
    """One attempt of one fire, as recorded."""

    id: int
    job: str
    scheduled_at: dt.datetime
    attempt: int
    started_at: dt.datetime
    finished_at: dt.datetime | None
    status: str
    exit_code: int | None
    run_id: str | None
    message: str | None
    host: str | None
    pid: int | None


@dataclass(frozen=True)
class DeadLetter:
    """A fire that exhausted its retries."""

    id: int
    job: str
    scheduled_at: dt.datetime
    attempts: int
    first_attempt_at: dt.datetime | None
    last_error: str | None
    recorded_at: dt.datetime
    payload: dict[str, Any]


class FireStore:
    """Reads and writes ``schedule_fires`` and ``dead_letters``.

    Args:
        db: the project's metadata database (``open_metadata(settings.metadata_url)``).
    """

    def __init__(self, db: MetadataDB) -> None:
        self.db = db
        self.host = socket.gethostname()

    def start(
        self,
        job: str,
        scheduled_at: dt.datetime,
        *,
        attempt: int,
        started_at: dt.datetime,
        pid: int | None = None,
        status: str = "running",
        message: str | None = None,
        run_id: str | None = None,
    ) -> int:
        """Record an attempt that started (or, with ``status="skipped"``, did not); its id."""
        finished = started_at if status != "running" else None
        with self.db.begin() as conn:
            result = conn.execute(
                schedule_fires.insert().values(
                    job=job,
                    scheduled_at=scheduled_at,
                    attempt=attempt,
                    started_at=started_at,
                    finished_at=finished,
                    status=status,
                    message=message,
                    host=self.host,
                    pid=pid,
                    run_id=run_id,
                )
            )
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])

    def finish(
        self,
        fire_id: int,
        *,
        status: str,
        exit_code: int | None,
        finished_at: dt.datetime,
        message: str | None = None,
    ) -> None:
        """Record the end of an attempt."""
        with self.db.begin() as conn:
            conn.execute(
                schedule_fires.update()
                .where(schedule_fires.c.id == fire_id)
                .values(
                    status=status, exit_code=exit_code, finished_at=finished_at, message=message
                )
            )

    def dead_letter(
        self,
        job: str,
        scheduled_at: dt.datetime,
        *,
        attempts: int,
        first_attempt_at: dt.datetime | None,
        last_error: str | None,
        recorded_at: dt.datetime,
        payload: dict[str, Any],
    ) -> int:
        """Record a fire that exhausted its retries; its id."""
        with self.db.begin() as conn:
            result = conn.execute(
                dead_letters.insert().values(
                    job=job,
                    scheduled_at=scheduled_at,
                    attempts=attempts,
                    first_attempt_at=first_attempt_at,
                    last_error=last_error,
                    recorded_at=recorded_at,
                    payload=payload,
                )
            )
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])

    def last_scheduled(self, job: str) -> dt.datetime | None:
        """The latest scheduled time recorded for ``job`` (where a restart resumes)."""
        with self.db.read() as conn:
            value = conn.execute(
                sa.select(sa.func.max(schedule_fires.c.scheduled_at)).where(
                    schedule_fires.c.job == job
                )
            ).scalar_one()
        return _aware(value)

    def first_scheduled(self, job: str) -> dt.datetime | None:
        """The earliest scheduled time recorded for ``job`` (the phase of a rate schedule)."""
        with self.db.read() as conn:
            value = conn.execute(
                sa.select(sa.func.min(schedule_fires.c.scheduled_at)).where(
                    schedule_fires.c.job == job
                )
            ).scalar_one()
        return _aware(value)

    def recent(self, *, job: str | None = None, limit: int = 20) -> list[FireRecord]:
        """The latest attempts, newest first."""
        query = sa.select(schedule_fires).order_by(schedule_fires.c.id.desc()).limit(limit)
        if job is not None:
            query = query.where(schedule_fires.c.job == job)
        with self.db.read() as conn:
            return [FireRecord(**row._mapping) for row in conn.execute(query)]

    def running(self) -> list[FireRecord]:
        """Attempts recorded as running, oldest first."""
        query = (
            sa.select(schedule_fires)
            .where(schedule_fires.c.status == "running")
            .order_by(schedule_fires.c.id)
        )
        with self.db.read() as conn:
            return [FireRecord(**row._mapping) for row in conn.execute(query)]

    def dead_letters(self, *, job: str | None = None, limit: int = 20) -> list[DeadLetter]:
        """The latest dead letters, newest first."""
        query = sa.select(dead_letters).order_by(dead_letters.c.id.desc()).limit(limit)
        if job is not None:
            query = query.where(dead_letters.c.job == job)
        with self.db.read() as conn:
            return [DeadLetter(**row._mapping) for row in conn.execute(query)]

    def mark_orphans(self, now: dt.datetime) -> int:
        """Mark ``running`` attempts of dead scheduler processes on this host as interrupted.

        A scheduler killed with SIGKILL cannot record the end of its runs; the next one does.
        The row's pid is the job's process, whose death is what counts here.
        """
        stale = [
            f.id
            for f in self.running()
            if f.host == self.host and (f.pid is None or not pid_alive(f.pid))
        ]
        if stale:
            with self.db.begin() as conn:
                conn.execute(
                    schedule_fires.update()
                    .where(schedule_fires.c.id.in_(stale))
                    .values(
                        status="interrupted",
                        finished_at=now,
                        message="the scheduler stopped before this run ended",
                    )
                )
        return len(stale)


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    # UTCDateTime returns aware UTC, but an aggregate (max/min) bypasses the column type.
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
