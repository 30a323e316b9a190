"""Running a dashboard: every visual's query in parallel, cached per table snapshot.

:class:`DashboardRunner` plans and runs visual queries on :class:`~dataflow.query.QuerySession`
s directly — the same read-only, locked-down sessions as ``dataflow query`` — but without the
Athena lifecycle of :class:`~dataflow.query.QueryRunner`: a dashboard redraw would otherwise add a
history row and a result file per visual. A session runs one query at a time, so the runner
keeps a small pool of them and a thread takes one per query.

Results are cached by (DuckDB SQL, dialect, bound values, the snapshot of every table read —
the data files for an external table). Planning resolves each table to its current snapshot, so
a new Iceberg commit changes the key and the visual runs again; the same data never does.

A visual that fails (bad SQL, a missing table, a field mapping naming a column the query does
not return) carries its error; the other visuals are not affected.

Example:
    >>> with DashboardRunner(settings) as runner:  # doctest: +SKIP
    ...     result = runner.run(load_dashboard(settings, "market"), {"symbol": "MSFT"})
    ...     [(v.name, len(v.rows), v.cached) for v in result.visuals][:1]
    [('last_price', 1, False)]
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dataflow.dashboard import params as P
from dataflow.errors import DataflowError

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Mapping

    from dataflow.config import Settings
    from dataflow.dashboard.spec import Dashboard, Option, VisualBase
    from dataflow.dashboard.status import TableStatus
    from dataflow.metadata.db import MetadataDB
    from dataflow.query.planning import QueryPlan
    from dataflow.query.session import QuerySession

DEFAULT_WORKERS = 6
"""Queries of one dashboard run at once (and sessions kept open)."""
CACHE_SIZE = 256
"""Results kept in the cache (least recently used go first)."""
OPTIONS_ROWS = 1000
"""The most choices an ``options_sql`` gives a control."""


@dataclass(frozen=True)
class Rows:
    """A query's output, JSON-ready: column names, DuckDB types, rows as lists."""

    columns: list[str]
    types: list[str]
    rows: list[list[Any]]
    truncated: bool = False


@dataclass(frozen=True)
class Fetched:
    """One query's rows with what they were read from and whether the cache answered."""

    rows: Rows
    tables: list[str]
    snapshots: dict[str, str]
    cached: bool
    elapsed_ms: float


@dataclass
class VisualResult:
    """What one visual shows: its rows (or its error), tables read, and their status."""

    name: str
    type: str
    columns: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    truncated: bool = False
    tables: list[str] = field(default_factory=list)
    snapshots: dict[str, str] = field(default_factory=dict)
    status: list[TableStatus] = field(default_factory=list)
    elapsed_ms: float = 0.0
    started_ms: float = 0.0
    cached: bool = False
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The result as JSON-ready data."""
        return {
            "name": self.name,
            "type": self.type,
            "columns": self.columns,
            "types": self.types,
            "rows": self.rows,
            "row_count": len(self.rows),
            "truncated": self.truncated,
            "tables": self.tables,
            "snapshots": self.snapshots,
            "status": [s.to_json() for s in self.status],
            "elapsed_ms": round(self.elapsed_ms, 2),
            "started_ms": round(self.started_ms, 2),
            "cached": self.cached,
            "error": self.error,
        }


@dataclass
class DashboardResult:
    """A dashboard's data: the parameter values used and every visual's result, in order."""

    name: str
    params: dict[str, Any]
    visuals: list[VisualResult]
    elapsed_ms: float

    def visual(self, name: str) -> VisualResult:
        """The result of the visual called ``name`` (KeyError when there is none)."""
        for visual in self.visuals:
            if visual.name == name:
                return visual
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        """The result as JSON-ready data (what ``POST /api/dashboards/{name}/data`` answers)."""
        return {
            "name": self.name,
            "params": self.params,
            "visuals": [v.to_json() for v in self.visuals],
            "elapsed_ms": round(self.elapsed_ms, 2),
        }


class DashboardRunner:
    """Runs dashboards' queries in parallel on a pool of sessions, with a snapshot cache.

    Args:
        settings: the project.
        db: its metadata database (opened from the settings, and closed with the runner,
            when omitted).
        workers: queries run at once.
        cache_size: results kept.

    The runner is thread-safe: the app shares one between requests.
    """

    def __init__(
        self,
        settings: Settings,
        db: MetadataDB | None = None,
        *,
        workers: int = DEFAULT_WORKERS,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        from dataflow.metadata import open_metadata

        self.settings = settings
        self._owns_db = db is None
        self.db = db if db is not None else open_metadata(settings.metadata_url)
        self.workers = workers
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="dashboard")
        self._sessions: queue.LifoQueue[QuerySession] = queue.LifoQueue()
        self._all_sessions: list[QuerySession] = []
        self._cache: OrderedDict[tuple[Any, ...], Rows] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __enter__(self) -> DashboardRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the threads and close every session (and the database the runner opened)."""
        self._pool.shutdown(wait=True)
        with self._lock:
            sessions, self._all_sessions = self._all_sessions, []
        for session in sessions:
            session.close()
        if self._owns_db:
            self.db.dispose()

    # --- running ---------------------------------------------------------------------------------

    def run(
        self,
        dashboard: Dashboard,
        given: Mapping[str, Any] | None = None,
        *,
        today: dt.date | None = None,
    ) -> DashboardResult:
        """Run every visual of ``dashboard`` with the given control values (defaults for the
        rest) and attach the status of the tables each reads.

        Raises:
            ConfigError: an unknown parameter or a bad value (visual errors do not raise).
        """
        from dataflow.dashboard.status import table_statuses

        started = time.perf_counter()
        values = P.resolve(dashboard, given, options=self.options(dashboard), today=today)
        bound = P.bindings(dashboard, values)

        def timed(visual: VisualBase) -> VisualResult:
            begun = time.perf_counter()
            result = self.run_visual(visual, bound)
            result.started_ms = (begun - started) * 1000
            result.elapsed_ms = (time.perf_counter() - begun) * 1000
            return result

        futures = [self._pool.submit(timed, visual) for visual in dashboard.visuals()]
        results = [future.result() for future in futures]
        tables = {table for result in results for table in result.tables}
        statuses = table_statuses(self.settings, self.db, tables)
        for result in results:
            result.status = [statuses[table] for table in result.tables]
        return DashboardResult(
            name=dashboard.name,
            params=P.json_values(values),
            visuals=results,
            elapsed_ms=(time.perf_counter() - started) * 1000,
        )

    def run_visual(self, visual: VisualBase, bound: Mapping[str, Any]) -> VisualResult:
        """One visual's rows, or its error as a message (never raises a DataflowError)."""
        kind = str(getattr(visual, "type", ""))
        try:
            used = P.used_bindings(visual.sql, visual.dialect, bound)
            fetched = self.fetch(visual.sql, visual.dialect, used, max_rows=visual.max_rows)
            check_fields(visual, fetched.rows.columns)
        except DataflowError as exc:
            return VisualResult(visual.name, kind, error=str(exc))
        rows = fetched.rows
        return VisualResult(
            visual.name,
            kind,
            columns=rows.columns,
            types=rows.types,
            rows=rows.rows,
            truncated=rows.truncated,
            tables=fetched.tables,
            snapshots=fetched.snapshots,
            elapsed_ms=fetched.elapsed_ms,
            cached=fetched.cached,
        )

    def fetch(
        self,
        sql: str,
        dialect: str = "duckdb",
        bound: Mapping[str, Any] | None = None,
        *,
        max_rows: int = 10_000,
    ) -> Fetched:
        """Plan ``sql`` (which resolves the tables' snapshots) and answer from the cache when
        the same statement, values and snapshots were run before; run it otherwise.

        Raises:
            QueryError: bad SQL (as ``dataflow query`` reports it).
            StorageError: a data file cannot be read.
        """
        started = time.perf_counter()
        session = self._borrow()
        try:
            plan = session.plan(sql, dialect=dialect, params=dict(bound) if bound else None)
            key = _cache_key(plan, dialect, bound, max_rows)
            with self._lock:
                rows = self._cache.get(key)
                if rows is not None:
                    self._cache.move_to_end(key)
                    self.hits += 1
            cached = rows is not None
            if rows is None:
                result = session.run(plan, max_rows=max_rows)
                rows = Rows(
                    columns=result.json_keys(),
                    types=result.types,
                    rows=[list(row.values()) for row in result.to_json_rows()],
                    truncated=result.truncated,
                )
                with self._lock:
                    self.misses += 1
                    self._cache[key] = rows
                    while len(self._cache) > self._cache_size:
                        self._cache.popitem(last=False)
        finally:
            self._sessions.put(session)
        return Fetched(
            rows=rows,
            tables=[scan.full_name for scan in plan.scans],
            snapshots=plan.snapshots,
            cached=cached,
            elapsed_ms=(time.perf_counter() - started) * 1000,
        )

    def options(self, dashboard: Dashboard) -> dict[str, list[Option]]:
        """Each dropdown's and multi-select's choices: static, or the rows of ``options_sql``
        (first column the value, second the label), run in parallel and cached like visuals.

        Raises:
            ConfigError: an ``options_sql`` fails (the controls cannot be drawn without it).
        """
        from dataflow.dashboard.spec import Option

        def choices(sql: str, dialect: str) -> list[Option]:
            rows = self.fetch(sql, dialect, None, max_rows=OPTIONS_ROWS).rows.rows
            return [
                Option(value=_scalar(row[0]), label=str(row[1]) if len(row) > 1 else None)
                for row in rows
                if row and row[0] is not None
            ]

        found: dict[str, list[Option]] = {}
        pending = {}
        for param in dashboard.parameters:
            static = param.static_options()
            if static is not None:
                found[param.name] = static
            elif param.options_sql is not None:
                pending[param.name] = self._pool.submit(choices, param.options_sql, param.dialect)
        for name, future in pending.items():
            try:
                found[name] = future.result()
            except DataflowError as exc:
                raise type(exc)(f"options of parameter {name}: {exc}") from exc
        return found

    def describe(self, dashboard: Dashboard, *, today: dt.date | None = None) -> dict[str, Any]:
        """The dashboard as JSON for the page: its spec, each control's options and default.

        Raises:
            ConfigError: an ``options_sql`` fails, or a default is not valid.

        Example:
            >>> runner.describe(board)["parameters"][0]["options"][:1]  # doctest: +SKIP
            [{'value': 'AAPL', 'label': None}]
        """
        options = self.options(dashboard)
        values = P.json_values(P.resolve(dashboard, None, options=options, today=today))
        described = dashboard.model_dump(mode="json")
        for param in described["parameters"]:
            param.pop("options_sql", None)
            choices = options.get(param["name"])
            param["options"] = [o.model_dump(mode="json") for o in choices] if choices else None
            param["value"] = values[param["name"]]
            param["bindings"] = dashboard.parameter(param["name"]).bindings()  # type: ignore[union-attr]
        return described

    def clear_cache(self) -> None:
        """Forget every cached result."""
        with self._lock:
            self._cache.clear()

    def _borrow(self) -> QuerySession:
        try:
            return self._sessions.get_nowait()
        except queue.Empty:
            from dataflow.query.session import QuerySession

            session = QuerySession(self.settings, self.db)
            with self._lock:
                self._all_sessions.append(session)
            return session


def check_fields(visual: VisualBase, columns: list[str]) -> None:
    """Check that every field mapping names a column the query returns.

    Raises:
        ConfigError: a mapping names a missing column (the message lists those there are).

    Example:
        >>> from dataflow.dashboard.spec import KpiVisual
        >>> kpi = KpiVisual(name="k", type="kpi", sql="SELECT 1 AS n", value="m")
        >>> check_fields(kpi, ["n"])
        Traceback (most recent call last):
        ...
        dataflow.errors.ConfigError: field value: the query returns no column 'm' (columns: n)
    """
    from dataflow.errors import ConfigError

    for role, column in visual.fields().items():
        if column not in columns:
            listing = ", ".join(columns) or "none"
            raise ConfigError(
                f"field {role}: the query returns no column {column!r} (columns: {listing})"
            )


def _cache_key(
    plan: QueryPlan, dialect: str, bound: Mapping[str, Any] | None, max_rows: int
) -> tuple[Any, ...]:
    from dataflow.query.result import json_value

    values = sorted(
        (name, type(value).__name__, json.dumps(json_value(value), sort_keys=True))
        for name, value in (bound or {}).items()
    )
    reads = tuple(
        (scan.full_name, scan.snapshot_id)
        if scan.kind == "iceberg"
        else (scan.full_name, tuple((f.path, f.size) for f in scan.files))
        for scan in plan.scans
    )
    return (plan.translation.sql, dialect, tuple(values), reads, max_rows)


def _scalar(value: Any) -> str | int | float:
    return (
        value
        if isinstance(value, str | int | float) and not isinstance(value, bool)
        else str(value)
    )


__all__ = [
    "CACHE_SIZE",
    "DEFAULT_WORKERS",
    "DashboardResult",
    "DashboardRunner",
    "Fetched",
    "Rows",
    "VisualResult",
    "check_fields",
]
