"""``/api/queries``: run SQL over the catalog as Athena executions; history and results.
``/api/named-queries``: the project's saved queries (``queries/<name>.sql``).

``POST /api/queries`` runs the query to the end before it answers (our queries take
milliseconds, so there is no polling): the answer is the execution, shaped like Athena's
``QueryExecution`` (``QueryExecutionId``, ``Status.State``, ``Statistics``). A query that fails
answers 400 with its Athena error (``{"error": "SYNTAX_ERROR: line 1:8: ..."}``) and stays in
the history as FAILED. A query runs at most its workgroup's ``query_timeout_seconds`` (then
FAILED, ``EXCEEDED_TIME_LIMIT``); a client that sends its own ``query_id`` (a new UUID) can stop
it meanwhile with ``POST /api/queries/{id}/stop`` (Athena's StopQueryExecution: CANCELLED).

Results are stored as Athena stores them — ``<id>.csv`` for DML, ``<id>.txt`` for DDL and
UTILITY statements — and served the same way whatever the file: ``?format=json`` as typed rows,
``?format=csv`` as an Athena CSV download named ``<id>.csv``.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from dataflow.dashboard.deps import DbDep, SettingsDep, require_json
from dataflow.errors import ConfigError

if TYPE_CHECKING:
    from dataflow.metadata.db import MetadataDB
    from dataflow.query.history import QueryExecution

queries_router = APIRouter(prefix="/api/queries", tags=["queries"])
named_router = APIRouter(prefix="/api/named-queries", tags=["named queries"])


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
    query_id: str | None = Field(
        None,
        max_length=36,
        description="The execution's id, chosen by the client (a new UUID), so that it can "
        "stop the query while it runs (POST /api/queries/{id}/stop).",
    )


@queries_router.post(
    "",
    summary="Run a query",
    dependencies=[Depends(require_json)],
    responses={400: {"description": "The query failed: its Athena error"}},
)
async def run_query(
    body: QueryRequest, settings: SettingsDep, db: DbDep, request: Request
) -> dict[str, Any]:
    """Run one statement and return its execution (Athena's ``QueryExecution`` shape).

    A client that goes away before the answer stops its query (CANCELLED).
    """
    import anyio
    import anyio.to_thread

    from dataflow.query import QueryRunner
    from dataflow.query.stop import CLIENT_GONE, check_query_id, stop_running

    query_id = check_query_id(body.query_id) if body.query_id else str(uuid.uuid4())

    def work() -> dict[str, Any] | BaseException:
        try:
            with QueryRunner(settings, db) as runner:
                outcome = runner.run(
                    body.sql,
                    dialect=body.dialect,
                    workgroup=body.workgroup,
                    as_of=body.as_of,
                    params=body.params,
                    query_id=query_id,
                )
            return outcome.execution.to_json()
        except Exception as exc:  # raised below, in the request's task
            return exc

    async def watch_client() -> None:
        while not await request.is_disconnected():
            await anyio.sleep(_CLIENT_POLL_SECONDS)
        await anyio.to_thread.run_sync(lambda: stop_running(query_id, CLIENT_GONE, wait=0))

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(watch_client)
        answer = await anyio.to_thread.run_sync(work)
        tasks.cancel_scope.cancel()
    if isinstance(answer, BaseException):
        raise answer
    return answer


_CLIENT_POLL_SECONDS = 0.25
"""How often a running query's request checks that its client is still there."""


@queries_router.post(
    "/dry-run", summary="Plan a query without running it", dependencies=[Depends(require_json)]
)
def dry_run(body: QueryRequest, settings: SettingsDep, db: DbDep) -> dict[str, Any]:
    """Tables, files, partitions and bytes the query would read, and its Athena cost."""
    from dataflow.query import QueryRunner

    with QueryRunner(settings, db) as runner:
        plan = runner.dry_run(body.sql, dialect=body.dialect, as_of=body.as_of, params=body.params)
    return plan.describe()


@queries_router.get("", summary="Query history")
def history(
    db: DbDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    workgroup: str | None = None,
) -> list[dict[str, Any]]:
    """The latest executions, newest first."""
    from dataflow.query.history import list_executions

    return [e.to_json() for e in list_executions(db, limit=limit, workgroup=workgroup)]


@queries_router.get("/workgroups", summary="Workgroups")
def workgroups(settings: SettingsDep) -> dict[str, Any]:
    """The configured workgroups with their bytes-scanned cutoff, and the default one."""
    from dataflow.query.config import query_config

    config = query_config(settings)
    return {
        "default": config.default_workgroup,
        "workgroups": [
            {
                "name": g.name,
                "bytes_scanned_cutoff_per_query": g.bytes_scanned_cutoff_per_query,
                "query_timeout_seconds": g.query_timeout_seconds,
            }
            for g in sorted(config.workgroups.values(), key=lambda g: g.name)
        ],
    }


@queries_router.get(
    "/{query_id}", summary="One execution", responses={404: {"description": "No such id"}}
)
def get_query(query_id: str, db: DbDep) -> dict[str, Any]:
    """An execution by id (or by a unique prefix of at least 8 characters)."""
    return _execution(db, query_id).to_json()


@queries_router.post(
    "/{query_id}/stop",
    summary="Stop a query (StopQueryExecution)",
    dependencies=[Depends(require_json)],
    responses={404: {"description": "No such id"}},
)
def stop(query_id: str, db: DbDep) -> dict[str, Any]:
    """Stop a running query: it ends CANCELLED. A finished query is left as it is."""
    from dataflow.query.stop import stop_query

    try:
        return stop_query(db, query_id).to_json()
    except ConfigError as exc:  # no such id, or an ambiguous prefix
        raise HTTPException(status_code=404, detail=str(exc)) from None


@queries_router.get(
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
    """The stored result: Athena's CSV (a download), or JSON columns and typed rows."""
    from dataflow.query.config import query_config
    from dataflow.query.output import read_results, result_csv, stored_result_key, typed_rows
    from dataflow.storage import open_store

    execution = _execution(db, query_id)
    if execution.output_location is None:
        raise ConfigError(f"query {execution.query_id} is {execution.state} and has no results")
    store = open_store(settings)
    key = stored_result_key(query_config(settings).results_prefix, execution)
    if output == "csv":
        return Response(
            result_csv(store, key),
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


class NamedQueryRequest(BaseModel):
    """A query to save under a name."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, max_length=128, description="Letters, digits, _ . -")
    sql: str = Field(..., min_length=1, description="The SQL (one statement).")
    overwrite: bool = Field(False, description="Replace a saved query of that name.")


@named_router.get("", summary="Saved queries")
def named_queries(settings: SettingsDep) -> list[dict[str, str]]:
    """Every named query of the project (``queries/*.sql``), by name."""
    from dataflow.query.named import list_named

    return [{"name": q.name, "sql": q.sql} for q in list_named(settings)]


@named_router.get("/{name}", summary="One saved query", responses={404: {"description": "None"}})
def named_query(name: str, settings: SettingsDep) -> dict[str, str]:
    """The named query ``name``."""
    from dataflow.query.named import check_name, list_named

    check_name(name)
    for query in list_named(settings):
        if query.name == name:
            return {"name": query.name, "sql": query.sql}
    raise HTTPException(status_code=404, detail=f"no named query {name!r}")


@named_router.post(
    "",
    summary="Save a query",
    status_code=201,
    dependencies=[Depends(require_json)],
    responses={409: {"description": "A query of that name exists (send overwrite: true)"}},
)
def save_named_query(body: NamedQueryRequest, settings: SettingsDep) -> dict[str, str]:
    """Save SQL as ``queries/<name>.sql`` (Athena's ``CreateNamedQuery``)."""
    from dataflow.query.config import query_config
    from dataflow.query.named import check_name, save_named

    path = query_config(settings).queries_path(settings) / f"{check_name(body.name)}.sql"
    if path.exists() and not body.overwrite:
        raise HTTPException(
            status_code=409,
            detail=f'named query {body.name!r} exists — send "overwrite": true to replace it',
        )
    saved = save_named(settings, body.name, body.sql, overwrite=body.overwrite)
    return {"name": saved.name, "sql": saved.sql}


# The app includes one router per module: both prefixes, queries and named queries, go in it.
router = APIRouter()
router.include_router(queries_router)
router.include_router(named_router)

__all__ = ["NamedQueryRequest", "QueryRequest", "named_router", "queries_router", "router"]
