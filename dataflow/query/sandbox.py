"""The lockdown every connection that runs user SQL gets: queries, and DQDL rules.

A locked connection reads only the folders and files it is given (``allowed_directories`` /
``allowed_paths`` with ``enable_external_access = false``): no other file, no ``COPY ... TO``,
no ``ATTACH``, no extension installed or loaded, and — with ``lock_configuration`` — no
``SET`` that could undo any of it (https://duckdb.org/docs/stable/operations_manual/securing_duckdb/overview).

:func:`lock_views` locks a connection whose views were made by our own code (the datasets of a
DQDL evaluation) to exactly what those views read.

Example:
    >>> import duckdb
    >>> con = duckdb.connect()
    >>> lock_down(con)
    >>> con.sql("SELECT * FROM read_csv('/etc/passwd')")
    Traceback (most recent call last):
    ...
    _duckdb.PermissionException: Permission Error: Cannot access file "/etc/passwd" - file \
system operations are disabled by configuration
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

import duckdb

from dataflow.query.views import quote_literal

# String literals, and quoted names (a replacement scan's path is kept as "/dir/file.parquet").
_LITERAL = re.compile(r"'((?:[^']|'')*)'|\"((?:[^\"]|\"\")*)\"")
_GLOB = re.compile(r"[*?\[{]")


def lock_down(
    con: duckdb.DuckDBPyConnection,
    *,
    directories: Iterable[str] = (),
    paths: Iterable[str] = (),
) -> None:
    """Lock ``con``: only ``directories`` (and their subfolders) and ``paths`` stay readable.

    Settings of a DuckDB database are shared by all its cursors: lock after the last setting.
    """
    # Nothing is ever downloaded: extensions not bundled in the wheel stay unavailable.
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    folders = sorted({os.path.join(d, "") for d in directories})
    files = sorted(set(paths))
    if folders:
        con.execute(f"SET allowed_directories = [{', '.join(map(quote_literal, folders))}]")
    if files:
        con.execute(f"SET allowed_paths = [{', '.join(map(quote_literal, files))}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def is_locked(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether ``con``'s configuration is locked already."""
    row = con.execute("SELECT current_setting('lock_configuration')").fetchall()
    return bool(row and row[0][0])


def view_sources(con: duckdb.DuckDBPyConnection) -> tuple[set[str], set[str]]:
    """``(directories, files)`` the views of ``con`` read: the path literals of their SQL.

    A glob (``/w/t/data/*.parquet``) allows its fixed folder; a folder allows itself.
    """
    rows = con.execute("SELECT sql FROM duckdb_views() WHERE NOT internal").fetchall()
    directories: set[str] = set()
    files: set[str] = set()
    for (sql,) in rows:
        for match in _LITERAL.finditer(str(sql or "")):
            single, double = match.groups()
            literal = single.replace("''", "'") if single is not None else double.replace('""', '"')
            if "/" not in literal and "\\" not in literal:
                continue  # option values and names, not paths
            glob = _GLOB.search(literal)
            if glob:
                fixed = literal[: glob.start()].rsplit("/", 1)[0] or "/"
                directories |= _spellings(fixed)
            elif "://" in literal and not literal.startswith("file://"):
                files.add(literal)
            else:
                local = literal.removeprefix("file://")
                (directories if Path(local).is_dir() else files).update(_spellings(local))
    return directories, files


def lock_views(con: duckdb.DuckDBPyConnection) -> None:
    """Lock ``con`` to what its views read (once: a locked connection is left as it is)."""
    if is_locked(con):
        return
    directories, files = view_sources(con)
    lock_down(con, directories=directories, paths=files)


def _spellings(text: str) -> set[str]:
    """A path as written and resolved (DuckDB checks the path as the view spells it)."""
    if "://" in text and not text.startswith("file://"):
        return {text}
    local = text.removeprefix("file://")
    return {local, str(Path(local).resolve())}


__all__ = ["is_locked", "lock_down", "lock_views", "view_sources"]
