"""Named queries (Athena's ``CreateNamedQuery``): ``queries/<name>.sql`` files in the project.

A named query is plain SQL; its name is the file stem. Values are given at run time with
``--param k=v`` and bound as DuckDB prepared-statement parameters — ``$k`` in the SQL (or ``?``
in order) — never pasted into the text, so a value cannot change what the statement does.

``k=v`` values are typed by their look: integers, decimals (as floats), ``true``/``false``,
``null``, dates (``2024-05-01``) and ISO-8601 timestamps become those types; anything else,
or a value in single quotes (``k='0042'``), is a string.

Example:
    >>> parse_params(["symbol=AAPL", "n=5", "since=2024-05-01", "code='0042'"])
    {'symbol': 'AAPL', 'n': 5, 'since': datetime.date(2024, 5, 1), 'code': '0042'}
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dataflow.errors import ConfigError
from dataflow.query.config import query_config

if TYPE_CHECKING:
    from dataflow.config import Settings

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?$")


@dataclass(frozen=True)
class NamedQuery:
    """A saved query: its name, file and SQL."""

    name: str
    path: Path
    sql: str


def check_name(name: str) -> str:
    """A valid query name (1–128 characters: letters, digits, ``_ . -``; Athena's length).

    Example:
        >>> check_name("ohlc_daily")
        'ohlc_daily'
    """
    if not _NAME.match(name) or name.endswith(".sql"):
        raise ConfigError(
            f"query name {name!r}: use 1-128 letters, digits, '_', '.' or '-' (no .sql suffix)"
        )
    return name


def list_named(settings: Settings) -> list[NamedQuery]:
    """Every named query of the project, by name."""
    folder = query_config(settings).queries_path(settings)
    if not folder.is_dir():
        return []
    return [_read(path) for path in sorted(folder.glob("*.sql")) if _NAME.match(path.stem)]


def load_named(settings: Settings, name: str) -> NamedQuery:
    """The named query ``name``.

    Raises:
        ConfigError: there is none; the message lists the names there are.
    """
    path = query_config(settings).queries_path(settings) / f"{check_name(name)}.sql"
    if not path.is_file():
        known = ", ".join(q.name for q in list_named(settings)) or "none yet"
        raise ConfigError(
            f"no named query {name!r} (known: {known}) — save one with "
            f"`dataflow query save {name} -f FILE.sql`"
        )
    return _read(path)


def save_named(settings: Settings, name: str, sql: str, *, overwrite: bool = False) -> NamedQuery:
    """Save ``sql`` as ``queries/<name>.sql``.

    Raises:
        ConfigError: a bad name, empty SQL, or the query exists and ``overwrite`` is false.
    """
    folder = query_config(settings).queries_path(settings)
    path = folder / f"{check_name(name)}.sql"
    if not sql.strip():
        raise ConfigError(f"named query {name!r}: the SQL is empty")
    if path.exists() and not overwrite:
        raise ConfigError(f"named query {name!r} exists ({path}) — use --force to replace it")
    folder.mkdir(parents=True, exist_ok=True)
    text = sql.strip() + "\n"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return NamedQuery(name, path, text)


def parse_params(items: Iterable[str]) -> dict[str, Any]:
    """``k=v`` strings as typed parameter values (see the module docstring).

    Raises:
        ConfigError: an item without ``=``, a bad name, or a name given twice.

    Example:
        >>> parse_params(["x=1.5", "ok=true", "at=2024-05-01T10:00:00Z"])["at"].tzinfo
        datetime.timezone.utc
    """
    params: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        name = name.strip().lstrip("$:")
        if not sep or not _PARAM_NAME.match(name):
            raise ConfigError(f"--param {item!r}: write name=value, e.g. --param symbol=AAPL")
        if name in params:
            raise ConfigError(f"--param {name} is given twice")
        params[name] = typed_value(raw)
    return params


def typed_value(raw: str) -> Any:
    """One ``--param`` value with its type (see the module docstring).

    Example:
        >>> typed_value("42"), typed_value("'42'"), typed_value("null")
        (42, '42', None)
    """
    text = raw.strip()
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "null":
        return None
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text):
        return float(text)
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            return text
    if re.match(r"^\d{4}-\d{2}-\d{2}[T ]\d", text):
        try:
            moment = dt.datetime.fromisoformat(text)
        except ValueError:
            return text
        return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    return text


def _read(path: Path) -> NamedQuery:
    try:
        return NamedQuery(path.stem, path, path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"named query {path}: cannot read it ({exc.__class__.__name__})") from exc


__all__ = [
    "NamedQuery",
    "check_name",
    "list_named",
    "load_named",
    "parse_params",
    "save_named",
    "typed_value",
]
