"""``/api/queries``: run SQL over the catalog as Athena executions; history and results.

``POST /api/queries`` runs the query to the end before it answers (our queries take
milliseconds, so there is no polling): the answer is the execution, shaped like Athena's
``QueryExecution`` (``QueryExecutionId``, ``Status.State``, ``Statistics``). A query that fails
answers 400 with its Athena error (``{"error": "SYNTAX_ERROR: line 1:8: ..."}``) and stays in
the history as FAILED.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from dataflow.dashboard.deps import DbDep, SettingsDep, require_json
from dataflow.errors import ConfigError

if TYPE_CHECKING:
    from dataflow.metadata.db import MetadataDB
    from dataflow.query.history import QueryExecution

router = APIRouter(prefix="/api/queries", tags=["queries"])


class QueryRequest(BaseModel):
    """A query to run (or to plan, for a dry run)."""

    model_config = ConfigDict(extra="forbid")

    sql: str = Field(..., min_length=1, description="One statement.")
    dialect: str = Field("duckdb", description="duckdb, athena, trino or spark.")
    params: list[Any] | dict[str, Any] | None = Field(
        None, description="Values bound to `?` (a list) or `$name` (an object) parameters."
    )
    workgroup: str | None = Field(None, description="Workgroup (its bytes-scanned cutoff).")
    as_of: str | None = Field(None, description="Time travel: a timestamp or a snapshot id.")


@router.post(
    "",
    summary="Run a query",
    dependencies=[Depends(require_json)],
    responses={400: {"description": "The query failed: its Athena error"}},
)
def run_query(body: QueryRequest, settings: SettingsDep, db: DbDep) -> dict[str, Any]:
    """Run one statement and return its execution (Athena's ``QueryExecution`` shape)."""
    from dataflow.query import QueryRunner

    with QueryRunner(settings, db) as runner:
        outcome = runner.run(
            body.sql,
            dialect=body.dialect,
            workgroup=body.workgroup,
            as_of=body.as_of,
            params=body.params,
        )
    return outcome.execution.to_json()


@router.post(
    "/dry-run", summary="Plan a query without running it", dependencies=[Depends(require_json)]
)
def dry_run(body: QueryRequest, settings: SettingsDep, db: DbDep) -> dict[str, Any]:
    """Tables, files, partitions and bytes the query would read, and its Athena cost."""
    from dataflow.query import QueryRunner

    with QueryRunner(settings, db) as runner:
        plan = runner.dry_run(body.sql, dialect=body.dialect, as_of=body.as_of, params=body.params)
    return plan.describe()


@router.get("", summary="Query history")
def history(
    db: DbDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    workgroup: str | None = None,
) -> list[dict[str, Any]]:
    """The latest executions, newest first."""
    from dataflow.query.history import list_executions

    return [e.to_json() for e in list_executions(db, limit=limit, workgroup=workgroup)]


@router.get("/{query_id}", summary="One execution", responses={404: {"description": "No such id"}})
def get_query(query_id: str, db: DbDep) -> dict[str, Any]:
    """An execution by id (or by a unique prefix of at least 8 characters)."""
    return _execution(db, query_id).to_json()


@router.get(
    "/{query_id}/results",
    summary="The results of an execution",
    responses={
        200: {"content": {"text/csv": {}, "application/json": {}}},
        400: {"description": "The execution has no results"},
        404: {"description": "No such id"},
    },
)
def results(
    query_id: str,
    settings: SettingsDep,
    db: DbDep,
    output: Annotated[Literal["csv", "json"], Query(alias="format")] = "json",
) -> Any:
    """The stored result file: Athena's CSV as written, or JSON columns and typed rows."""
    from dataflow.query.config import query_config
    from dataflow.query.output import read_results, result_key, typed_rows
    from dataflow.storage import open_store

    execution = _execution(db, query_id)
    if execution.output_location is None:
        raise ConfigError(f"query {execution.query_id} is {execution.state} and has no results")
    store = open_store(settings)
    key = result_key(query_config(settings).results_prefix, execution.query_id)
    if output == "csv":
        return Response(
            store.get_bytes(key),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{execution.query_id}.csv"'},
        )
    infos, rows = read_results(store, key)
    return {
        "QueryExecutionId": execution.query_id,
        "ColumnInfo": infos,
        "Rows": typed_rows(infos, rows),
    }


def _execution(db: MetadataDB, query_id: str) -> QueryExecution:
    from dataflow.query.history import get_execution

    try:
        return get_execution(db, query_id)
    except ConfigError as exc:  # no such id, or an ambiguous prefix
        raise HTTPException(status_code=404, detail=str(exc)) from None


__all__ = ["QueryRequest", "router"]
