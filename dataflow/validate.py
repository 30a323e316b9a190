"""Check a project before anything is spent: ``dataflow validate``, and the start of every run.

Each check reuses the validator of the stage it stands for (the endpoint registry and the request
planner, the SQL models and the engine that runs them, the DQDL parser, the dashboard schema,
CloudWatch statistics, EventBridge expressions, the object store and the catalog); none of them
calls the market-data API or writes to the warehouse. A problem is one line naming the file or
setting and the fix.

=============  ==============================================================================
check          what passes
=============  ==============================================================================
config         ``dataflow.yaml`` and the environment load (else nothing else is checked)
endpoints      every enabled endpoint is known and has its required parameters
symbols        every enabled endpoint's symbol groups exist; symbols are plain names
engine         ``transform.engine`` is available
models         every enabled model compiles on an empty ``raw`` and returns its key and lineage
rulesets       every ``quality/*.dqdl`` (and built-in ruleset) parses; policies are known
dashboards     every dashboard file matches the schema (``full``: its SQL runs too; not at a run)
alarms         every alarm's statistic is one CloudWatch knows
schedules      every job's expression and time zone parse, and it has a command
storage        folders can be created for a local warehouse; an S3 bucket exists
catalog        the metadata database and the Iceberg catalog can be reached
=============  ==============================================================================

Example:
    >>> report = validate_project("/nonexistent-project", env={})
    >>> [(c.name, c.status.value) for c in report.checks][:3]
    [('config', 'ok'), ('endpoints', 'ok'), ('symbols', 'ok')]
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dataflow.errors import ConfigError, DataflowError

if TYPE_CHECKING:
    from dataflow.config import EndpointSettings, Settings
    from dataflow.engines.base import Engine


class Status(StrEnum):
    """The outcome of one check."""

    OK = "ok"
    """Everything the check looks at is usable."""
    FAILED = "failed"
    """At least one problem; each is listed with its fix."""
    SKIPPED = "skipped"
    """Not checked, and why (e.g. the configuration did not load)."""


@dataclass
class Check:
    """One check: its name, outcome, what it looked at, and each problem in one line."""

    name: str
    status: Status = Status.OK
    detail: str = ""
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``--format json``."""
        return {
            "name": self.name,
            "status": self.status.value,
            "detail": self.detail,
            "problems": list(self.problems),
            "seconds": round(self.seconds, 3),
        }


@dataclass
class ValidationReport:
    """Every check of a project, in order."""

    checks: list[Check]

    @property
    def ok(self) -> bool:
        """No check failed."""
        return all(check.status is not Status.FAILED for check in self.checks)

    @property
    def problems(self) -> list[str]:
        """Every problem of every check, in check order."""
        return [problem for check in self.checks for problem in check.problems]

    @property
    def exit_code(self) -> int:
        """0 all passed, 2 the configuration did not load, 1 another check failed."""
        if self.checks and self.checks[0].name == "config" and self.checks[0].problems:
            return 2
        return 0 if self.ok else 1

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``--format json``."""
        return {
            "ok": self.ok,
            "exit_code": self.exit_code,
            "checks": [check.as_dict() for check in self.checks],
        }


# --- the checks ---------------------------------------------------------------------------------


def _chosen_endpoints(
    settings: Settings, endpoints: Sequence[str] | None
) -> dict[str, EndpointSettings]:
    """The endpoints a run calls: those named (``--endpoints``), else every enabled one."""
    from dataflow.config import EndpointSettings

    configured = settings.sources.twelvedata.endpoints
    if endpoints:
        return {name: configured.get(name) or EndpointSettings() for name in endpoints}
    return settings.sources.twelvedata.enabled_endpoints()


def check_endpoints(
    settings: Settings, endpoints: Sequence[str] | None = None
) -> tuple[str, list[str]]:
    """The endpoints to call are known and carry their required parameters."""
    from dataflow.sources.twelvedata.endpoints import EndpointKind, get_endpoint

    problems: list[str] = []
    enabled = _chosen_endpoints(settings, endpoints)
    configured = settings.sources.twelvedata.endpoints
    for name, ep in enabled.items():
        where = f"sources.twelvedata.endpoints.{name}" if name in configured else "--endpoints"
        try:
            endpoint = get_endpoint(name)
        except ConfigError as exc:
            problems.append(f"{where}: {exc}")
            continue
        for param in endpoint.required_params:
            # Series and indicators get ``interval`` from ``intervals`` (default 1day).
            if param == "interval" and endpoint.kind in (
                EndpointKind.SERIES,
                EndpointKind.INDICATOR,
            ):
                continue
            if param not in ep.params and param not in endpoint.default_params:
                problems.append(
                    f"{where}: the API requires the parameter {param!r} — add it under "
                    f"params (e.g. params: {{{param}: …}})"
                )
    return f"{len(enabled)} {'chosen' if endpoints else 'enabled'}", problems


def check_symbols(
    settings: Settings,
    endpoints: Sequence[str] | None = None,
    symbols: Sequence[str] | None = None,
) -> tuple[str, list[str]]:
    """The symbol groups of the endpoints to call exist; each symbol is a plain name.

    ``symbols`` (``--symbols``) replaces the groups for a run: then only those are checked.
    """
    from dataflow.sources.twelvedata.endpoints import EndpointKind, get_endpoint
    from dataflow.sources.twelvedata.plan import endpoint_symbols

    td = settings.sources.twelvedata
    problems: list[str] = []
    groups = {"--symbols": list(symbols)} if symbols else td.symbols
    for group, members in groups.items():
        for symbol in members:
            if not symbol.strip() or symbol != symbol.strip() or "," in symbol:
                where = group if symbols else f"sources.twelvedata.symbols.{group}"
                problems.append(
                    f"{where}: {symbol!r} is not a symbol "
                    "— write one ticker per list entry, without spaces or commas"
                )
    for name, ep in _chosen_endpoints(settings, endpoints).items():
        try:
            kind = get_endpoint(name).kind
        except ConfigError:
            continue  # the endpoints check reports it
        if kind is EndpointKind.CATALOG:
            continue
        try:
            endpoint_symbols(name, ep, td.symbols, symbols)
        except ConfigError as exc:
            problems.append(str(exc))
    total = sum(len(members) for members in td.symbols.values())
    return f"{total} symbol(s) in {len(td.symbols)} group(s)", problems


def check_models(
    settings: Settings, engine: Engine, *, spark: bool = False
) -> tuple[str, list[str]]:
    """Every enabled model compiles on an empty ``raw`` and returns its key and lineage (and,
    with ``spark``, translates to Spark SQL)."""
    from dataflow.storage.objectstore import LocalStore
    from dataflow.transform.flatten import flatten_files
    from dataflow.transform.models import discover_models, select_models
    from dataflow.transform.raw_view import raw_relation
    from dataflow.transform.writer import check_output

    try:
        models = select_models(discover_models(settings.project_dir), None)
    except DataflowError as exc:
        return "", [str(exc)]
    problems: list[str] = []
    empty, _ = flatten_files(LocalStore(settings.project_dir), [])  # no file is read
    for model in models:
        try:
            with raw_relation(
                engine, empty, record_fields=model.record_fields, meta_fields=model.meta_fields
            ):
                check_output(model, engine.sql(model.sql))
            if spark:
                from dataflow.engines.spark.dialect import to_spark

                to_spark(model.sql)
        except DataflowError as exc:
            text = str(exc)
            problems.append(text if model.origin in text else f"{model.origin}: {text}")
    return f"{len(models)} model(s) compile", problems


def check_rulesets(settings: Settings) -> tuple[str, list[str]]:
    """The project's ``quality/*.dqdl`` and the built-in rulesets parse; policies are known."""
    from dataflow.quality.dqdl import parse_ruleset
    from dataflow.quality.freshness import ruleset_text
    from dataflow.quality.policy import BUILTIN_RULESETS, policy_for

    files: dict[str, Path] = {p.stem: p for p in sorted(Path(BUILTIN_RULESETS).glob("*.dqdl"))}
    folder = settings.project_dir / "quality"
    if folder.is_dir():
        files.update({p.stem: p for p in sorted(folder.glob("*.dqdl"))})
    problems: list[str] = []
    for table, path in files.items():
        try:
            text = ruleset_text(path, settings)
            policy_for(table, parse_ruleset(text), settings)
        except DataflowError as exc:
            problems.append(f"{path}: {exc}")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{path}: cannot read it ({type(exc).__name__}) — fix the file")
    return f"{len(files)} ruleset(s) parse", problems


def check_dashboards(settings: Settings, *, full: bool) -> tuple[str, list[str]]:
    """Every dashboard file matches the schema; with ``full`` its SQL runs on the catalog."""
    from dataflow.dashboard.spec import dashboard_files, load_file

    files = list(dashboard_files(settings).values())
    problems: list[str] = []
    for path in files:
        try:
            load_file(path)
        except DataflowError as exc:
            problems.append(f"{exc} — fix the YAML (see docs/dashboards.md)")
    if full and not problems:
        missing = _tables_missing(settings)
        if missing:
            return f"{len(files)} dashboard(s); SQL not run: {missing} not created yet", problems
        from dataflow.dashboard.checks import validate_file
        from dataflow.dashboard.visuals import DashboardRunner

        with DashboardRunner(settings) as runner:
            for path in files:
                try:
                    problems.extend(validate_file(runner, path))
                except Exception as exc:  # a dashboard's own failure must not hide the others
                    problems.append(f"{path}: could not be checked ({type(exc).__name__}: {exc})")
        return f"{len(files)} dashboard(s), SQL run", problems
    return f"{len(files)} dashboard(s)", problems


def _tables_missing(settings: Settings) -> str:
    """Which clean tables the models write are not in the catalog yet ('' when all are).

    Before the first run the dashboards' SQL cannot run; a local project without a metadata
    database has no tables, and it is not created just to find that out.
    """
    from dataflow.catalog.iceberg import open_catalog
    from dataflow.transform.models import discover_models

    targets = sorted(
        {m.target for m in discover_models(settings.project_dir).values() if m.enabled}
    )
    local = settings.metadata.url is None and settings.catalog.url is None
    if local and not (settings.state_dir / "dataflow.db").is_file():
        return "the tables"
    namespace = settings.catalog.namespace
    try:
        present = {ident[-1] for ident in open_catalog(settings).list_tables(namespace)}
    except Exception:  # no namespace yet, or an unreachable catalog (the catalog check says)
        return "the tables"
    absent = [t for t in targets if t not in present]
    if not absent:
        return ""
    return ", ".join(absent[:3]) + (f" and {len(absent) - 3} more" if len(absent) > 3 else "")


def check_alarms(settings: Settings) -> tuple[str, list[str]]:
    """Every alarm (configured, or the defaults) names a statistic CloudWatch knows."""
    from dataflow.monitor.default_alarms import configured_alarms
    from dataflow.monitor.statistics import check_statistic

    alarms = configured_alarms(settings)
    problems: list[str] = []
    for spec in alarms:
        try:
            check_statistic(spec.statistic)
        except DataflowError as exc:
            problems.append(f"alarms: {spec.name}: {exc}")
    return f"{len(alarms)} alarm(s)", problems


def check_schedules(settings: Settings) -> tuple[str, list[str]]:
    """Every job's expression parses (again: the settings may come from elsewhere)."""
    from dataflow.schedule.expressions import parse_expression, zone

    problems: list[str] = []
    for job in settings.schedule.jobs:
        try:
            parse_expression(job.schedule)
            zone(job.timezone)
        except DataflowError as exc:
            problems.append(f"schedule.jobs: {job.name}: {exc}")
        if not job.command:
            problems.append(f"schedule.jobs: {job.name}: command is empty — e.g. [run]")
    return f"{len(settings.schedule.jobs)} job(s)", problems


def check_storage(settings: Settings) -> tuple[str, list[str]]:
    """The local warehouse can be created and written; an S3 warehouse can be listed."""
    if settings.warehouse_is_remote:
        from dataflow.storage import open_store

        try:
            store = open_store(settings)
            store.exists("raw")
        except DataflowError as exc:
            return settings.warehouse_uri, [f"warehouse: {exc}"]
        except Exception as exc:  # the S3 client's own errors: no credentials, no endpoint
            return settings.warehouse_uri, [
                f"warehouse: {settings.warehouse_uri} cannot be reached ({type(exc).__name__}) "
                "— check storage.s3 (endpoint_url, region, credentials)"
            ]
        # The store answers "no such object" for a missing bucket too: ask for the bucket.
        # (The object store has no public call for it yet; s3fs raises FileNotFoundError.)
        fs, bucket = getattr(store, "_fs", None), getattr(store, "bucket", None)
        if fs is not None and bucket:
            try:
                fs.info(bucket)
            except FileNotFoundError:
                return settings.warehouse_uri, [
                    f"warehouse: bucket {bucket!r} does not exist — create it, or fix the "
                    "bucket name in warehouse"
                ]
            except Exception as exc:  # refused, unreachable endpoint, bad credentials
                return settings.warehouse_uri, [
                    f"warehouse: bucket {bucket!r} cannot be reached ({type(exc).__name__}) "
                    "— check storage.s3 (endpoint_url, region, credentials)"
                ]
        return f"{settings.warehouse_uri} reachable", []
    folder = Path(settings.warehouse_uri)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return str(folder), [f"warehouse: {existing} is a file, not a folder — use a folder"]
    try:
        # A folder made and removed at once: permissions, read-only and pseudo file systems
        # (/proc) all answer here, and nothing is left behind.
        os.rmdir(tempfile.mkdtemp(prefix=".dataflow-validate-", dir=existing))
    except OSError as exc:
        return str(folder), [
            f"warehouse: cannot create folders in {existing} ({exc.strerror}) — fix its "
            "permissions or choose another folder"
        ]
    return f"{folder} writable", []


def check_catalog(settings: Settings) -> tuple[str, list[str]]:
    """The metadata database and the Iceberg catalog answer (local SQLite: nothing to reach)."""
    problems: list[str] = []
    reached: list[str] = []
    if settings.metadata.url is not None and not _is_sqlite(settings.metadata_url):
        problem = _ping_database(settings.metadata_url, "metadata.url")
        problems.extend([problem] if problem else [])
        reached.append("metadata database")
    catalog = settings.catalog
    explicit = catalog.url is not None and not _is_sqlite(catalog.url.get_secret_value())
    if (
        catalog.type.value != "sql"
        or explicit
        or (
            catalog.url is None
            and settings.metadata.url is not None
            and not problems
            and not _is_sqlite(settings.metadata_url)
        )
    ):
        from dataflow.catalog.iceberg import open_catalog

        try:
            open_catalog(settings).list_namespaces()
            reached.append(f"{catalog.type.value} catalog")
        except DataflowError as exc:
            problems.append(f"catalog: {exc}")
        except Exception as exc:  # a catalog's own client error (REST, Glue): one line
            problems.append(
                f"catalog: the {catalog.type.value} catalog does not answer "
                f"({type(exc).__name__}) — check catalog.url and catalog.properties"
            )
    return (", ".join(reached) + " reachable") if reached else "local SQLite", problems


def _is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def _ping_database(url: str, key: str) -> str | None:
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(_driver_url(url), pool_pre_ping=False)
    except Exception as exc:  # bad URL or a missing driver
        name = type(exc).__name__
        extra = (
            " — install it with: pip install 'dataflow-etl[postgres]'" if "postgres" in url else ""
        )
        return f"{key}: cannot use this database URL ({name}){extra or ' — check the URL'}"
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except Exception as exc:  # connection refused, authentication, unknown database
        return (
            f"{key}: the database does not answer ({type(exc).__name__}) — check the URL, the "
            "server and the credentials"
        )
    finally:
        engine.dispose()
    return None


def _driver_url(url: str) -> str:
    import sqlalchemy as sa

    try:  # Dataflow's own parameters (the project, its schema) are not the driver's
        parsed = sa.make_url(url)
        mine = [key for key in parsed.query if key.startswith("dataflow_")]
        url = parsed.difference_update_query(mine).render_as_string(hide_password=False)
    except sa.exc.ArgumentError:
        pass  # create_engine reports it
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


# --- running them -------------------------------------------------------------------------------


STAGE_CHECKS: dict[str, tuple[str, ...]] = {
    "ingest": ("endpoints", "symbols"),
    "transform": ("engine", "models"),
    "quality": ("rulesets",),
}
"""The checks a run makes for each of its stages; alarms, schedules, storage and catalog are
checked for every run. Dashboards cost no credits: only ``dataflow validate`` checks them."""


def validate_settings(
    settings: Settings,
    *,
    full: bool = True,
    stages: Sequence[str] | None = None,
    endpoints: Sequence[str] | None = None,
    symbols: Sequence[str] | None = None,
) -> ValidationReport:
    """Run the checks on loaded settings.

    Args:
        settings: the project's settings (already valid as configuration).
        full: also run each dashboard's SQL on the catalog, once the tables exist.
        stages: only the checks these stages need (see :data:`STAGE_CHECKS`), and no
            dashboards; default: every check.
        endpoints: only these endpoints are called (``--endpoints``).
        symbols: these symbols replace the groups (``--symbols``).
    """
    from dataflow.engines import get_engine

    wanted: set[str] | None = None
    if stages is not None:
        wanted = {"alarms", "schedules", "storage", "catalog"}
        wanted.update(name for stage in stages for name in STAGE_CHECKS.get(stage, ()))
    checks = [Check("config", detail=str(settings.project_dir))]

    def step(name: str, run: Callable[[], tuple[str, list[str]]]) -> None:
        if wanted is None or name in wanted:
            checks.append(_timed(name, run))

    step("endpoints", lambda: check_endpoints(settings, endpoints))
    step("symbols", lambda: check_symbols(settings, endpoints, symbols))
    if wanted is None or "engine" in wanted:
        engine_check = Check("engine")
        engine: Engine | None = None
        started = time.perf_counter()
        name = settings.transform.engine or settings.engine
        try:
            if name == "spark":
                # Starting a JVM to validate costs seconds: check what a session needs, and
                # compile the models in the contract dialect, then translate them for Spark.
                from dataflow.engines.spark.session import check_ready

                check_ready(settings)
                engine = get_engine("duckdb")
            else:
                engine = get_engine(name)
            engine_check.detail = name
        except DataflowError as exc:
            engine_check.problems.append(f"engine: {exc}")
        engine_check.seconds = time.perf_counter() - started
        checks.append(_finish(engine_check))
        if engine is None:
            checks.append(Check("models", Status.SKIPPED, "no engine to compile them"))
        else:
            compiler = engine
            try:
                step("models", lambda: check_models(settings, compiler, spark=name == "spark"))
            finally:
                engine.close()
    step("rulesets", lambda: check_rulesets(settings))
    step("dashboards", lambda: check_dashboards(settings, full=full))
    step("alarms", lambda: check_alarms(settings))
    step("schedules", lambda: check_schedules(settings))
    step("storage", lambda: check_storage(settings))
    step("catalog", lambda: check_catalog(settings))
    return ValidationReport(checks)


def validate_project(
    project_dir: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    full: bool = True,
) -> ValidationReport:
    """Load a project's settings and run every check; a configuration error is the first check.

    Example:
        >>> validate_project("/nonexistent-project", env={"DATAFLOW__NAME": "a b"}).exit_code
        2
    """
    from dataflow.config import load_settings

    try:
        settings = load_settings(project_dir, env=env)
    except ConfigError as exc:
        config = Check("config", Status.FAILED, problems=[str(exc)])
        return ValidationReport([config])
    return validate_settings(settings, full=full)


def preflight(settings: Settings, options: Any = None, stages: Sequence[str] = ()) -> None:
    """The checks at the start of a run: refuse, before any API call, a project that would fail.

    Args:
        settings: the project.
        options: the run's ``RunOptions`` (its ``endpoints`` and ``symbols`` narrow the checks).
        stages: the names of the stages the run will run.

    Raises:
        ConfigError: the first problem, and how many more ``dataflow validate`` lists.
    """
    report = validate_settings(
        settings,
        full=False,
        stages=list(stages),
        endpoints=getattr(options, "endpoints", None),
        symbols=getattr(options, "symbols", None),
    )
    problems = report.problems
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise ConfigError(
            f"{problems[0]}{more} — nothing was fetched; see them all with `dataflow validate`"
        )


def _timed(name: str, step: Callable[[], tuple[str, list[str]]]) -> Check:
    check = Check(name)
    started = time.perf_counter()
    try:
        check.detail, check.problems = step()
    except DataflowError as exc:
        check.problems = [str(exc)]
    check.seconds = time.perf_counter() - started
    return _finish(check)


def _finish(check: Check) -> Check:
    # One line per problem: an engine's message may go on (candidates, a caret line).
    check.problems = [" ".join(p.strip().splitlines()[:1]) or p for p in check.problems]
    if check.problems:
        check.status = Status.FAILED
    return check


__all__ = [
    "STAGE_CHECKS",
    "Check",
    "Status",
    "ValidationReport",
    "preflight",
    "validate_project",
    "validate_settings",
]
