"""``/api/dashboards`` and the dashboard pages: dashboards as code (``dashboards/*.yaml``).

* ``GET /api/dashboards`` — every dashboard (built-in and the project's), with its title, or the
  error that keeps its file from loading.
* ``GET /api/dashboards/{name}`` — its spec, each control's options and default value.
* ``POST /api/dashboards/{name}/data`` — ``{"params": {...}}`` in, every visual's rows out, with
  the tables it read, their freshness and DQ status, the time taken and whether the cache
  answered; a failing visual carries its error and does not break the others.
* ``GET /dashboards`` and ``GET /dashboards/{name}`` — the pages (drawn by ``dashboard.js``).

The API routes need the token (when the server has one); the pages send a signed-out browser
to ``/login``. One :class:`~dataflow.dashboard.visuals.DashboardRunner` per project is kept on
the app, so its session pool and result cache serve every request.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Request
from fastapi.responses import Response

from dataflow.config import Settings
from dataflow.dashboard.deps import DbDep, SettingsDep, require_json, require_token
from dataflow.dashboard.spec import dashboard_listing
from dataflow.dashboard.visuals import DashboardRunner
from dataflow.errors import ConfigError, DataflowError

if TYPE_CHECKING:
    from dataflow.metadata.db import MetadataDB

log = logging.getLogger("dataflow.dashboard")
router = APIRouter(tags=["dashboards"])
_guarded = [Depends(require_token)]
_lock = threading.Lock()


def get_runner(request: Request, settings: SettingsDep, db: DbDep) -> DashboardRunner:
    """The app's dashboard runner for the project the settings name (made on first use)."""
    return runner_for(request.app, settings, db)


def runner_for(app: Any, settings: Settings, db: MetadataDB) -> DashboardRunner:
    """The runner of ``app`` for one project and metadata database (made on first use)."""
    key = f"{settings.project_dir.resolve()}|{settings.metadata_url}"
    with _lock:
        runners: dict[str, DashboardRunner] | None = getattr(app.state, "dashboard_runners", None)
        if runners is None:
            runners = app.state.dashboard_runners = {}
        runner = runners.get(key)
        if runner is None:
            runner = runners[key] = DashboardRunner(settings, db)
        return runner


def warm_up(app: Any, names: tuple[str, ...] = ("market",)) -> None:
    """Run dashboards once with their defaults, so the first visitor is served from the cache.

    ``dataflow serve`` calls this in a background thread at start-up. A dashboard that cannot
    run (no data yet, a broken file) is skipped: its page will show why.
    """
    from dataflow.dashboard.spec import dashboard_files, load_dashboard

    settings: Settings = app.state.settings
    runner = runner_for(app, settings, app.state.databases.get(settings.metadata_url))
    known = dashboard_files(settings)
    for name in names:
        if name not in known:
            continue
        try:
            runner.run(load_dashboard(settings, name))
        except DataflowError as exc:
            log.info("dashboard %s not warmed up: %s", name, exc)
        except Exception:  # the server may be stopping under us: warming up is optional
            log.debug("dashboard %s not warmed up", name, exc_info=True)
            return


RunnerDep = Annotated[DashboardRunner, Depends(get_runner)]


@router.get("/api/dashboards", summary="Dashboards", dependencies=_guarded)
def list_dashboards(settings: SettingsDep) -> list[dict[str, Any]]:
    """Every dashboard by name: title, description, where it comes from, sheets and visuals."""
    return dashboard_listing(settings)


@router.get("/api/dashboards/{name}", summary="One dashboard", dependencies=_guarded)
def show_dashboard(name: str, settings: SettingsDep, runner: RunnerDep) -> dict[str, Any]:
    """The dashboard's spec with each control's options and default value."""
    from dataflow.dashboard.spec import load_dashboard

    return runner.describe(load_dashboard(settings, _known(settings, name)))


@router.post(
    "/api/dashboards/{name}/data",
    summary="Run a dashboard",
    dependencies=[*_guarded, Depends(require_json)],
)
def dashboard_data(
    name: str,
    settings: SettingsDep,
    runner: RunnerDep,
    params: Annotated[dict[str, Any] | None, Body(embed=True)] = None,
) -> dict[str, Any]:
    """Every visual's columns and rows for the given control values (defaults for the rest)."""
    from dataflow.dashboard.spec import load_dashboard

    board = load_dashboard(settings, _known(settings, name))
    return runner.run(board, params).to_json()


@router.get("/dashboards", include_in_schema=False)
def dashboards_page(request: Request, settings: SettingsDep) -> Response:
    """The list of dashboards."""
    from dataflow.dashboard.pages import render_page

    return render_page(
        request,
        "dashboards.html",
        "dashboards",
        "Dashboards",
        dashboards=dashboard_listing(settings),
    )


@router.get("/dashboards/{name}", include_in_schema=False)
def dashboard_page(request: Request, name: str, settings: SettingsDep) -> Response:
    """One dashboard (its script fetches the spec and the data)."""
    from dataflow.dashboard.pages import render_page
    from dataflow.dashboard.spec import load_dashboard

    _known(settings, name)
    try:
        title = load_dashboard(settings, name).title
    except ConfigError:
        title = name  # the page shows the file's problem as a message
    page = "market" if name == "market" else "dashboards"
    return render_page(request, "dashboard.html", page, title, name=name)


def _known(settings: Settings, name: str) -> str:
    from dataflow.dashboard.spec import dashboard_files

    files = dashboard_files(settings)
    if name not in files:
        known = ", ".join(files) or "none"
        raise HTTPException(404, f"no dashboard {name!r} (known: {known})")
    return name


__all__ = ["get_runner", "router", "runner_for", "warm_up"]
