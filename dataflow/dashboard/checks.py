"""``dataflow dashboard validate``: a dashboard's YAML, parameters, SQL and field mappings.

A dashboard is valid when its file matches the schema (:mod:`.spec`), every control's
options and default resolve, and every visual's SQL — bound to the default values — plans and
runs against the catalog and returns the columns its field mappings name. Each problem is one
line that names the file, the visual and what to do.

Example:
    >>> with DashboardRunner(settings) as runner:  # doctest: +SKIP
    ...     validate_file(runner, Path("dashboards/prices.yaml"))
    ['dashboards/prices.yaml: visual close: field y: the query returns no column ...']
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from dataflow.errors import ConfigError, DataflowError

if TYPE_CHECKING:
    from dataflow.config import Settings
    from dataflow.dashboard.spec import Dashboard
    from dataflow.dashboard.visuals import DashboardRunner

FIX = {
    "field": "fix the field mapping or the query's column names",
    "param": "declare it under parameters, or fix the name",
    "sql": "fix the SQL (try it with `dataflow query`)",
}


def targets(settings: Settings, names: list[str]) -> list[Path]:
    """The files to check: each name of a dashboard or path of a file; all when none given.

    Raises:
        ConfigError: a name that is neither a dashboard nor a file.
    """
    from dataflow.dashboard.spec import dashboard_files

    files = dashboard_files(settings)
    if not names:
        return list(files.values())
    found: list[Path] = []
    for name in names:
        path = Path(name)
        if name in files:
            found.append(files[name])
        elif path.is_file():
            found.append(path)
        else:
            known = ", ".join(files) or "none"
            raise ConfigError(f"no dashboard or file {name!r} (dashboards: {known})")
    return found


def validate_file(runner: DashboardRunner, path: Path) -> list[str]:
    """Every problem of the dashboard in ``path``, one line each (empty when valid)."""
    from dataflow.dashboard.spec import load_file

    try:
        board = load_file(path)
    except ConfigError as exc:
        return [f"{exc} — fix the YAML (see docs/dashboards.md)"]
    return validate_dashboard(runner, board)


def validate_dashboard(runner: DashboardRunner, board: Dashboard) -> list[str]:
    """Every problem of a loaded dashboard: options, defaults, each visual's SQL and fields."""
    from dataflow.dashboard import params as P
    from dataflow.dashboard.visuals import check_fields

    where = board.source or board.name
    try:
        options = runner.options(board)
        bound = P.bindings(board, P.resolve(board, None, options=options))
    except DataflowError as exc:
        return [f"{where}: parameters: {exc} — {FIX['sql']}"]
    problems: list[str] = []
    for visual in board.visuals():
        prefix = f"{where}: visual {visual.name}"
        try:
            used = P.used_bindings(visual.sql, visual.dialect, bound)
        except ConfigError as exc:
            fix = FIX["param"] if str(exc).startswith("$") else FIX["sql"]
            problems.append(f"{prefix}: {exc} — {fix}")
            continue
        try:
            fetched = runner.fetch(visual.sql, visual.dialect, used, max_rows=1)
        except DataflowError as exc:
            problems.append(f"{prefix}: {_one_line(exc)} — {FIX['sql']}")
            continue
        try:
            check_fields(visual, fetched.rows.columns)
        except ConfigError as exc:
            problems.append(f"{prefix}: {exc} — {FIX['field']}")
    return problems


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


__all__ = ["targets", "validate_dashboard", "validate_file"]
