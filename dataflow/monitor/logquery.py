"""Query the JSON-lines run logs with DuckDB: pick the files, run the SQL, return plain rows.

The files of ``<log dir>/<YYYY-MM-DD>/<run id>.jsonl`` are read with DuckDB's ``read_json``
(union of all files' fields, half-written lines skipped) into a view ``logs`` with CloudWatch's
auto fields: ``@timestamp`` (the record's ``ts``), ``@message`` (its ``message``),
``@logStream`` (its run id) and ``@log`` (the project). ``--run``, ``--stage``, ``--level`` and
``--since`` narrow that view before the query sees it; ``--since`` first skips whole day folders.

Example:
    >>> import tempfile
    >>> from dataflow.monitor.logs import get_logger, run_log
    >>> log_dir = Path(tempfile.mkdtemp())
    >>> with run_log(log_dir, "r1"):
    ...     get_logger("demo").warning("disk %s full", "/tmp")
    >>> result = query_logs(log_dir, "filter level = 'WARNING' | fields @logStream, @message")
    >>> result.rows
    [{'@logStream': 'r1', '@message': 'disk /tmp full'}]
"""

from __future__ import annotations

import datetime as dt
import decimal
import glob
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dataflow.errors import ConfigError
from dataflow.monitor.insights import SEQ, compile_query, quote_ident, quote_str

TAIL_LIMIT = 100
"""Records shown by a plain ``dataflow logs`` (no query)."""

LEVELS = {"DEBUG": 10, "INFO": 20, "WARN": 30, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
"""Python's logging levels; ``--level`` keeps this level and above."""

_RELATIVE = re.compile(r"(\d+)\s*(s|m|h|d|w)")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_HIDDEN = frozenset({"@timestamp", "@message", "@logStream", "@log", SEQ})
_EMPTY_LOGS = (
    "SELECT NULL::TIMESTAMPTZ AS ts, NULL::VARCHAR AS level, NULL::VARCHAR AS logger, "
    "NULL::VARCHAR AS message, NULL::VARCHAR AS run_id, NULL::VARCHAR AS stage WHERE false"
)


@dataclass(frozen=True)
class LogQueryResult:
    """Rows of a log query.

    Attributes:
        columns: the column names, in order.
        rows: one dict per row; timestamps as ISO-8601 strings in UTC (``…Z``).
        files: how many log files were read.
        records_scanned: records that passed ``--run/--stage/--level/--since``.
        sql: the SQL that ran over the view ``logs``.
    """

    columns: tuple[str, ...]
    rows: list[dict[str, Any]]
    files: int
    records_scanned: int
    sql: str


def parse_since(text: str, *, now: dt.datetime | None = None) -> dt.datetime:
    """The moment ``--since`` names: a span back from now (``15m``, ``2h``, ``3d``, ``1w``) or an
    ISO date or time (UTC unless it has an offset).

    Raises:
        ConfigError: neither form.

    Example:
        >>> now = dt.datetime(2026, 1, 2, 12, 0, tzinfo=dt.UTC)
        >>> parse_since("90m", now=now).isoformat(), parse_since("2026-01-01").isoformat()
        ('2026-01-02T10:30:00+00:00', '2026-01-01T00:00:00+00:00')
    """
    value = text.strip()
    relative = _RELATIVE.fullmatch(value)
    if relative:
        seconds = int(relative.group(1)) * _SECONDS[relative.group(2)]
        return (now or dt.datetime.now(dt.UTC)) - dt.timedelta(seconds=seconds)
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"--since {text!r}: use a span like 15m, 2h, 3d, 1w or an ISO time like "
            "2026-01-02 or 2026-01-02T10:00:00Z"
        ) from None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def select_files(
    log_dir: Path, *, run_id: str | None = None, since: dt.datetime | None = None
) -> list[Path]:
    """The log files to read, oldest day first: day folders from ``since``'s day on.

    Args:
        log_dir: the ``logs/`` folder.
        run_id: only files of this run (or runs starting with this prefix).
        since: skip day folders before this moment's UTC day.

    Example:
        >>> select_files(Path("/nonexistent"))
        []
    """
    root = Path(log_dir)
    if not root.is_dir():
        return []
    first_day = since.astimezone(dt.UTC).date() if since else None
    if run_id and ("/" in run_id or "\\" in run_id or run_id.startswith(".")):
        return []
    pattern = f"{glob.escape(run_id)}*.jsonl" if run_id else "*.jsonl"
    files: list[Path] = []
    for folder in sorted(root.iterdir()):
        try:
            day = dt.date.fromisoformat(folder.name)
        except ValueError:
            continue
        if folder.is_dir() and (first_day is None or day >= first_day):
            # A run id is a file-name prefix, never a path: '../x' must not leave the folder.
            files.extend(sorted(f for f in folder.glob(pattern) if f.parent == folder))
    return files


def query_logs(
    log_dir: Path,
    query: str | None = None,
    *,
    run_id: str | None = None,
    stage: str | None = None,
    level: str | None = None,
    since: dt.datetime | None = None,
    log_group: str = "dataflow",
    limit: int | None = None,
) -> LogQueryResult:
    """Run a Logs Insights ``query`` over the logs, or without one return the newest records.

    Args:
        log_dir: the ``logs/`` folder (``settings.state_dir / "logs"``).
        query: Logs Insights query text; ``None`` for the last ``limit`` records, oldest first,
            each with the fields it was logged with.
        run_id: only this run (a prefix works).
        stage: only records of this stage.
        level: only records at this level or above (``WARNING`` keeps ``ERROR`` too).
        since: only records at or after this moment.
        log_group: the value of ``@log`` (the project's name).
        limit: rows to return when the query has no ``limit`` (default 1000; 100 without query).

    Raises:
        ConfigError: a bad query, level or a query DuckDB rejects (exit code 2).

    Example:
        >>> query_logs(Path("/nonexistent"), "stats count(*) as n").rows
        [{'n': 0}]
    """
    import duckdb

    files = select_files(log_dir, run_id=run_id, since=since)
    con = duckdb.connect()
    try:
        # Timestamps are UTC in the files; keep DuckDB from moving them to the local zone.
        con.execute("SET TimeZone = 'UTC'")
        con.execute(_view_sql(files, run_id, stage, level, since, log_group))
        columns = [row[0] for row in con.execute("DESCRIBE logs").fetchall()]
        if query is None:
            sql, names = _tail_sql(columns, limit or TAIL_LIMIT)
        else:
            compiled = compile_query(query, columns, default_limit=limit or 1000)
            sql, names = compiled.sql, compiled.columns
        try:
            scanned = con.execute("SELECT count(*) FROM logs").fetchone()
            raw = con.execute(sql).fetchall()
        except duckdb.Error as exc:
            first = str(exc).strip().splitlines()[0]
            raise ConfigError(f"the log query failed: {first}") from exc
    finally:
        con.close()
    rows = [dict(zip(names, (_plain(v) for v in values), strict=True)) for values in raw]
    if query is None:
        # Fields a record was not logged with come back as NULL from the union of files.
        rows = [{k: v for k, v in row.items() if v is not None} for row in reversed(rows)]
    return LogQueryResult(tuple(names), rows, len(files), int(scanned[0]) if scanned else 0, sql)


def _view_sql(
    files: Sequence[Path],
    run_id: str | None,
    stage: str | None,
    level: str | None,
    since: dt.datetime | None,
    log_group: str,
) -> str:
    if files:
        paths = ", ".join(quote_str(str(p)) for p in files)
        source = (
            f"SELECT * FROM read_json([{paths}], format = 'newline_delimited', "
            "union_by_name = true, ignore_errors = true, sample_size = -1)"
        )
    else:
        source = _EMPTY_LOGS
    timestamp = "CAST(TRY_CAST(ts AS TIMESTAMPTZ) AS TIMESTAMP)"
    # ignore_errors turns a half-written line into a row of NULLs; every real record has a ts.
    where = ["ts IS NOT NULL"]
    if run_id:
        where.append(f"starts_with(run_id, {quote_str(run_id)})")
    if stage:
        where.append(f"stage = {quote_str(stage)}")
    if level:
        minimum = LEVELS.get(level.upper())
        if minimum is None:
            raise ConfigError(f"--level {level!r}: use DEBUG, INFO, WARNING, ERROR or CRITICAL")
        cases = " ".join(f"WHEN {quote_str(k)} THEN {v}" for k, v in LEVELS.items())
        where.append(f"(CASE upper(level) {cases} ELSE 0 END) >= {minimum}")
    if since:
        moment = since.astimezone(dt.UTC).replace(tzinfo=None).isoformat()
        where.append(f"{timestamp} >= TIMESTAMP {quote_str(moment)}")
    condition = f" WHERE {' AND '.join(where)}"
    return (
        "CREATE TEMP VIEW logs AS SELECT * REPLACE "
        f"(strftime({timestamp}, '%Y-%m-%dT%H:%M:%S.%gZ') AS ts), "
        f'{timestamp} AS "@timestamp", message AS "@message", run_id AS "@logStream", '
        f'{quote_str(log_group)} AS "@log", row_number() OVER () AS {quote_ident(SEQ)} '
        f"FROM ({source}){condition}"
    )


def _tail_sql(columns: list[str], limit: int) -> tuple[str, tuple[str, ...]]:
    names = tuple(c for c in columns if c not in _HIDDEN)
    select = ", ".join(quote_ident(n) for n in names)
    order = f'"@timestamp" DESC, {quote_ident(SEQ)} DESC'
    return f"SELECT {select} FROM logs ORDER BY {order} LIMIT {limit}", names


def _plain(value: Any) -> Any:
    """A DuckDB value as JSON-ready Python: times as ISO strings, decimals as floats."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.isoformat(timespec="milliseconds") + "Z"
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


__all__ = ["LEVELS", "TAIL_LIMIT", "LogQueryResult", "parse_since", "query_logs", "select_files"]
