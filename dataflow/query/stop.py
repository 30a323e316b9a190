"""Stopping queries: the workgroup's time limit, StopQueryExecution, and a server shutting down.

Every execution of :class:`~dataflow.query.execution.QueryRunner` runs under a :class:`Watch`:
a thread that waits for the workgroup's ``query_timeout_seconds`` or for a stop, then interrupts
the session's DuckDB connections (``connection.interrupt()``) until the query has ended. The
execution ends with Athena's states and reasons:

* over the time limit: ``FAILED``, error ``EXCEEDED_TIME_LIMIT`` ("Query exceeded the maximum
  execution time limit of 30.00m"; Athena's DML limit is 30 minutes);
* :func:`stop_query` (``StopQueryExecution``; ``POST /api/queries/{id}/stop``, Ctrl-C in
  ``dataflow query``): ``CANCELLED``, "Query was cancelled by the user";
* an HTTP client that disconnects before its answer: ``CANCELLED``, "Query was cancelled: its
  client went away";
* :func:`stop_all` (``dataflow serve`` on SIGTERM/SIGINT): ``CANCELLED``, "Query was cancelled:
  the server is shutting down".

Example:
    >>> timeout_reason(1800)
    'Query exceeded the maximum execution time limit of 30.00m'
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from dataflow.errors import DataflowError, QueryCancelledError, QueryError
from dataflow.query.history import QueryState

if TYPE_CHECKING:
    from dataflow.metadata.db import MetadataDB
    from dataflow.query.history import QueryExecution
    from dataflow.query.session import QuerySession

USER_CANCELLED = "Query was cancelled by the user"
"""The ``StateChangeReason`` of a query stopped by StopQueryExecution or Ctrl-C."""
SHUTDOWN_CANCELLED = "Query was cancelled: the server is shutting down"
"""The ``StateChangeReason`` of a query stopped because ``dataflow serve`` is stopping."""
CLIENT_GONE = "Query was cancelled: its client went away"
"""The ``StateChangeReason`` of a query whose HTTP client disconnected before the answer."""
TIME_LIMIT_ERROR = "EXCEEDED_TIME_LIMIT"
"""The error type of a query over its workgroup's time limit (Trino's, which Athena shows)."""

_INTERRUPT_EVERY = 0.05  # seconds: an interrupt that lands between two statements is repeated


def timeout_reason(seconds: float) -> str:
    """Athena's message for a query over a time limit of ``seconds``."""
    return f"Query exceeded the maximum execution time limit of {seconds / 60:.2f}m"


class Watch:
    """Watches one running execution: its time limit, and a stop asked from elsewhere.

    Args:
        query_id: the execution's id (how :func:`stop_query` finds it).
        session: the session running it (its connections are interrupted).
        timeout: seconds the query may run (the workgroup's ``query_timeout_seconds``).

    Example:
        >>> with Watch(execution.query_id, session, 1800) as watch:  # doctest: +SKIP
        ...     result = session.run(plan)
    """

    def __init__(self, query_id: str, session: QuerySession, timeout: float) -> None:
        self.query_id = query_id
        self.session = session
        self.timeout = timeout
        self.state: QueryState | None = None
        self.reason: str | None = None
        self._asked = threading.Event()
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._watch, name=f"query-watch-{query_id[:8]}", daemon=True
        )

    def __enter__(self) -> Watch:
        with _LOCK:
            _RUNNING[self.query_id] = self
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        with _LOCK:
            _RUNNING.pop(self.query_id, None)

    @property
    def stopped(self) -> bool:
        """Whether a stop (time limit, user, shutdown) was decided."""
        return self.reason is not None

    def stop(self, reason: str, *, state: QueryState = QueryState.CANCELLED) -> None:
        """Stop the query with ``reason`` (the first stop wins)."""
        with self._lock:
            if self.reason is None:
                self.state, self.reason = state, reason
        self._asked.set()

    def wait(self, timeout: float) -> bool:
        """Wait until the query has ended; False if it still runs after ``timeout`` seconds."""
        return self._done.wait(timeout)

    def check(self) -> None:
        """Raise the stop's error if one was decided (between planning and running)."""
        if self.stopped:
            raise self.error()

    def error(self) -> DataflowError:
        """The error a stopped query raises: QueryCancelledError, or QueryError for a timeout."""
        reason = self.reason or USER_CANCELLED
        if self.state is QueryState.FAILED:
            return QueryError(TIME_LIMIT_ERROR, reason)
        return QueryCancelledError(self.query_id, reason)

    def _watch(self) -> None:
        if not self._asked.wait(self.timeout):
            self.stop(timeout_reason(self.timeout), state=QueryState.FAILED)
        while not self._done.is_set():
            self.session.interrupt()
            self._done.wait(_INTERRUPT_EVERY)


_LOCK = threading.Lock()
_RUNNING: dict[str, Watch] = {}


def check_query_id(query_id: str) -> str:
    """``query_id`` as a canonical UUID (a caller-chosen execution id).

    Raises:
        ConfigError: it is not a UUID.

    Example:
        >>> check_query_id("3F1C9A52-0D4B-4E8A-9C61-2B7E5D0A1F34")
        '3f1c9a52-0d4b-4e8a-9c61-2b7e5d0a1f34'
    """
    import uuid

    from dataflow.errors import ConfigError

    try:
        return str(uuid.UUID(query_id))
    except ValueError:
        raise ConfigError(
            f"query id {query_id[:60]!r} is not a UUID — give a new UUID, or none"
        ) from None


def running() -> list[str]:
    """The ids of the executions running in this process."""
    with _LOCK:
        return sorted(_RUNNING)


def stop_query(db: MetadataDB, query_id: str, *, wait: float = 5.0) -> QueryExecution:
    """Athena's ``StopQueryExecution``: stop a running query; returns its execution.

    A query running in this process is interrupted and recorded ``CANCELLED``; a ``QUEUED`` or
    ``RUNNING`` record that no live process runs (it died) is marked ``CANCELLED`` too; a
    finished query is left as it is (as Athena does).

    Raises:
        ConfigError: no execution has that id (or a unique prefix of it).

    Example:
        >>> stop_query(db, "3f1c9a52-...").state  # doctest: +SKIP
        <QueryState.CANCELLED: 'CANCELLED'>
    """
    from dataflow.query.history import get_execution, update_execution

    if stop_running(query_id, wait=wait):
        return get_execution(db, query_id)
    execution = get_execution(db, query_id)  # also by a unique prefix of the id
    if stop_running(execution.query_id, wait=wait):
        return get_execution(db, execution.query_id)
    if execution.state in (QueryState.QUEUED, QueryState.RUNNING):
        from dataflow.metadata.schema import utcnow

        execution.state = QueryState.CANCELLED
        execution.state_change_reason = USER_CANCELLED
        execution.completed_at = utcnow()
        update_execution(db, execution)
    return execution


def stop_running(query_id: str, reason: str = USER_CANCELLED, *, wait: float = 5.0) -> bool:
    """Stop the execution ``query_id`` if this process runs it; False if it does not.

    Waits up to ``wait`` seconds for the query to end (it has then been recorded).
    """
    with _LOCK:
        watch = _RUNNING.get(query_id)
    if watch is None:
        return False
    watch.stop(reason)
    watch.wait(wait)
    return True


def stop_all(reason: str = SHUTDOWN_CANCELLED) -> int:
    """Stop every query of this process and interrupt every open session (a server stopping).

    Returns:
        How many executions were stopped.
    """
    from dataflow.query.session import interrupt_all

    with _LOCK:
        watches = list(_RUNNING.values())
    for watch in watches:
        watch.stop(reason)
    interrupt_all()
    return len(watches)


__all__ = [
    "CLIENT_GONE",
    "SHUTDOWN_CANCELLED",
    "TIME_LIMIT_ERROR",
    "USER_CANCELLED",
    "Watch",
    "check_query_id",
    "running",
    "stop_all",
    "stop_query",
    "stop_running",
    "timeout_reason",
]
