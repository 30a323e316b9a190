"""`dataflow query`: Athena-style SQL over the catalog, its history, results and named queries.

Two forms share the command: ``dataflow query "SQL" [options]`` (or ``-f FILE.sql``) runs a
statement, and subcommands manage executions::

    dataflow query "SELECT ..." [--dialect athena] [--as-of T] [--dry-run] [--workgroup W]
    dataflow query history [--format json]      the latest executions
    dataflow query show ID                      one execution: state, statistics, error
    dataflow query results ID [--format csv|json]
    dataflow query save NAME -f FILE.sql        a named query (queries/NAME.sql)
    dataflow query run NAME [--param k=v ...]   run it with bound parameters
    dataflow query list                         the named queries

The first argument picks the form: a subcommand name, or else SQL (:class:`QueryGroup`).
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from dataflow.cli.common import (
    DebugOption,
    FormatOption,
    OutputFormat,
    ProjectOption,
    console,
    handle_errors,
    human_size,
    print_json,
    print_table,
    settings_for,
)

if TYPE_CHECKING:
    from dataflow.query.execution import QueryOutcome, QueryRunner
    from dataflow.query.history import QueryExecution
    from dataflow.query.planning import QueryPlan

_SQL_COMMAND = "sql"


class QueryGroup(TyperGroup):
    """A group whose first argument is a subcommand name, or else the SQL to run."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # typer's own click Context
        first = args[0] if args else None
        if first not in self.commands and first not in ("--help", "-h"):
            args = [_SQL_COMMAND, *args]
        return super().parse_args(ctx, args)


class QueryFormat(StrEnum):
    """How `dataflow query` prints rows."""

    TABLE = "table"
    """A Rich table of the first --limit rows, for people."""
    CSV = "csv"
    """A header row, then every row (RFC 4180)."""
    JSON = "json"
    """A JSON array of row objects."""
    PARQUET = "parquet"
    """A Parquet file (needs --output FILE)."""


class ResultFormat(StrEnum):
    """How `dataflow query results` prints a stored result."""

    CSV = "csv"
    """Athena's CSV (every field quoted): a DML result file as stored; a DDL/UTILITY result
    (stored as ``<id>.txt``) converted to the same shape."""
    JSON = "json"
    """A JSON array of row objects, typed by the result metadata."""


SqlArgument = Annotated[
    str | None,
    typer.Argument(metavar="SQL", help="One SELECT/WITH/SHOW/DESCRIBE/EXPLAIN, CTAS or UNLOAD."),
]
FileOption = Annotated[
    Path | None, typer.Option("--file", "-f", help="Read the SQL from this file (- for stdin).")
]
QueryFormatOption = Annotated[
    QueryFormat, typer.Option("--format", help="Output format: table, csv, json or parquet.")
]
OutputFileOption = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Write the rows to this file instead of printing them."),
]
LimitOption = Annotated[int, typer.Option("--limit", min=1, help="Rows shown by --format table.")]
DialectOption = Annotated[
    str, typer.Option("--dialect", help="SQL dialect: duckdb, athena (= trino), trino or spark.")
]
WorkgroupOption = Annotated[
    str | None, typer.Option("--workgroup", help="Workgroup (default: primary).")
]
AsOfOption = Annotated[
    str | None,
    typer.Option("--as-of", help="Time travel: an Iceberg snapshot id or an ISO-8601 time."),
]
DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Print the files, bytes and cost; do not run.")
]
ParamOption = Annotated[
    list[str] | None,
    typer.Option("--param", help="A parameter value, name=value ($name or ? in the SQL)."),
]


def register(app: typer.Typer) -> None:
    """Add the `query` command group to the application."""
    group = typer.Typer(
        cls=QueryGroup,
        help=(
            'Run SQL over the catalog, Athena-style: dataflow query "SELECT ..." [options] '
            "(the options: dataflow query sql --help); history, results, named queries."
        ),
        no_args_is_help=False,
    )
    group.command(_SQL_COMMAND, help='Run one statement (same as: dataflow query "SQL").')(
        query_command
    )
    group.command("history")(history_command)
    group.command("show")(show_command)
    group.command("results")(results_command)
    group.command("save")(save_command)
    group.command("run")(run_command)
    group.command("list")(list_command)
    app.add_typer(group, name="query")


def read_sql(sql: str | None, file: Path | None) -> str:
    """The SQL text from the argument or the file (``-`` for standard input).

    Raises:
        ConfigError: neither or both given, or the file cannot be read.

    Example:
        >>> read_sql("SELECT 1", None)
        'SELECT 1'
    """
    from dataflow.errors import ConfigError

    if (sql is None) == (file is None):
        raise ConfigError(
            "give the SQL either as an argument or with --file, e.g. "
            'dataflow query "SELECT * FROM market.time_series LIMIT 5"'
        )
    if sql is not None:
        return sql
    assert file is not None
    if str(file) == "-":
        return sys.stdin.read()
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--file {file}: cannot read it ({exc.__class__.__name__})") from exc


@handle_errors
def query_command(
    sql: SqlArgument = None,
    file: FileOption = None,
    output: QueryFormatOption = QueryFormat.TABLE,
    output_file: OutputFileOption = None,
    limit: LimitOption = 100,
    dialect: DialectOption = "duckdb",
    workgroup: WorkgroupOption = None,
    as_of: AsOfOption = None,
    dry_run: DryRunOption = False,
    param: ParamOption = None,
    project: ProjectOption = None,
    debug: DebugOption = False,  # noqa: ARG001 (read by handle_errors)
) -> None:
    """Run one SQL statement over the catalog's tables (market.*, raw.*)."""
    text = read_sql(sql, file)
    _run(text, output, limit, dialect, workgroup, as_of, dry_run, param, project, output_file)


@handle_errors
def run_command(
    name: Annotated[str, typer.Argument(help="The named query (queries/NAME.sql).")],
    output: QueryFormatOption = QueryFormat.TABLE,
    output_file: OutputFileOption = None,
    limit: LimitOption = 100,
    dialect: DialectOption = "duckdb",
    workgroup: WorkgroupOption = None,
    as_of: AsOfOption = None,
    dry_run: DryRunOption = False,
    param: ParamOption = None,
    project: ProjectOption = None,
    debug: DebugOption = False,  # noqa: ARG001 (read by handle_errors)
) -> None:
    """Run a named query with typed, bound parameters (--param k=v)."""
    from dataflow.query.named import load_named

    text = load_named(settings_for(project), name).sql
    _run(text, output, limit, dialect, workgroup, as_of, dry_run, param, project, output_file)


def _run(
    text: str,
    output: QueryFormat,
    limit: int,
    dialect: str,
    workgroup: str | None,
    as_of: str | None,
    dry_run: bool,
    param: list[str] | None,
    project: Path | None,
    output_file: Path | None = None,
) -> None:
    from dataflow.errors import ConfigError
    from dataflow.query.execution import QueryRunner
    from dataflow.query.named import parse_params

    if output is QueryFormat.PARQUET and output_file is None and not dry_run:
        raise ConfigError("--format parquet writes a file — add --output FILE.parquet")
    params = parse_params(param or []) or None
    settings = settings_for(project)
    with QueryRunner(settings) as runner:
        if dry_run:
            _print_plan(runner.dry_run(text, dialect=dialect, as_of=as_of, params=params), output)
            return
        outcome = _run_stoppable(
            runner, text, dialect=dialect, workgroup=workgroup, as_of=as_of, params=params
        )
    if output_file is not None:
        _write_outcome(outcome, output, output_file)
        return
    _print_outcome(outcome, output, limit)


def _run_stoppable(runner: QueryRunner, text: str, **options: Any) -> QueryOutcome:
    """Run the query in a worker thread, so that Ctrl-C always reaches this (main) thread and
    stops it — StopQueryExecution: recorded CANCELLED, exit 130."""
    import threading
    import uuid

    from dataflow.errors import QueryCancelledError
    from dataflow.query.stop import USER_CANCELLED, running, stop_running

    query_id = str(uuid.uuid4())
    outcome: list[QueryOutcome] = []
    failure: list[BaseException] = []

    finished = threading.Event()

    def work() -> None:
        try:
            outcome.append(runner.run(text, query_id=query_id, **options))
        except BaseException as exc:  # handed to the main thread
            failure.append(exc)
        finally:
            finished.set()

    # An Event, not Thread.join: a join cut by Ctrl-C can leave the thread marked as ended.
    threading.Thread(target=work, name="query", daemon=True).start()
    try:
        while not finished.wait(0.1):
            pass
    except KeyboardInterrupt:
        while not finished.wait(0.05):  # it may not run yet: stop it as soon as it does
            if query_id in running():
                stop_running(query_id, USER_CANCELLED)
    if failure:
        exc = failure[0]
        if isinstance(exc, QueryCancelledError) and exc.reason == USER_CANCELLED:
            print(f"error: {exc}", file=sys.stderr)
            raise typer.Exit(130)
        raise exc
    return outcome[0]


def _write_outcome(outcome: QueryOutcome, output: QueryFormat, path: Path) -> None:
    """Write the rows to ``path`` in ``output`` (table means CSV in a file)."""
    import json

    result = outcome.result
    if output is QueryFormat.PARQUET:
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns = {name: [row[i] for row in result.rows] for i, name in enumerate(result.columns)}
        pq.write_table(pa.table(columns), path)
    elif output is QueryFormat.JSON:
        text = json.dumps(result.to_json_rows(), indent=2, default=str)
        path.write_text(text + "\n", encoding="utf-8")
    else:
        with path.open("w", encoding="utf-8", newline="") as stream:
            result.to_csv(stream)
    console(stderr=True).print(
        f"{result.row_count} row(s) written to {path} — query {outcome.execution.query_id}",
        markup=False,
    )


def _print_outcome(outcome: QueryOutcome, output: QueryFormat, limit: int) -> None:
    result = outcome.result
    if output is QueryFormat.JSON:
        print_json(result.to_json_rows())
        return
    if output is QueryFormat.CSV:
        result.to_csv(sys.stdout)
        return
    print_table(None, result.columns, result.rows[:limit])
    shown = f"{result.row_count} row(s)"
    if result.row_count > limit:
        shown = f"first {limit} of {result.row_count} row(s) shown (--limit N, or --format csv)"
    execution = outcome.execution
    console().print(
        f"{shown} in {(execution.total_ms or 0) / 1000:.2f} s, "
        f"{human_size(execution.bytes_scanned or 0) or '0 B'} scanned — query {execution.query_id}",
        markup=False,
    )


def _print_plan(plan: QueryPlan, output: QueryFormat) -> None:
    described = plan.describe()
    if output is QueryFormat.JSON:
        print_json(described)
        return
    rows = [
        [
            t["table"],
            t["kind"],
            t["snapshot_id"] or "",
            f"{t['files']}/{t['total_files'] if t['total_files'] is not None else '?'}",
            human_size(t["bytes"]) or "0 B",
            ", ".join(t["partitions"][:6]) + (" ..." if len(t["partitions"]) > 6 else ""),
        ]
        for t in described["tables"]
    ]
    print_table(
        "dry run (nothing read)",
        ["table", "kind", "snapshot", "files", "bytes", "partitions"],
        rows,
    )
    console().print(
        f"would scan {described['bytes_scanned']} bytes in {described['files_scanned']} file(s); "
        f"Athena cost ${described['cost_usd']:.6f} ($5/TB, 10 MB minimum)",
        markup=False,
    )


@handle_errors
def history_command(
    limit: Annotated[int, typer.Option("--limit", min=1, help="Executions shown.")] = 20,
    workgroup: WorkgroupOption = None,
    output: FormatOption = OutputFormat.TABLE,
    project: ProjectOption = None,
    debug: DebugOption = False,  # noqa: ARG001 (read by handle_errors)
) -> None:
    """The latest query executions, newest first."""
    from dataflow.query.history import list_executions

    executions = _with_db(project, lambda db: list_executions(db, limit=limit, workgroup=workgroup))
    if output is OutputFormat.JSON:
        print_json([e.to_json() for e in executions])
        return
    rows = [
        [
            e.query_id,
            str(e.state),
            e.submitted_at.strftime("%Y-%m-%d %H:%M:%S"),
            str(e.total_ms if e.total_ms is not None else ""),
            human_size(e.bytes_scanned) if e.bytes_scanned is not None else "",
            " ".join(e.query.split())[:60],
        ]
        for e in executions
    ]
    print_table(None, ["query id", "state", "submitted (UTC)", "ms", "scanned", "query"], rows)


@handle_errors
def show_command(
    query_id: Annotated[str, typer.Argument(metavar="ID", help="Execution id (or its prefix).")],
    output: FormatOption = OutputFormat.TABLE,
    project: ProjectOption = None,
    debug: DebugOption = False,  # noqa: ARG001 (read by handle_errors)
) -> None:
    """One execution: state, reason, statistics, error, result location."""
    from dataflow.query.history import get_execution

    execution: QueryExecution = _with_db(project, lambda db: get_execution(db, query_id))
    data = execution.to_json()
    if output is OutputFormat.JSON:
        print_json(data)
        return
    status, stats = data["Status"], data["Statistics"]
    rows: list[list[Any]] = [
        ["id", execution.query_id],
        ["state", status["State"]],
        ["reason", status["StateChangeReason"] or ""],
        ["workgroup", execution.workgroup],
        ["dialect", execution.dialect],
        ["statement", f"{execution.statement_type} / {execution.substatement_type}"],
        ["submitted", status["SubmissionDateTime"]],
        ["completed", status["CompletionDateTime"] or ""],
        *[[key, "" if value is None else value] for key, value in stats.items()],
        ["output", execution.output_location or ""],
        ["snapshots", ", ".join(f"{k}@{v}" for k, v in execution.snapshots.items())],
        ["query", " ".join(execution.query.split())],
    ]
    print_table(None, ["field", "value"], rows)


@handle_errors
def results_command(
    query_id: Annotated[str, typer.Argument(metavar="ID", help="Execution id (or its prefix).")],
    output: Annotated[
        ResultFormat, typer.Option("--format", help="csv (as stored) or json.")
    ] = ResultFormat.CSV,
    project: ProjectOption = None,
    debug: DebugOption = False,  # noqa: ARG001 (read by handle_errors)
) -> None:
    """The stored result of a SUCCEEDED execution."""
    from dataflow.errors import ConfigError
    from dataflow.query.config import query_config
    from dataflow.query.history import get_execution
    from dataflow.query.output import read_results, result_csv, stored_result_key, typed_rows
    from dataflow.storage import open_store

    settings = settings_for(project)
    execution = _with_db(project, lambda db: get_execution(db, query_id))
    if execution.output_location is None:
        raise ConfigError(
            f"query {execution.query_id} is {execution.state} and has no results — "
            f"see `dataflow query show {execution.query_id}`"
        )
    store = open_store(settings)
    # DML results are <id>.csv, DDL/UTILITY results <id>.txt (Athena): the execution knows which.
    key = stored_result_key(query_config(settings).results_prefix, execution)
    if output is ResultFormat.CSV:
        sys.stdout.write(result_csv(store, key).decode("utf-8"))
        return
    infos, rows = read_results(store, key)
    print_json(typed_rows(infos, rows))


@handle_errors
def save_command(
    name: Annotated[str, typer.Argument(help="Name of the query (the file stem).")],
    file: FileOption = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing query.")] = False,
    project: ProjectOption = None,
    debug: DebugOption = False,  # noqa: ARG001 (read by handle_errors)
) -> None:
    """Save SQL as a named query (queries/NAME.sql in the project)."""
    from dataflow.query.named import save_named

    saved = save_named(settings_for(project), name, read_sql(None, file), overwrite=force)
    console().print(f"saved {saved.name} -> {saved.path}", markup=False)


@handle_errors
def list_command(
    output: FormatOption = OutputFormat.TABLE,
    project: ProjectOption = None,
    debug: DebugOption = False,  # noqa: ARG001 (read by handle_errors)
) -> None:
    """The named queries of the project."""
    from dataflow.query.named import list_named

    queries = list_named(settings_for(project))
    if output is OutputFormat.JSON:
        print_json([{"name": q.name, "path": str(q.path), "sql": q.sql} for q in queries])
        return
    print_table(None, ["name", "sql"], [[q.name, " ".join(q.sql.split())[:80]] for q in queries])


def _with_db(project: Path | None, action: Any) -> Any:
    from dataflow.metadata import open_metadata

    db = open_metadata(settings_for(project).metadata_url)
    try:
        return action(db)
    finally:
        db.dispose()
