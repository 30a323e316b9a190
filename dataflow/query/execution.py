"""Query executions: the Athena lifecycle around a :class:`QuerySession`.

:class:`QueryRunner` gives each query an id and walks it through Athena's states, writing each
state to the history table (:mod:`dataflow.query.history`) — one insert as it starts, one
update when it ends:

1. ``QUEUED`` — submitted (in memory only: planning starts at once).
2. ``RUNNING`` — recorded; planned: translated, tables resolved to one snapshot each, files
   pruned.
3. The workgroup's guard: a plan that would read more than ``bytes_scanned_cutoff_per_query``
   ends ``CANCELLED`` with reason ``Bytes scanned limit was exceeded`` *before* DuckDB reads
   anything (Athena stops such a query while it runs; deciding from the pruned file list is
   the same answer without the wasted scan).
4. Run; the rows are written to ``results/<query_id>.csv`` (+ ``.csv.metadata``) in the
   warehouse, Athena's result files — ``results/<query_id>.txt`` for DDL and UTILITY
   statements (SHOW, DESCRIBE, EXPLAIN, CTAS), as Athena does; ``SUCCEEDED`` with the
   statistics. An error ends ``FAILED`` with its Athena error name (``SYNTAX_ERROR``,
   ``TABLE_NOT_FOUND``, ...).

CTAS and UNLOAD (:mod:`dataflow.query.writes`) run their SELECT the same way and also write
``<query_id>-manifest.csv``, the list of files they wrote.

Example:
    >>> with QueryRunner(settings) as runner:  # doctest: +SKIP
    ...     outcome = runner.run("SELECT count(*) FROM time_series", dialect="athena")
    >>> outcome.execution.state, outcome.execution.bytes_scanned  # doctest: +SKIP
    (<QueryState.SUCCEEDED: 'SUCCEEDED'>, 517427)
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dataflow.errors import ConfigError, DataflowError
from dataflow.metadata.schema import utcnow
from dataflow.query.config import QueryConfig, Workgroup, query_config
from dataflow.query.errors import USER_ERROR, QueryCancelledError, QueryError
from dataflow.query.history import (
    QueryExecution,
    QueryState,
    insert_execution,
    update_execution,
)
from dataflow.query.result import QueryResult
from dataflow.query.session import Params, QuerySession
from dataflow.query.stop import USER_CANCELLED, Watch, check_query_id
from dataflow.query.writes import create_table_as, ctas_target, parse_write, unload

if TYPE_CHECKING:
    from dataflow.config import Settings
    from dataflow.metadata.db import MetadataDB
    from dataflow.query.planning import QueryPlan
    from dataflow.storage.objectstore import ObjectStore

BYTES_LIMIT_REASON = "Bytes scanned limit was exceeded"
"""Athena's ``StateChangeReason`` for a query over the workgroup's cutoff."""

_UTILITY = {"SHOW", "DESCRIBE", "SUMMARIZE", "EXPLAIN", "PRAGMA"}


@dataclass(frozen=True)
class QueryOutcome:
    """A finished execution: its record, its rows and the plan it ran."""

    execution: QueryExecution
    result: QueryResult
    plan: QueryPlan


class QueryRunner:
    """Runs queries with ids, states, statistics, history and result files.

    Args:
        settings: the project's settings.
        db: the metadata database (opened from the settings when omitted, then closed here).
        config: the query settings (default: :func:`query_config` of ``settings``).

    Example:
        >>> with QueryRunner(settings) as runner:  # doctest: +SKIP
        ...     runner.run("SELECT 1").execution.state
        <QueryState.SUCCEEDED: 'SUCCEEDED'>
    """

    def __init__(
        self, settings: Settings, db: MetadataDB | None = None, *, config: QueryConfig | None = None
    ) -> None:
        self.settings = settings
        self.config = config or query_config(settings)
        self._owns_db = db is None
        if db is None:
            from dataflow.metadata import open_metadata

            db = open_metadata(settings.metadata_url)
        self.db = db
        self.session = QuerySession(settings, db)
        self._store: ObjectStore | None = None

    def __enter__(self) -> QueryRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the session (and the metadata database when the runner opened it)."""
        self.session.close()
        if self._owns_db:
            self.db.dispose()

    @property
    def store(self) -> ObjectStore:
        """The warehouse object store (result files, UNLOAD)."""
        if self._store is None:
            from dataflow.storage import open_store

            self._store = open_store(self.settings)
        return self._store

    def dry_run(
        self,
        sql: str,
        *,
        dialect: str = "duckdb",
        as_of: str | int | dt.datetime | None = None,
        params: Params = None,
    ) -> QueryPlan:
        """The plan of a query — tables, files, partitions, bytes, cost — without running it.

        Example:
            >>> plan = runner.dry_run("SELECT * FROM quotes")  # doctest: +SKIP
            >>> plan.cost_usd  # 10 MB minimum  # doctest: +SKIP
            4.76837158203125e-05
        """
        write = parse_write(sql)
        return self.session.plan(
            write.select if write else sql,
            dialect=dialect,
            as_of=as_of,
            params=params,
            count_totals=True,
        )

    def run(
        self,
        sql: str,
        *,
        dialect: str = "duckdb",
        workgroup: str | None = None,
        as_of: str | int | dt.datetime | None = None,
        params: Params = None,
        query_id: str | None = None,
    ) -> QueryOutcome:
        """Run one statement as an execution (see the module docstring for the lifecycle).

        Args:
            query_id: the execution's id, chosen by the caller (a UUID not used yet), so that
                another thread or client can stop it while it runs; default: a new UUID.

        Raises:
            QueryError: the query failed (recorded as FAILED with its error name), also
                ``EXCEEDED_TIME_LIMIT`` over the workgroup's ``query_timeout_seconds``.
            QueryCancelledError: over the workgroup's bytes-scanned cutoff, or stopped
                (:func:`~dataflow.query.stop.stop_query`, Ctrl-C, a server shutting down).
            ConfigError: an unknown workgroup or a bad ``query_id`` (nothing recorded, as
                Athena refuses to start).
        """
        group = self.config.workgroup(workgroup)
        execution = QueryExecution.new(
            sql,
            dialect=dialect.lower(),
            workgroup=group.name,
            as_of=None if as_of is None else str(as_of),
        )
        if query_id is not None:
            execution.query_id = self._new_id(query_id)
        started = time.perf_counter()
        execution.state = QueryState.RUNNING
        execution.queue_ms = _ms(utcnow() - execution.submitted_at)
        # Watched before it is recorded: a stop never finds a RUNNING record it cannot stop.
        with Watch(execution.query_id, self.session, group.query_timeout_seconds) as watch:
            insert_execution(self.db, execution)
            try:
                return self._run(execution, started, group, watch, sql, dialect, as_of, params)
            except QueryCancelledError as exc:
                if watch.stopped and exc.reason == watch.reason:  # stopped before it ran
                    self._stopped(execution, started, exc)
                raise
            except (Exception, KeyboardInterrupt) as exc:
                if watch.stopped or _interrupted(exc):
                    # Ctrl-C reaches a running DuckDB query as an interrupt, not a signal.
                    watch.stop(USER_CANCELLED)
                    error = watch.error()
                    self._stopped(execution, started, error)
                    raise error from None
                user = isinstance(exc, ConfigError)
                self._fail(execution, started, exc, USER_ERROR if user else 1)
                raise

    def _run(
        self,
        execution: QueryExecution,
        started: float,
        group: Workgroup,
        watch: Watch,
        sql: str,
        dialect: str,
        as_of: str | int | dt.datetime | None,
        params: Params,
    ) -> QueryOutcome:
        write = parse_write(sql)
        if write is not None and write.kind != "UNLOAD":
            ctas_target(write, self.session.default_database)  # refused before it runs
        plan = self.session.plan(
            write.select if write else sql, dialect=dialect, as_of=as_of, params=params
        )
        kind = _statement_kind(plan.translation.sql, write.kind if write else None)
        execution.statement_type, execution.substatement_type = kind
        execution.planning_ms = _ms_since(started)
        execution.bytes_scanned = plan.bytes_scanned
        execution.files_scanned = plan.files_scanned
        execution.snapshots = plan.snapshots
        cutoff = group.bytes_scanned_cutoff_per_query
        if cutoff is not None and plan.bytes_scanned > cutoff:
            self._finish(execution, started, QueryState.CANCELLED, reason=BYTES_LIMIT_REASON)
            raise QueryCancelledError(
                execution.query_id,
                BYTES_LIMIT_REASON,
                f"{plan.bytes_scanned} bytes planned, workgroup {group.name} allows {cutoff}",
            )
        watch.check()  # stopped while planning: do not start
        result, written = self._execute(plan, write, execution.query_id)
        watch.check()  # stopped while the rows were written: they are not published
        prefix = self.config.results_prefix
        from dataflow.query.output import write_manifest, write_results

        key = write_results(self.store, prefix, execution.query_id, result, statement_type=kind[0])
        if written is not None:
            write_manifest(self.store, prefix, execution.query_id, written)
        execution.output_location = self.store.url_for(key)
        execution.rows_returned = result.row_count
        self._finish(execution, started, QueryState.SUCCEEDED)
        return QueryOutcome(execution, result, plan)

    def _new_id(self, query_id: str) -> str:
        from dataflow.query.history import get_execution

        chosen = check_query_id(query_id)
        try:
            get_execution(self.db, chosen)
        except ConfigError:
            return chosen
        raise ConfigError(f"query id {chosen} is taken — give a new UUID, or none")

    def _stopped(self, execution: QueryExecution, started: float, error: DataflowError) -> None:
        """Record a query stopped by its time limit (FAILED) or by a stop (CANCELLED)."""
        if isinstance(error, QueryError):
            execution.error_type, execution.error_category = error.error_type, USER_ERROR
            execution.error_message = str(error)
            self._finish(execution, started, QueryState.FAILED, reason=str(error))
            return
        reason = error.reason if isinstance(error, QueryCancelledError) else str(error)
        self._finish(execution, started, QueryState.CANCELLED, reason=reason)

    def _execute(
        self, plan: QueryPlan, write: Any, query_id: str
    ) -> tuple[QueryResult, list[str] | None]:
        if write is None:
            return self.session.run(plan), None
        began = time.perf_counter()
        rows = self.session.arrow(plan)
        if write.kind == "UNLOAD":
            written = unload(self.settings, self.store, write, rows, query_id)
            written = [self.store.url_for(key) for key in written]
        else:
            written = create_table_as(
                self.settings, write, rows, default_database=self.session.default_database
            )
        result = QueryResult(
            columns=["rows"],
            types=["BIGINT"],
            rows=[(rows.num_rows,)],
            elapsed=time.perf_counter() - began,
        )
        return result, written

    def _finish(
        self,
        execution: QueryExecution,
        started: float,
        state: QueryState,
        *,
        reason: str | None = None,
    ) -> None:
        execution.state = state
        execution.state_change_reason = reason
        execution.completed_at = utcnow()
        execution.engine_ms = _ms_since(started)
        execution.total_ms = _ms(execution.completed_at - execution.submitted_at)
        update_execution(self.db, execution)
        self._record_metrics(execution)

    def _record_metrics(self, execution: QueryExecution) -> None:
        """Athena's CloudWatch query metrics, under ``Dataflow/Query``.

        Dimensions as Athena's: the workgroup and the final state (plus the pipeline).
        """
        from dataflow.monitor.metrics import Datapoint, Metrics

        dims = {
            "pipeline": self.settings.name,
            "workgroup": execution.workgroup,
            "state": str(execution.state),
        }
        when = execution.completed_at or utcnow()
        values = [
            ("ProcessedBytes", execution.bytes_scanned, "Bytes"),
            ("EngineExecutionTime", execution.engine_ms, "Milliseconds"),
            ("QueryPlanningTime", execution.planning_ms, "Milliseconds"),
            ("TotalExecutionTime", execution.total_ms, "Milliseconds"),
        ]
        points = [
            Datapoint("Dataflow/Query", name, float(value), unit, dims, when, None)
            for name, value, unit in values
            if value is not None
        ]
        Metrics(self.db).record_many(points)

    def _fail(
        self, execution: QueryExecution, started: float, exc: BaseException, category: int
    ) -> None:
        if isinstance(exc, QueryError):
            execution.error_type, message = exc.error_type, str(exc)
        else:
            execution.error_type = (
                "GENERIC_INTERNAL_ERROR" if category == 1 else "GENERIC_USER_ERROR"
            )
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        execution.error_category = category
        execution.error_message = message
        self._finish(execution, started, QueryState.FAILED, reason=message)


def _interrupted(exc: BaseException) -> bool:
    """Whether ``exc`` is, or comes from, an interrupt (Ctrl-C, or a connection interrupted)."""
    import duckdb

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt | duckdb.InterruptException):
            return True
        seen = seen.__cause__
    return False


def _statement_kind(sql: str, write_kind: str | None) -> tuple[str, str]:
    """Athena's ``(StatementType, SubstatementType)`` of a statement."""
    if write_kind == "UNLOAD":
        return "DML", "UNLOAD"
    if write_kind is not None:
        return "DDL", write_kind
    keyword = sql.split(None, 1)[0].upper() if sql.strip() else "SELECT"
    if keyword in _UTILITY:
        return "UTILITY", keyword
    return "DML", "SELECT"


def _ms(delta: dt.timedelta) -> int:
    return max(0, int(delta.total_seconds() * 1000))


def _ms_since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


__all__ = ["BYTES_LIMIT_REASON", "QueryOutcome", "QueryRunner"]
