"""SQL over the catalog (the Athena stage): a read-only DuckDB session and its results.

This is the foundation the Athena-style query stage grows from (executions, history, result
files, dialect translation, cost guard): today, one session that sees every cataloged table as
``database.table`` and runs one read-only statement at a time.

Example:
    >>> from dataflow.query import QueryResult
    >>> QueryResult(columns=["n"], types=["INTEGER"], rows=[(1,)]).to_json_rows()
    [{'n': 1}]
"""

from dataflow.query.result import QueryResult
from dataflow.query.session import ALLOWED_STATEMENTS, QuerySession, check_statement

__all__ = ["ALLOWED_STATEMENTS", "QueryResult", "QuerySession", "check_statement"]
