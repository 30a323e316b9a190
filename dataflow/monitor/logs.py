"""Structured logs: JSON lines per run in the warehouse, readable Rich output on the console.

Every module logs through ``get_logger(__name__)`` (the ``dataflow`` logger tree). While a run
is open (:func:`run_log`) every record is also written as one JSON object per line to
``<log dir>/<YYYY-MM-DD>/<run id>.jsonl``, carrying ``run_id`` and the ``stage`` set by
:func:`stage_context`. Both live in context variables, so records from asyncio tasks and
``contextvars``-aware executors carry them too.

Secrets never reach a handler: :class:`RedactFilter` masks values of keys named like api keys,
tokens, passwords and secrets, ``apikey=...`` in text, ``Authorization: apikey ...`` headers and
passwords in URLs.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> log_dir = Path(tempfile.mkdtemp())
    >>> with run_log(log_dir, "r1"), stage_context("ingest"):
    ...     get_logger("demo").info("fetched %d rows", 5, extra={"endpoint": "quote"})
    >>> [(r["stage"], r["message"], r["endpoint"]) for r in read_logs(log_dir, run_id="r1")]
    [('ingest', 'fetched 5 rows', 'quote')]
"""

from __future__ import annotations

import contextvars
import datetime as dt
import glob
import json
import logging
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT_LOGGER = "dataflow"
MASK = "***"

_RUN_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "dataflow_run_id", default=None
)
_STAGE: contextvars.ContextVar[str | None] = contextvars.ContextVar("dataflow_stage", default=None)

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
_SECRET_KEY = re.compile(r"api[_-]?key|token|passw(or)?d|secret|authorization", re.IGNORECASE)
_SECRET_TEXT = [
    # Authorization: apikey XXX / Bearer XXX (Twelve Data takes the key in this header)
    re.compile(
        r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?(?:apikey|bearer|token|basic)\s+)([^\s\"',;&}]+)"
    ),
    # apikey=XXX, "api_key": "XXX", token: XXX, password=XXX, secret_access_key=XXX
    re.compile(
        r"(?i)((?:api[_-]?key|[a-z_]*token|passw(?:or)?d|[a-z_]*secret[a-z_]*)[\"']?\s*[:=]\s*[\"']?)"
        r"([^\s\"',;&}]+)"
    ),
    # scheme://user:PASSWORD@host
    re.compile(r"(://[^:/@\s]+:)([^@\s/]+)(?=@)"),
]


def redact(text: str) -> str:
    """``text`` with secret values replaced by ``***``.

    Example:
        >>> redact("GET /quote?symbol=AAPL&apikey=abc123 postgresql://u:pw@h/db")
        'GET /quote?symbol=AAPL&apikey=*** postgresql://u:***@h/db'
    """
    for pattern in _SECRET_TEXT:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text


def _redact_value(key: str, value: Any) -> Any:
    if _SECRET_KEY.search(key) and value is not None:
        return MASK
    if isinstance(value, dict):
        return {k: _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value("", v) for v in value]
    if isinstance(value, str):
        return redact(value)
    return value


class RedactFilter(logging.Filter):
    """Masks secrets in a record's message, arguments, traceback and ``extra`` fields, in place.

    In place on purpose: every handler after it (console, file) then sees the masked record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            # Formatters reuse a cached exc_text instead of formatting the traceback again.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD:
                record.__dict__[key] = _redact_value(key, value)
        return True


class ContextFilter(logging.Filter):
    """Stamps ``run_id`` and ``stage`` from the context variables onto each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "run_id", None) is None:
            record.run_id = _RUN_ID.get()
        if getattr(record, "stage", None) is None:
            record.stage = _STAGE.get()
        return True


class _RunFilter(logging.Filter):
    """Keeps one run's file to that run when several runs log in one process (threads)."""

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "run_id", None) in (None, self.run_id)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, message, run_id, stage, extras, exc.

    Args:
        run_id: the run id of records logged outside the run's context (e.g. a plain thread).
    """

    def __init__(self, run_id: str | None = None) -> None:
        super().__init__()
        self.run_id = run_id

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "run_id": getattr(record, "run_id", None) or self.run_id,
            "stage": getattr(record, "stage", None),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in out:
                out[key] = _redact_value(key, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = redact(record.exc_text)
        if record.stack_info:
            out["stack"] = redact(record.stack_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def get_logger(name: str) -> logging.Logger:
    """A logger in the ``dataflow`` tree.

    Example:
        >>> get_logger("ingest").name, get_logger("dataflow.sources").name
        ('dataflow.ingest', 'dataflow.sources')
    """
    if name == ROOT_LOGGER or name.startswith(ROOT_LOGGER + "."):
        return logging.getLogger(name)
    return logging.getLogger(f"{ROOT_LOGGER}.{name}")


def configure_logging(
    *, level: str = "INFO", console: bool = True, rich_console: Any = None
) -> None:
    """Set up readable console output (Rich, on stderr) for the ``dataflow`` loggers.

    Calling it again replaces the console handler instead of adding a second one. Pass the
    ``rich_console`` a progress bar draws on, so log lines print above the bar.

    Example:
        >>> configure_logging(level="WARNING", console=False)
    """
    logger = logging.getLogger(ROOT_LOGGER)
    for handler in list(logger.handlers):
        if getattr(handler, "_dataflow_console", False):
            logger.removeHandler(handler)
            handler.close()
    if console:
        from rich.console import Console
        from rich.logging import RichHandler

        handler = RichHandler(
            console=rich_console or Console(stderr=True),
            show_path=False,
            rich_tracebacks=False,
            markup=False,
            log_time_format="[%X]",
        )
        handler.setLevel(_level(level))
        handler.addFilter(RedactFilter())
        handler.addFilter(ContextFilter())
        handler._dataflow_console = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    _CONFIGURED["level"] = _level(level)
    _sync_level(logger)


@contextmanager
def run_log(log_dir: Path, run_id: str, *, level: str = "INFO") -> Iterator[Path]:
    """Write the records of one run as JSON lines while the block runs; yield the file's path.

    Example:
        >>> import tempfile
        >>> with run_log(Path(tempfile.mkdtemp()), "r1") as path:
        ...     path.name
        'r1.jsonl'
    """
    day = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    path = Path(log_dir) / day / f"{run_id}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setLevel(_level(level))
    handler.addFilter(RedactFilter())
    handler.addFilter(ContextFilter())
    handler.addFilter(_RunFilter(run_id))
    handler.setFormatter(JsonFormatter(run_id))
    handler._dataflow_run = run_id  # type: ignore[attr-defined]
    logger = logging.getLogger(ROOT_LOGGER)
    logger.addHandler(handler)
    _sync_level(logger)
    token = _RUN_ID.set(run_id)
    try:
        yield path
    finally:
        _RUN_ID.reset(token)
        logger.removeHandler(handler)
        handler.close()
        _sync_level(logger)


@contextmanager
def stage_context(stage: str) -> Iterator[None]:
    """Tag every record logged inside the block (and tasks started in it) with ``stage``.

    Example:
        >>> with stage_context("transform"):
        ...     current_stage()
        'transform'
    """
    token = _STAGE.set(stage)
    try:
        yield
    finally:
        _STAGE.reset(token)


def current_stage() -> str | None:
    """The stage set by the innermost :func:`stage_context`, if any."""
    return _STAGE.get()


def current_run_id() -> str | None:
    """The run id set by the innermost :func:`run_log`, if any."""
    return _RUN_ID.get()


def prune_logs(log_dir: Path, *, retention_days: int) -> int:
    """Delete log files of days older than ``retention_days``; return how many files went.

    Only ``YYYY-MM-DD`` folders are touched; today's is always kept.

    Example:
        >>> import tempfile
        >>> prune_logs(Path(tempfile.mkdtemp()), retention_days=30)
        0
    """
    root = Path(log_dir)
    if not root.is_dir():
        return 0
    cutoff = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=max(retention_days, 1))
    removed = 0
    for folder in sorted(root.iterdir()):
        day = _folder_day(folder)
        if day is None or day >= cutoff:
            continue
        removed += sum(1 for p in folder.rglob("*") if p.is_file())
        shutil.rmtree(folder)
    return removed


def read_logs(
    log_dir: Path,
    *,
    run_id: str | None = None,
    stage: str | None = None,
    level: str | None = None,
) -> Iterator[dict[str, Any]]:
    """The records of the JSON log files, oldest day first, filtered.

    Args:
        log_dir: the ``logs/`` folder.
        run_id: only this run (a unique prefix works, as file names start with the id).
        stage: only records of this stage.
        level: only records at this level or above (e.g. ``WARNING``).

    Lines that are not JSON (a process killed mid-write) are skipped.

    Example:
        >>> import tempfile
        >>> list(read_logs(Path(tempfile.mkdtemp()), level="ERROR"))
        []
    """
    root = Path(log_dir)
    if not root.is_dir():
        return
    minimum = _level(level) if level else logging.NOTSET
    pattern = f"{glob.escape(run_id)}*.jsonl" if run_id else "*.jsonl"
    folders = sorted(f for f in root.iterdir() if _folder_day(f) is not None)
    for folder in folders:
        for path in sorted(folder.glob(pattern)):
            with path.open(encoding="utf-8") as lines:
                for line in lines:
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue
                    if not isinstance(record, dict):
                        continue
                    if run_id and not str(record.get("run_id") or "").startswith(run_id):
                        continue
                    if stage is not None and record.get("stage") != stage:
                        continue
                    if logging.getLevelName(str(record.get("level"))) < minimum:
                        continue
                    yield record


# --- internals -----------------------------------------------------------------------------------


def _level(name: str) -> int:
    value = logging.getLevelName(name.upper())
    if not isinstance(value, int):
        raise ValueError(f"unknown log level {name!r}; use DEBUG, INFO, WARNING or ERROR")
    return value


_CONFIGURED = {"level": logging.NOTSET}
"""The level `configure_logging` asked for: the logger's own level when no handler is open."""


def _sync_level(logger: logging.Logger) -> None:
    """The logger passes what its most talkative handler wants; handlers filter the rest.

    Recomputed from the handlers open now (never restored from a saved value), so two runs that
    log in one process at once cannot reset each other's level when one of them ends.
    """
    levels = [h.level for h in logger.handlers if _ours(h)]
    logger.setLevel(min(levels) if levels else _CONFIGURED["level"])


def _ours(handler: logging.Handler) -> bool:
    return bool(
        getattr(handler, "_dataflow_console", False) or getattr(handler, "_dataflow_run", None)
    )


def _folder_day(folder: Path) -> dt.date | None:
    if not folder.is_dir():
        return None
    try:
        return dt.date.fromisoformat(folder.name)
    except ValueError:
        return None


__all__ = [
    "ContextFilter",
    "JsonFormatter",
    "RedactFilter",
    "configure_logging",
    "current_run_id",
    "current_stage",
    "get_logger",
    "prune_logs",
    "read_logs",
    "redact",
    "run_log",
    "stage_context",
]
