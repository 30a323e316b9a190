"""The app factory: ``create_app(settings, token=...)`` wires the routers, errors and docs.

Every answer is JSON, errors too: ``{"error": "what went wrong and what to do"}``, never a
stack trace. Dataflow's own errors carry messages meant for users, so they are shown as they
are: a missing table is 404, bad input (SQL, parameters, names, ...) is 400, anything else 500;
an unexpected exception is logged on the server and answered with its type only.

With a token, every ``/api`` route and ``/metrics`` needs ``Authorization: Bearer <token>``
(or the session cookie of a browser signed in on ``/login``: see :mod:`.auth`); ``/healthz``,
``/docs``, ``/openapi.json`` and ``/static`` stay open (they tell nothing about the data).
The web pages (:mod:`.pages`) send a signed-out browser to ``/login``.
POST bodies must be JSON (415 otherwise), which keeps cross-site form posts out.

Example:
    >>> from dataflow.config import load_settings
    >>> app = create_app(load_settings("/nonexistent-project", env={}), token="s3cret")
    >>> sorted(path for path in app.openapi()["paths"] if not path.startswith("/api"))
    ['/healthz', '/metrics']
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from dataflow.dashboard.auth import SignInLimiter
from dataflow.dashboard.deps import DatabasePool, require_token
from dataflow.dashboard.docs import CONTENT_SECURITY_POLICY, docs_html
from dataflow.dashboard.hosts import HostCheck
from dataflow.errors import (
    CatalogError,
    ConfigError,
    DataflowError,
    NoSuchTableError,
    QualityError,
    QueryCancelledError,
    QueryError,
)

if TYPE_CHECKING:
    from dataflow.config import Settings

log = logging.getLogger("dataflow.dashboard")


def create_app(
    settings: Settings,
    *,
    token: str | None = None,
    warm_up: bool = False,
    allowed_hosts: Collection[str] | None = None,
) -> FastAPI:
    """The Dataflow HTTP app for one project.

    Args:
        settings: the project's settings (tests may swap them through the
            :func:`~dataflow.dashboard.deps.get_settings` dependency).
        token: when given, ``/api/*`` and ``/metrics`` need ``Authorization: Bearer <token>``.
        warm_up: at start-up, run the Market dashboard once in a background thread, so the
            first visitor is served from the cache (``dataflow serve`` sets it).
        allowed_hosts: answer only requests whose ``Host`` is one of these names, 400 to the
            others (DNS rebinding; see :mod:`.hosts`); None: any host.

    Example:
        >>> app = create_app(settings, token=None)  # doctest: +SKIP
        >>> uvicorn.run(app, host="127.0.0.1", port=8080)  # doctest: +SKIP
    """
    from fastapi.staticfiles import StaticFiles

    from dataflow import __version__
    from dataflow.dashboard import pages
    from dataflow.dashboard.routers import (
        catalog,
        dashboards,
        health,
        monitoring,
        pipeline,
        quality,
        queries,
    )

    databases = DatabasePool()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if warm_up:
            threading.Thread(
                target=dashboards.warm_up, args=(app,), name="dashboard-warm-up", daemon=True
            ).start()
        try:
            yield
        finally:
            # The dashboards' query sessions and threads must not outlive the app.
            for runner in getattr(app.state, "dashboard_runners", {}).values():
                runner.close()
            databases.close()

    app = FastAPI(
        title="Dataflow",
        version=__version__,
        description="SQL over the catalog (Athena-style), the Data Catalog, runs, metrics "
        "and alarms of a Dataflow project.",
        docs_url=None,  # Swagger UI comes from a CDN: /docs below is self-contained
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.token = token
    app.state.databases = databases
    app.state.sign_ins = SignInLimiter()
    if allowed_hosts is not None:
        app.add_middleware(HostCheck, allowed=allowed_hosts)

    guarded = [Depends(require_token)]
    app.include_router(health.router)
    app.include_router(queries.router, dependencies=guarded)
    app.include_router(catalog.router, dependencies=guarded)
    app.include_router(monitoring.router, dependencies=guarded)
    app.include_router(monitoring.prometheus_router, dependencies=guarded)
    app.include_router(pipeline.router, dependencies=guarded)
    app.include_router(quality.router, dependencies=guarded)
    # Its page routes check the session themselves (a signed-out browser goes to /login).
    app.include_router(dashboards.router)

    app.include_router(pages.router)
    # The pages' scripts, styles and the vendored chart library: package code, no data.
    app.mount("/static", StaticFiles(directory=pages.STATIC_DIR), name="static")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(
            docs_html(app.openapi()),
            headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY},
        )

    _add_error_handlers(app)
    _document_errors(app)
    return app


ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "properties": {"error": {"type": "string", "description": "What went wrong, what to do."}},
    "required": ["error"],
}
"""The body of every error answer (``{"error": "..."}``), validation errors (422) included."""

_ERRORS = {
    "400": "Bad input: the message names the problem and the fix",
    "401": "Missing or wrong token (when the server has one)",
    "404": "Not found",
    "429": "Too many failed sign-ins from this address (see Retry-After)",
}


def _document_errors(app: FastAPI) -> None:
    """Add the error answers every route may give to the OpenAPI schema, as they are sent.

    FastAPI documents only 200 and 422 (with its own 422 body); clients and schemathesis check
    answers against the schema, so it lists 400/401/404/429 (415 for POST) with our body.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
        body = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        for path, operations in schema.get("paths", {}).items():
            if not (path.startswith("/api/") or path == "/metrics"):
                continue
            for method, operation in operations.items():
                answers = operation.setdefault("responses", {})
                errors = dict(_ERRORS)
                if method == "post":
                    errors["415"] = "The body is not JSON (Content-Type: application/json)"
                if "422" in answers or operation.get("parameters") or method == "post":
                    errors["422"] = "Invalid request: parameters or body of the wrong shape"
                for status, description in errors.items():
                    answer = answers.setdefault(status, {"description": description})
                    answer["content"] = body
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def error_status(exc: DataflowError) -> int:
    """The HTTP status of a Dataflow error.

    Example:
        >>> error_status(NoSuchTableError("no table x.y")), error_status(ConfigError("bad"))
        (404, 400)
    """
    if isinstance(exc, NoSuchTableError) and not isinstance(exc, QueryError):
        return 404
    if isinstance(exc, ConfigError | CatalogError | QueryCancelledError | QualityError):
        return 400
    return 500


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DataflowError)
    async def dataflow_error(_request: Request, exc: DataflowError) -> JSONResponse:
        return _error(error_status(exc), str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [_problem(error) for error in exc.errors()]
        return _error(422, "invalid request: " + "; ".join(problems))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The traceback goes to the server's log; the client learns only that it happened.
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return _error(500, f"internal error ({type(exc).__name__}) — see the server log")


def _problem(error: Any) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()))
    return f"{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg"))


__all__ = ["create_app", "error_status"]
