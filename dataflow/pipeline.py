"""The pipeline runner: runs the stages in data order and records the run.

A run takes the project lock, gets an id, opens the metadata database (migrating it), writes JSON
logs under ``logs/`` and runs each stage inside ``stage_context`` so every log record and metric
carries the run id and the stage. A stage failure is wrapped once in :class:`StageError` with its
context. A stage may also end ``partial`` (e.g. some requests failed, or the daily API budget ran
out): the later stages still run on what landed, and the run ends ``partial``. A run is
``succeeded`` only when every stage is; ``partial`` and ``failed`` both count as a failed run for
the ``Dataflow/Pipeline RunFailed`` metric (so the default alarm fires) and the CLI's exit code.

SIGINT and SIGTERM during a run raise :class:`RunInterrupted` (SIGINT as the usual
``KeyboardInterrupt``) in the main thread: the run and its current stage are recorded
``interrupted`` before the exception leaves, and the CLI exits 130 / 143.

Example:
    >>> from dataflow.config import load_settings
    >>> settings = load_settings("/tmp/demo-project", env={})
    >>> result = run_pipeline(settings)            # doctest: +SKIP
    >>> result.status                               # doctest: +SKIP
    'succeeded'
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dataflow.contract import RunContext, RunOptions, Stage, StageResult
from dataflow.crashpoints import crashpoint
from dataflow.errors import DataflowError, StageError, TerminalError

if TYPE_CHECKING:
    from types import FrameType

    from dataflow.config import Settings
    from dataflow.metadata import MetadataDB, RunRecord, RunStore
    from dataflow.storage import ObjectStore

log = logging.getLogger("dataflow.pipeline")

#: Statuses that count as a failed run (``RunFailed`` = 1, CLI exit code 1).
FAILED_STATUSES = frozenset({"failed", "partial"})


class RunInterrupted(KeyboardInterrupt):
    """A signal (SIGTERM, SIGINT) stopped the run; it is recorded ``interrupted``.

    A ``KeyboardInterrupt`` so that asyncio, the HTTP client and every ``except Exception`` let it
    through as they do Ctrl-C.

    Attributes:
        signum: the signal number.
        exit_code: what the process exits with: 128 + the signal number (143 for SIGTERM).
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")


@dataclass
class RunResult:
    """The outcome of a run: its record (with stages) and each stage's own result."""

    run: RunRecord
    results: dict[str, StageResult]

    @property
    def status(self) -> str:
        """succeeded, partial or failed."""
        return self.run.status


def default_stages() -> list[Stage]:
    """The stages that exist, in data order: ingest, transform, quality, publish, crawl.

    The transform writes to each table's audit branch; readers see the data once the quality
    stage approved it and the publish stage moved ``main`` (:mod:`dataflow.quality.gate`).
    """
    from dataflow.catalog.stage import CrawlStage
    from dataflow.quality.gate import AUDIT_BRANCH
    from dataflow.quality.stage import PublishStage, QualityStage
    from dataflow.sources.twelvedata.ingest import IngestStage
    from dataflow.transform.stage import TransformStage

    return [
        IngestStage(),
        TransformStage(branch=AUDIT_BRANCH),
        QualityStage(),
        PublishStage(),
        CrawlStage(),
    ]


@contextmanager
def open_run(settings: Settings, options: RunOptions) -> Iterator[RunContext]:
    """Lock the project, open storage and metadata, start the run log; yield the context."""
    from dataflow.metadata import RunStore, new_run_id, open_metadata
    from dataflow.metadata.locks import project_lock
    from dataflow.metadata.ownership import check_state
    from dataflow.monitor.logs import prune_logs, run_log, stage_context
    from dataflow.monitor.metrics import Metrics
    from dataflow.storage import open_store

    state_dir = settings.state_dir
    _make_state_dir(settings)
    run_id = _scheduled_run_id() or new_run_id()
    log_dir = state_dir / "logs"
    # The lock lives where the state lives: PostgreSQL, S3 or the local state folder.
    with project_lock(settings, timeout=settings.run.lock_timeout) as lock:
        lock.acquire(run_id)
        db = _reachable(lambda: open_metadata(settings.metadata_url))
        try:
            runs = RunStore(db)
            interrupted = runs.mark_interrupted()
            # Records outside any stage (the runner's own) carry the stage "pipeline".
            with run_log(log_dir, run_id, level=settings.logging.level), stage_context("pipeline"):
                if interrupted:
                    log.warning(
                        "marked %d run(s) left running by a dead process as interrupted",
                        interrupted,
                    )
                prune_logs(log_dir, retention_days=settings.logging.retention_days)
                store = open_store(settings)
                check_state(settings, store)  # owners, table locations: before any credit
                _check_writable(store, settings)
                metrics = Metrics(db, run_id=run_id, default_dimensions={"pipeline": settings.name})
                ctx = RunContext(settings, run_id, options, store, db, metrics, log_dir)
                yield ctx
        finally:
            db.dispose()


#: Rewritten by every run before any stage: a warehouse that cannot be written fails in a
#: second, before an API credit is spent (e.g. an S3 bucket that does not exist).
WRITE_CHECK_KEY = "_dataflow/write-check"


def _make_state_dir(settings: Settings) -> None:
    """Create the local state folder, or say in one line which setting points where it cannot."""
    from dataflow.errors import ConfigError

    try:
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        probe = settings.state_dir / ".write-check"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        what = (
            "the local state folder of a remote warehouse"
            if settings.warehouse_is_remote
            else "warehouse"
        )
        raise ConfigError(
            f"{what} {settings.state_dir} cannot be written ({exc.strerror or exc}) — set "
            "`warehouse` in dataflow.yaml (or DATAFLOW__WAREHOUSE) to a folder you can write"
        ) from None


def _reachable(open_db: Callable[[], MetadataDB]) -> MetadataDB:
    """Open the metadata database; one that cannot be connected to is a configuration error."""
    import sqlalchemy as sa

    from dataflow.errors import ConfigError, MetadataError

    try:
        return open_db()
    except MetadataError as exc:
        cause = exc.__cause__
        if isinstance(cause, sa.exc.OperationalError) and "locked" not in str(exc).lower():
            raise ConfigError(str(exc)) from exc
        raise


def _check_writable(store: ObjectStore, settings: Settings) -> None:
    """Write one small object to the warehouse before any stage spends anything."""
    from dataflow.errors import ConfigError, StorageError

    try:
        store.put_bytes(WRITE_CHECK_KEY, b"", overwrite=True)
    except StorageError as exc:
        hint = " (does the bucket exist? check storage.s3)" if settings.warehouse_is_remote else ""
        raise ConfigError(
            f"warehouse {settings.warehouse_uri} cannot be written{hint}: {exc} — fix `warehouse`"
        ) from None


def run_pipeline(
    settings: Settings,
    options: RunOptions | None = None,
    *,
    stages: Sequence[Stage] | None = None,
) -> RunResult:
    """Run the given stages (default: all that exist) in order and record the run.

    Raises:
        StageError: a stage failed terminally (the run is recorded as failed first).
        LockTimeoutError: another run holds the project lock.
        ConfigError: the project fails a check of ``dataflow validate`` (nothing is fetched).
    """
    from dataflow.metadata import RunStore
    from dataflow.validate import preflight

    options = options or RunOptions()
    chosen = list(stages) if stages is not None else default_stages()
    preflight(settings, options, [stage.name for stage in chosen])  # before any API call
    with open_run(settings, options) as ctx:
        runs = RunStore(ctx.db)
        stage_names = [stage.name for stage in chosen]
        params: dict[str, Any] = {
            "start": options.start.isoformat() if options.start else None,
            "end": options.end.isoformat() if options.end else None,
            "full_refresh": options.full_refresh,
            "endpoints": list(options.endpoints or []),
            "symbols": list(options.symbols or []),
            "stages": stage_names,
        }
        runs.start_run(ctx.run_id, pipeline=settings.name, trigger=_trigger(options), params=params)
        log.info("run %s started: stages %s", ctx.run_id, ", ".join(stage_names))
        where = _Where()
        try:
            with _signals_interrupt():
                return _run_stages(ctx, runs, chosen, where)
        except KeyboardInterrupt as exc:
            why = str(exc) if isinstance(exc, RunInterrupted) else "interrupted by SIGINT"
            with _signals_deferred():  # the record is written whole, whatever comes next
                if where.stage is not None:
                    runs.finish_stage(ctx.run_id, where.stage, status="interrupted", message=why)
                if not where.recorded:  # a signal after the run's end changes nothing
                    runs.finish_run(ctx.run_id, status="interrupted", message=why)
                    ctx.metrics.record("Dataflow/Pipeline", "RunFailed", 1.0, "Count")
            log.warning("run %s %s", ctx.run_id, why)
            raise


@dataclass
class _Where:
    """How far a run got: the stage running now, and whether its end is recorded."""

    stage: str | None = None
    recorded: bool = False


def _run_stages(
    ctx: RunContext, runs: RunStore, chosen: Sequence[Stage], where: _Where
) -> RunResult:
    """The stages in order, then the run's record; ``where`` says how far it got."""
    from dataflow.monitor.logs import stage_context

    results: dict[str, StageResult] = {}
    run_status = "succeeded"
    failure: StageError | None = None
    for stage in chosen:
        runs.start_stage(ctx.run_id, stage.name)
        where.stage = stage.name
        started = time.perf_counter()
        with stage_context(stage.name):
            try:
                result = stage.run(ctx)
            except (DataflowError, Exception) as exc:
                result = StageResult(status="failed", errors=1, message=str(exc))
                failure = _wrap(exc, stage.name, ctx.run_id)
                log.error("stage %s failed: %s", stage.name, exc)
        results[stage.name] = result
        seconds = time.perf_counter() - started
        ctx.metrics.record(
            f"Dataflow/{stage.name.capitalize()}",
            "Duration",
            seconds,
            "Seconds",
            {"stage": stage.name},
        )
        runs.finish_stage(
            ctx.run_id,
            stage.name,
            status=result.status,
            rows=result.rows,
            bytes=result.bytes,
            requests=result.requests,
            errors=result.errors,
            message=result.message,
            details=result.details,
        )
        crashpoint("pipeline.after_stage_record")
        where.stage = None
        if result.status == "failed":
            run_status = "failed"
            break
        if result.status == "partial":
            run_status = "partial"
    message = str(failure) if failure else _summary(results)
    crashpoint("pipeline.before_run_record")
    record = runs.finish_run(ctx.run_id, status=run_status, message=message)
    where.recorded = True
    crashpoint("pipeline.after_run_record")
    failed = 1.0 if failure or run_status in FAILED_STATUSES else 0.0
    ctx.metrics.record("Dataflow/Pipeline", "RunFailed", failed, "Count")
    _after_run(ctx, record, run_status, transformed="transform" in results)
    log.info("run %s %s", ctx.run_id, run_status)
    if failure is not None:
        raise failure
    return RunResult(run=record, results=results)


def _raise_interrupted(signum: int, _frame: FrameType | None) -> None:
    raise RunInterrupted(signum)


@contextmanager
def _signals_interrupt() -> Iterator[None]:
    """SIGTERM (and SIGINT) raise :class:`RunInterrupted` while the run's stages run.

    Only the main thread can install handlers; elsewhere (a run started from a thread) the
    process's own handlers stay, and a signal ends the process as it would have.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    signal.signal(signal.SIGTERM, _raise_interrupted)
    if previous[signal.SIGINT] is signal.default_int_handler:
        signal.signal(signal.SIGINT, _raise_interrupted)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGTERM/SIGINT while the interrupted run is recorded; re-deliver nothing after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    for sig in previous:
        signal.signal(sig, signal.SIG_IGN)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _after_run(ctx: RunContext, record: RunRecord, status: str, *, transformed: bool) -> None:
    """Record the run's duration and the tables' freshness, then evaluate the alarms.

    Neither a bad alarm definition nor an unreadable table is a reason to fail the run that just
    finished: both are logged.
    """
    from dataflow.monitor.alarm_store import evaluate_all
    from dataflow.monitor.default_alarms import record_run_duration
    from dataflow.monitor.freshness import record_freshness
    from dataflow.monitor.statistics import prune

    if status == "succeeded":  # a short failed run would drag the median down
        record_run_duration(ctx.metrics, record.duration_s or 0.0)
    pruned = prune(ctx.db, dt.timedelta(days=ctx.settings.metrics.retention_days))
    if pruned:
        log.info("deleted %d metric datapoint(s) past metrics.retention_days", pruned)
    if transformed:
        try:
            record_freshness(ctx.settings, ctx.metrics)
        except DataflowError as exc:
            log.error("freshness could not be measured: %s", exc)
    try:
        # The run's own datapoints sit in the period still in progress: count it.
        evaluate_all(ctx.settings, ctx.db, include_partial_period=True)
    except DataflowError as exc:
        log.error("alarm evaluation failed: %s", exc)


SCHEDULE_JOB_ENV = "DATAFLOW_SCHEDULE_JOB"
SCHEDULE_RUN_ID_ENV = "DATAFLOW_SCHEDULE_RUN_ID"


def _scheduled_run_id() -> str | None:
    """The run id `dataflow schedule` chose for this run (it records it with the fire)."""
    if not os.environ.get(SCHEDULE_JOB_ENV):
        return None
    run_id = os.environ.get(SCHEDULE_RUN_ID_ENV, "")
    return run_id if re.fullmatch(r"[0-9A-Za-z_.-]{1,64}", run_id) else None


def _trigger(options: RunOptions) -> str:
    """``schedule:<job>`` for a run started by the scheduler, else what the caller said."""
    job = os.environ.get(SCHEDULE_JOB_ENV)
    return f"schedule:{job}" if job and options.trigger == "cli" else options.trigger


def _wrap(exc: BaseException, stage: str, run_id: str) -> StageError:
    if isinstance(exc, StageError):
        return exc
    text = f"{stage} stage failed in run {run_id}: {exc}"
    if isinstance(exc, OSError) and not isinstance(exc, DataflowError):
        # A full disk or a failing volume under the tables: the cause is the message itself.
        text += " — check the warehouse's free space and permissions, then run again"
    error = StageError(text, stage=stage, run_id=run_id)
    error.__cause__ = exc
    if isinstance(exc, DataflowError):
        error.exit_code = exc.exit_code
    elif isinstance(exc, OSError):
        log.error("stage %s: storage error: %s", stage, exc)
    elif not isinstance(exc, TerminalError):
        log.exception("unexpected error in stage %s", stage, exc_info=exc)
    return error


def _summary(results: dict[str, StageResult]) -> str | None:
    messages = [f"{name}: {r.message}" for name, r in results.items() if r.message]
    return "; ".join(messages) or None


__all__ = [  # the stage contract is re-exported: callers import the runner and its options here
    "FAILED_STATUSES",
    "RunContext",
    "RunInterrupted",
    "RunOptions",
    "RunResult",
    "Stage",
    "StageResult",
    "default_stages",
    "open_run",
    "run_pipeline",
]
