"""Run history: one row per pipeline run, one per stage of it.

A run has an id, a start and an end, a status and, per stage, the status, duration and the
counters every stage reports (rows, bytes, requests, errors). The pipeline runner writes them;
``dataflow runs`` and the dashboard read them.

Example:
    >>> from dataflow.metadata import open_metadata
    >>> store = RunStore(open_metadata("sqlite://"))
    >>> run = store.start_run(new_run_id(), pipeline="demo")
    >>> _ = store.start_stage(run.run_id, "ingest")
    >>> _ = store.finish_stage(run.run_id, "ingest", status="succeeded", rows=10, requests=2)
    >>> store.finish_run(run.run_id, status="succeeded").stages[0].rows
    10
"""

from __future__ import annotations

import builtins
import datetime as dt
import os
import secrets
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from dataflow.errors import ConfigError, MetadataError
from dataflow.metadata.db import MetadataDB
from dataflow.metadata.lock import pid_alive
from dataflow.metadata.schema import run_stages, runs, utcnow

#: Statuses of a run. ``interrupted``: its process died before it could record an end.
RUN_STATUSES = ("running", "succeeded", "failed", "partial", "interrupted")
#: Statuses of a stage. ``partial``: finished, but some requests or rows failed.
#: ``interrupted``: a signal stopped the run while this stage ran.
STAGE_STATUSES = ("running", "succeeded", "failed", "partial", "skipped", "interrupted")


def new_run_id() -> str:
    """A new run id: UTC time to the second plus 4 random hex digits.

    Ids sort by start time, are safe in file names and object keys, and are short enough to
    type (any unique prefix works in ``dataflow runs``).

    Example:
        >>> rid = new_run_id()
        >>> len(rid), rid[8], rid[15:17]
        (21, 'T', 'Z-')
    """
    return f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"


@dataclass
class StageRecord:
    """One stage of a run, as recorded."""

    run_id: str
    stage: str
    status: str
    started_at: dt.datetime
    finished_at: dt.datetime | None = None
    duration_s: float | None = None
    rows: int = 0
    bytes: int = 0
    requests: int = 0
    errors: int = 0
    message: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunRecord:
    """One pipeline run, with its stages in the order they started."""

    run_id: str
    pipeline: str
    status: str
    started_at: dt.datetime
    finished_at: dt.datetime | None = None
    duration_s: float | None = None
    trigger: str = "cli"
    params: dict[str, Any] = field(default_factory=dict)
    message: str | None = None
    stages: list[StageRecord] = field(default_factory=list)


class RunStore:
    """Reads and writes run history in the metadata database.

    Args:
        db: an open (migrated) :class:`~dataflow.metadata.MetadataDB`.
    """

    def __init__(self, db: MetadataDB) -> None:
        self.db = db

    # --- runs ------------------------------------------------------------------------------------

    def start_run(
        self,
        run_id: str,
        *,
        pipeline: str,
        trigger: str = "cli",
        params: Mapping[str, Any] | None = None,
    ) -> RunRecord:
        """Record that a run started now, with status ``running``.

        Raises:
            MetadataError: a run with this id exists already.

        Example:
            >>> from dataflow.metadata import open_metadata
            >>> RunStore(open_metadata("sqlite://")).start_run("r1", pipeline="p").status
            'running'
        """
        row = {
            "run_id": run_id,
            "pipeline": pipeline,
            "status": "running",
            "trigger": trigger,
            "started_at": utcnow(),
            "params": dict(params or {}),
            "host": socket.gethostname(),
            "pid": os.getpid(),
        }
        with self.db.begin() as conn:
            exists = conn.execute(sa.select(runs.c.run_id).where(runs.c.run_id == run_id)).first()
            if exists is not None:
                raise MetadataError(f"run {run_id} exists already — use a new id (new_run_id())")
            conn.execute(runs.insert().values(**row))
            return self._get(conn, run_id)

    def finish_run(self, run_id: str, *, status: str, message: str | None = None) -> RunRecord:
        """Record the end of a run: its final status, end time and duration.

        Example:
            >>> from dataflow.metadata import open_metadata
            >>> store = RunStore(open_metadata("sqlite://"))
            >>> _ = store.start_run("r1", pipeline="p")
            >>> store.finish_run("r1", status="failed", message="boom").message
            'boom'
        """
        _check(status, RUN_STATUSES[1:], "run status")
        with self.db.begin() as conn:
            started = self._run_started(conn, run_id)
            now = utcnow()
            conn.execute(
                runs.update()
                .where(runs.c.run_id == run_id)
                .values(
                    status=status,
                    finished_at=now,
                    duration_s=(now - started).total_seconds(),
                    message=message,
                )
            )
            return self._get(conn, run_id)

    # --- stages ----------------------------------------------------------------------------------

    def start_stage(self, run_id: str, stage: str) -> StageRecord:
        """Record that a stage of a run started now (a restarted stage starts over).

        Example:
            >>> from dataflow.metadata import open_metadata
            >>> store = RunStore(open_metadata("sqlite://"))
            >>> _ = store.start_run("r1", pipeline="p")
            >>> store.start_stage("r1", "ingest").status
            'running'
        """
        now = utcnow()
        with self.db.begin() as conn:
            self._run_started(conn, run_id)  # the run must exist
            values: dict[str, Any] = {
                "status": "running",
                "started_at": now,
                "finished_at": None,
                "duration_s": None,
                "rows": 0,
                "bytes": 0,
                "requests": 0,
                "errors": 0,
                "message": None,
                "details": {},
            }
            if not self._update_stage(conn, run_id, stage, values):
                conn.execute(
                    run_stages.insert().values(
                        run_id=run_id, stage=stage, seq=self._next_seq(conn, run_id), **values
                    )
                )
            return self._get_stage(conn, run_id, stage)

    def finish_stage(
        self,
        run_id: str,
        stage: str,
        *,
        status: str,
        rows: int = 0,
        bytes: int = 0,
        requests: int = 0,
        errors: int = 0,
        message: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> StageRecord:
        """Record the end of a stage with its counters.

        A stage that never started (e.g. ``skipped``) is recorded with zero duration.

        Example:
            >>> from dataflow.metadata import open_metadata
            >>> store = RunStore(open_metadata("sqlite://"))
            >>> _ = store.start_run("r1", pipeline="p")
            >>> store.finish_stage("r1", "quality", status="skipped").duration_s
            0.0
        """
        _check(status, STAGE_STATUSES[1:], "stage status")
        now = utcnow()
        values: dict[str, Any] = {
            "status": status,
            "finished_at": now,
            "rows": rows,
            "bytes": bytes,
            "requests": requests,
            "errors": errors,
            "message": message,
            "details": dict(details or {}),
        }
        with self.db.begin() as conn:
            self._run_started(conn, run_id)
            started = conn.execute(
                sa.select(run_stages.c.started_at).where(
                    run_stages.c.run_id == run_id, run_stages.c.stage == stage
                )
            ).scalar_one_or_none()
            if started is None:
                conn.execute(
                    run_stages.insert().values(
                        run_id=run_id,
                        stage=stage,
                        seq=self._next_seq(conn, run_id),
                        started_at=now,
                        duration_s=0.0,
                        **values,
                    )
                )
            else:
                values["duration_s"] = (now - started).total_seconds()
                self._update_stage(conn, run_id, stage, values)
            return self._get_stage(conn, run_id, stage)

    # --- reading ---------------------------------------------------------------------------------

    def get(self, run_id: str) -> RunRecord:
        """One run with its stages, by id or by a unique prefix of its id.

        Raises:
            MetadataError: no run matches, or the prefix matches several runs.

        Example:
            >>> from dataflow.metadata import open_metadata
            >>> store = RunStore(open_metadata("sqlite://"))
            >>> _ = store.start_run("20260101T000000Z-abcd", pipeline="p")
            >>> store.get("20260101T").run_id
            '20260101T000000Z-abcd'
        """
        with self.db.read() as conn:
            return self._get(conn, self._resolve(conn, run_id))

    def list(self, *, limit: int = 20, status: str | None = None) -> builtins.list[RunRecord]:
        """The newest runs first, optionally only those with one status.

        Raises:
            ConfigError: ``status`` is not a run status.

        Example:
            >>> from dataflow.metadata import open_metadata
            >>> RunStore(open_metadata("sqlite://")).list(status="failed")
            []
        """
        query = sa.select(runs).order_by(runs.c.started_at.desc(), runs.c.run_id.desc())
        if status is not None:
            if status not in RUN_STATUSES:
                raise ConfigError(
                    f"unknown run status {status!r}; use one of {', '.join(RUN_STATUSES)}"
                )
            query = query.where(runs.c.status == status)
        with self.db.read() as conn:
            rows = conn.execute(query.limit(limit)).mappings().all()
            stages = self._stages(conn, [row["run_id"] for row in rows])
        return [_run(row, stages.get(row["run_id"], [])) for row in rows]

    def mark_interrupted(self) -> int:
        """Mark ``running`` runs whose process is gone as ``interrupted``; return how many.

        Only runs started on this host can be checked (a process id means nothing elsewhere).
        The runner calls this once it holds the project lock; stages left ``running`` become
        ``failed``.

        Example:
            >>> from dataflow.metadata import open_metadata
            >>> RunStore(open_metadata("sqlite://")).mark_interrupted()
            0
        """
        host = socket.gethostname()
        with self.db.begin() as conn:
            candidates = conn.execute(
                sa.select(runs.c.run_id, runs.c.pid).where(
                    runs.c.status == "running", runs.c.host == host
                )
            ).all()
            dead = [run_id for run_id, pid in candidates if pid is None or not pid_alive(pid)]
            if not dead:
                return 0
            why = f"the process on {host} ended before the run did; marked by pid {os.getpid()}"
            conn.execute(
                runs.update()
                .where(runs.c.run_id.in_(dead))
                .values(status="interrupted", message=why)
            )
            conn.execute(
                run_stages.update()
                .where(run_stages.c.run_id.in_(dead), run_stages.c.status == "running")
                .values(status="failed", message="interrupted")
            )
            return len(dead)

    # --- internals -------------------------------------------------------------------------------

    def _resolve(self, conn: sa.Connection, run_id: str) -> str:
        if conn.execute(sa.select(runs.c.run_id).where(runs.c.run_id == run_id)).first():
            return run_id
        pattern = run_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        matches = (
            conn.execute(
                sa.select(runs.c.run_id)
                .where(runs.c.run_id.like(pattern, escape="\\"))
                .order_by(runs.c.run_id)
                .limit(4)
            )
            .scalars()
            .all()
        )
        if not run_id or not matches:
            raise MetadataError(f"no run {run_id} — see `dataflow runs`")
        if len(matches) > 1:
            shown = ", ".join(matches[:3]) + (", …" if len(matches) > 3 else "")
            raise MetadataError(
                f"run id {run_id} is ambiguous: it starts {shown} — give more characters"
            )
        return str(matches[0])

    def _get(self, conn: sa.Connection, run_id: str) -> RunRecord:
        row = conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).mappings().first()
        if row is None:
            raise MetadataError(f"no run {run_id} — see `dataflow runs`")
        return _run(row, self._stages(conn, [run_id]).get(run_id, []))

    def _get_stage(self, conn: sa.Connection, run_id: str, stage: str) -> StageRecord:
        row = (
            conn.execute(
                sa.select(run_stages).where(
                    run_stages.c.run_id == run_id, run_stages.c.stage == stage
                )
            )
            .mappings()
            .one()
        )
        return _stage(row)

    def _stages(
        self, conn: sa.Connection, run_ids: Sequence[str]
    ) -> dict[str, builtins.list[StageRecord]]:
        out: dict[str, builtins.list[StageRecord]] = {}
        if not run_ids:
            return out
        query = (
            sa.select(run_stages)
            .where(run_stages.c.run_id.in_(run_ids))
            .order_by(run_stages.c.run_id, run_stages.c.seq)
        )
        for row in conn.execute(query).mappings():
            out.setdefault(row["run_id"], []).append(_stage(row))
        return out

    def _run_started(self, conn: sa.Connection, run_id: str) -> dt.datetime:
        started = conn.execute(
            sa.select(runs.c.started_at).where(runs.c.run_id == run_id)
        ).scalar_one_or_none()
        if started is None:
            raise MetadataError(f"no run {run_id} — start it with start_run() first")
        return started  # type: ignore[no-any-return]

    def _update_stage(
        self, conn: sa.Connection, run_id: str, stage: str, values: Mapping[str, Any]
    ) -> bool:
        result = conn.execute(
            run_stages.update()
            .where(run_stages.c.run_id == run_id, run_stages.c.stage == stage)
            .values(**values)
        )
        return result.rowcount > 0

    def _next_seq(self, conn: sa.Connection, run_id: str) -> int:
        current = conn.execute(
            sa.select(sa.func.max(run_stages.c.seq)).where(run_stages.c.run_id == run_id)
        ).scalar_one()
        return 0 if current is None else int(current) + 1


def _check(value: str, allowed: Sequence[str], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; use one of {', '.join(allowed)}")


def _run(row: sa.RowMapping, stages: builtins.list[StageRecord]) -> RunRecord:
    return RunRecord(
        run_id=row["run_id"],
        pipeline=row["pipeline"],
        status=row["status"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        duration_s=row["duration_s"],
        trigger=row["trigger"],
        params=dict(row["params"] or {}),
        message=row["message"],
        stages=stages,
    )


def _stage(row: sa.RowMapping) -> StageRecord:
    return StageRecord(
        run_id=row["run_id"],
        stage=row["stage"],
        status=row["status"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        duration_s=row["duration_s"],
        rows=int(row["rows"]),
        bytes=int(row["bytes"]),
        requests=int(row["requests"]),
        errors=int(row["errors"]),
        message=row["message"],
        details=dict(row["details"] or {}),
    )


__all__ = [
    "RUN_STATUSES",
    "STAGE_STATUSES",
    "RunRecord",
    "RunStore",
    "StageRecord",
    "new_run_id",
]
