"""SQL over the catalog (the Athena stage): sessions, executions, results, history.

* :class:`QuerySession` — a read-only DuckDB session that sees every cataloged table as
  ``database.table``; plans each statement (dialect translation, one snapshot per table,
  pruned data files) and runs it.
* :class:`QueryRunner` — Athena's lifecycle around a session: ids, states, statistics, the
  workgroup's bytes-scanned cutoff, history rows and ``results/<query_id>.csv`` files, CTAS and
  UNLOAD.
* :class:`QueryError` — failures named as Athena names them (``SYNTAX_ERROR: line 1:8: ...``).

Example:
    >>> from dataflow.query import QueryResult
    >>> QueryResult(columns=["n"], types=["INTEGER"], rows=[(1,)]).to_json_rows()
    [{'n': 1}]
"""

from dataflow.query.errors import QueryCancelledError, QueryError, TableNotFoundError
from dataflow.query.execution import QueryOutcome, QueryRunner
from dataflow.query.history import QueryExecution, QueryState
from dataflow.query.planning import QueryPlan
from dataflow.query.result import QueryResult
from dataflow.query.session import ALLOWED_STATEMENTS, QuerySession, check_statement

__all__ = [
    "ALLOWED_STATEMENTS",
    "QueryCancelledError",
    "QueryError",
    "QueryExecution",
    "QueryOutcome",
    "QueryPlan",
    "QueryResult",
    "QueryRunner",
    "QuerySession",
    "QueryState",
    "TableNotFoundError",
    "check_statement",
]
