"""Query executions and their history in the metadata database (Athena's QueryExecution).

An execution moves ``QUEUED → RUNNING → SUCCEEDED | FAILED | CANCELLED``. The runner writes
two rows' worth per query — :func:`insert_execution` as it starts (RUNNING: it plans at once,
so QUEUED only lives in memory) and :func:`update_execution` with the outcome — so
``dataflow query history`` shows running queries too, and a crashed process leaves its query
visibly RUNNING rather than lost, at two SQLite commits (fsyncs) per query instead of three.

Example:
    >>> db = open_metadata("sqlite://")  # doctest: +SKIP
    >>> execution = QueryExecution.new("SELECT 1", dialect="duckdb", workgroup="primary")
    >>> record(db, execution)  # doctest: +SKIP
    >>> get_execution(db, execution.query_id).state  # doctest: +SKIP
    <QueryState.QUEUED: 'QUEUED'>
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from dataflow.errors import ConfigError
from dataflow.metadata.schema import query_executions, utcnow

if TYPE_CHECKING:
    from dataflow.metadata.db import MetadataDB


class QueryState(StrEnum):
    """Athena's ``QueryExecutionState``."""

    QUEUED = "QUEUED"
    """Submitted, not yet planned."""
    RUNNING = "RUNNING"
    """Being planned or run."""
    SUCCEEDED = "SUCCEEDED"
    """Finished; results written."""
    FAILED = "FAILED"
    """Stopped by an error (terminal; never retried)."""
    CANCELLED = "CANCELLED"
    """Stopped before it ran, e.g. over the workgroup's bytes-scanned cutoff."""

    @property
    def done(self) -> bool:
        """True for the terminal states."""
        return self in (QueryState.SUCCEEDED, QueryState.FAILED, QueryState.CANCELLED)


@dataclass
class QueryExecution:
    """One query execution: what ran, its state, statistics and where its results are.

    Times are aware UTC; durations in milliseconds as Athena reports them
    (``EngineExecutionTimeInMillis`` includes ``QueryPlanningTimeInMillis``).
    """

    query_id: str
    query: str
    dialect: str
    workgroup: str
    submitted_at: dt.datetime
    state: QueryState = QueryState.QUEUED
    statement_type: str = "DML"
    substatement_type: str = "SELECT"
    state_change_reason: str | None = None
    error_type: str | None = None
    error_category: int | None = None
    error_message: str | None = None
    completed_at: dt.datetime | None = None
    engine_ms: int | None = None
    planning_ms: int | None = None
    queue_ms: int | None = None
    total_ms: int | None = None
    rows_returned: int | None = None
    bytes_scanned: int | None = None
    files_scanned: int | None = None
    output_location: str | None = None
    as_of: str | None = None
    snapshots: dict[str, str] = field(default_factory=dict)

    @classmethod
    def new(
        cls, query: str, *, dialect: str, workgroup: str, as_of: str | None = None
    ) -> QueryExecution:
        """A fresh QUEUED execution with a new id (a UUID, as Athena's)."""
        return cls(
            query_id=str(uuid.uuid4()),
            query=query,
            dialect=dialect,
            workgroup=workgroup,
            submitted_at=utcnow(),
            as_of=as_of,
        )

    def to_json(self) -> dict[str, Any]:
        """The execution as JSON-ready data, shaped like Athena's ``QueryExecution``."""
        error = None
        if self.error_type or self.error_message:
            error = {
                "ErrorCategory": self.error_category,
                "ErrorType": self.error_type,
                "Retryable": False,
                "ErrorMessage": self.error_message,
            }
        return {
            "QueryExecutionId": self.query_id,
            "Query": self.query,
            "Dialect": self.dialect,
            "StatementType": self.statement_type,
            "SubstatementType": self.substatement_type,
            "WorkGroup": self.workgroup,
            "ResultConfiguration": {"OutputLocation": self.output_location},
            "Status": {
                "State": str(self.state),
                "StateChangeReason": self.state_change_reason,
                "SubmissionDateTime": _iso(self.submitted_at),
                "CompletionDateTime": _iso(self.completed_at),
                "AthenaError": error,
            },
            "Statistics": {
                "EngineExecutionTimeInMillis": self.engine_ms,
                "QueryPlanningTimeInMillis": self.planning_ms,
                "QueryQueueTimeInMillis": self.queue_ms,
                "TotalExecutionTimeInMillis": self.total_ms,
                "DataScannedInBytes": self.bytes_scanned,
                "FilesScanned": self.files_scanned,
                "RowsReturned": self.rows_returned,
            },
            "AsOf": self.as_of,
            "Snapshots": dict(self.snapshots),
        }


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


_COLUMNS = [f.name for f in dataclasses.fields(QueryExecution)]


def _values(execution: QueryExecution) -> dict[str, Any]:
    values = {name: getattr(execution, name) for name in _COLUMNS}
    values["state"] = str(execution.state)
    return values


def insert_execution(db: MetadataDB, execution: QueryExecution) -> None:
    """Write a new execution's row: one INSERT, one transaction (a query's first write).

    Example:
        >>> insert_execution(db, QueryExecution.new("SELECT 1", dialect="duckdb",
        ...                                         workgroup="primary"))  # doctest: +SKIP
    """
    with db.begin() as conn:
        conn.execute(query_executions.insert().values(**_values(execution)))


def update_execution(db: MetadataDB, execution: QueryExecution) -> None:
    """Rewrite the row of an execution :func:`insert_execution` wrote (one UPDATE).

    Example:
        >>> execution.state = QueryState.SUCCEEDED  # doctest: +SKIP
        >>> update_execution(db, execution)  # doctest: +SKIP
    """
    values = _values(execution)
    del values["query_id"]
    with db.begin() as conn:
        conn.execute(
            query_executions.update()
            .where(query_executions.c.query_id == execution.query_id)
            .values(**values)
        )


def record(db: MetadataDB, execution: QueryExecution) -> None:
    """Insert or update the row of ``execution`` (one transaction)."""
    values = _values(execution)
    with db.begin() as conn:
        updated = conn.execute(
            query_executions.update()
            .where(query_executions.c.query_id == execution.query_id)
            .values(**values)
        ).rowcount
        if not updated:
            conn.execute(query_executions.insert().values(**values))


def get_execution(db: MetadataDB, query_id: str) -> QueryExecution:
    """The execution ``query_id`` (a unique prefix of at least 8 characters is enough).

    Raises:
        ConfigError: no such execution, or an ambiguous prefix.
    """
    table = query_executions
    with db.read() as conn:
        rows = conn.execute(sa.select(table).where(table.c.query_id == query_id)).mappings().all()
        if not rows and len(query_id) >= 8:
            rows = (
                conn.execute(sa.select(table).where(table.c.query_id.startswith(query_id)).limit(2))
                .mappings()
                .all()
            )
    if len(rows) != 1:
        what = "no query execution" if not rows else "more than one query execution"
        raise ConfigError(f"{what} with id {query_id!r} — see `dataflow query history`")
    return _from_row(rows[0])


def list_executions(
    db: MetadataDB, *, limit: int = 50, workgroup: str | None = None
) -> list[QueryExecution]:
    """The latest executions, newest first."""
    table = query_executions
    query = sa.select(table).order_by(table.c.submitted_at.desc()).limit(limit)
    if workgroup is not None:
        query = query.where(table.c.workgroup == workgroup)
    with db.read() as conn:
        return [_from_row(row) for row in conn.execute(query).mappings().all()]


def _from_row(row: Any) -> QueryExecution:
    values = {name: row[name] for name in _COLUMNS}
    values["state"] = QueryState(values["state"])
    values["snapshots"] = dict(values["snapshots"] or {})
    return QueryExecution(**values)


__all__ = [
    "QueryExecution",
    "QueryState",
    "get_execution",
    "insert_execution",
    "list_executions",
    "record",
    "update_execution",
]
