"""The interactive SQL shell behind ``dataflow sql``: prompt, history, completion, meta commands.

Statements end with ``;`` and may span lines (or share one); each runs through
:class:`~dataflow.query.QueryRunner`, so it gets an id, lands in ``dataflow query history`` and
has a result file, and prints as a Rich table. Meta commands, as in psql::

    \\d               the tables (database.table, kind, columns)
    \\d db.table      the columns of one table
    \\dialect NAME    duckdb, athena (= trino), trino or spark for the next statements
    \\q               quit (so does Ctrl-D)
    \\?               this list

On a terminal the prompt has readline editing, a history file (``.dataflow_sql_history`` in
the project's state folder) and Tab completion of table names (``db.table``), column names (of
the tables the statement names, else of every table), keywords and meta commands. When standard
input is not a terminal the shell reads statements from it without prompting
(``echo "SELECT 1;" | dataflow sql``), and a last statement without ``;`` still runs.

Example:
    >>> split_statements("SELECT 1; SELECT ';' AS s;\\nSELECT")
    (['SELECT 1', "SELECT ';' AS s"], 'SELECT')
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from dataflow.errors import DataflowError

if TYPE_CHECKING:
    from rich.console import Console

    from dataflow.config import Settings
    from dataflow.metadata.db import MetadataDB
    from dataflow.query.execution import QueryRunner

HISTORY_FILE = ".dataflow_sql_history"
"""The shell's readline history, in the project's state folder."""
HISTORY_LENGTH = 1000
DIALECTS = ("duckdb", "athena", "trino", "spark")
META_COMMANDS = ("\\d", "\\dialect", "\\q", "\\?")
KEYWORDS = (
    "SELECT", "FROM", "WHERE", "GROUP BY", "ORDER BY", "HAVING", "LIMIT", "WITH", "AS", "AND",
    "OR", "NOT", "IN", "BETWEEN", "LIKE", "JOIN", "LEFT JOIN", "ON", "DISTINCT", "COUNT", "SUM",
    "AVG", "MIN", "MAX", "CASE", "WHEN", "THEN", "ELSE", "END", "OVER", "PARTITION BY",
    "QUALIFY", "UNION ALL", "DESCRIBE", "SHOW TABLES", "EXPLAIN", "DESC", "ASC", "NULL", "IS",
)  # fmt: skip
_WORD_DELIMS = " \t\n()[],;=<>!'\"`+-*/|%"
# A table name in a statement: after FROM or JOIN, possibly qualified.
_TABLE_AFTER = re.compile(r"\b(?:from|join)\s+([\w.\"]+)", re.IGNORECASE)
HELP = (
    "statements end with ;  meta commands: \\d (tables), \\d db.table (columns), "
    "\\dialect duckdb|athena|trino|spark, \\q (quit), \\? (this help)"
)


def split_statements(text: str) -> tuple[list[str], str]:
    """Split ``text`` at the ``;`` outside quotes and comments: whole statements and the rest.

    Example:
        >>> split_statements("SELECT 'a;b' -- c;\\n;  SELECT 2")
        (["SELECT 'a;b' -- c;"], 'SELECT 2')
    """
    statements: list[str] = []
    start, index, quote, size = 0, 0, "", len(text)
    while index < size:
        char = text[index]
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif text.startswith("--", index):
            end = text.find("\n", index)
            index = size if end < 0 else end
            continue
        elif text.startswith("/*", index):
            end = text.find("*/", index + 2)
            index = size if end < 0 else end + 2
            continue
        elif char == ";":
            statement = text[start:index].strip()
            if statement:
                statements.append(statement)
            start = index + 1
        index += 1
    return statements, text[start:].strip()


@dataclass
class CatalogNames:
    """The names the shell completes: ``db.table`` -> column names, loaded once per refresh."""

    default_database: str
    tables: dict[str, list[str]] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, settings: Settings, db: MetadataDB, default_database: str) -> CatalogNames:
        """Every table of the catalog with its columns (partition keys of external tables too)."""
        from dataflow.catalog.tables import DataCatalog

        tables: dict[str, list[str]] = {}
        kinds: dict[str, str] = {}
        for info in DataCatalog(settings, db).tables():
            names = [c["name"] for c in info.columns]
            if info.type == "external":
                names += [c["name"] for c in info.partition_keys]
            tables[info.full_name.lower()] = names
            kinds[info.full_name.lower()] = info.type
        return cls(default_database.lower(), tables, kinds)

    def columns_of(self, name: str) -> list[str] | None:
        """The columns of ``db.table`` or of ``table`` in the default database."""
        key = name.strip('"').lower()
        if "." not in key:
            key = f"{self.default_database}.{key}"
        return self.tables.get(key)


def complete(names: CatalogNames, text: str, line: str) -> list[str]:
    """The completions of the word ``text`` being typed at the end of ``line`` (sorted).

    ``line`` is the statement so far (earlier lines included): its tables decide which
    columns are offered.

    Example:
        >>> names = CatalogNames("market", {"market.time_series": ["symbol", "ts"]})
        >>> complete(names, "market.ti", "SELECT * FROM market.ti")
        ['market.time_series']
        >>> complete(names, "sy", "SELECT sy")
        ['symbol']
    """
    stripped = line.lstrip()
    if stripped.startswith("\\"):
        return _complete_meta(names, text, stripped)
    lowered = text.lower()
    found: set[str] = set()
    if "." in text:
        head, _, tail = text.rpartition(".")
        if head.lower() in {t.split(".")[0] for t in names.tables}:
            found |= {t for t in names.tables if t.startswith(lowered)}
        else:  # alias.column or table.column: offer the columns of the statement's tables
            found |= {
                f"{head}.{c}"
                for c in _statement_columns(names, line)
                if c.lower().startswith(tail.lower())
            }
        return sorted(found)
    databases = {t.split(".")[0] for t in names.tables}
    found |= {f"{d}." for d in databases if d.startswith(lowered)}
    found |= {t for t in names.tables if t.startswith(lowered)}
    found |= {
        t.split(".", 1)[1]
        for t in names.tables
        if t.startswith(f"{names.default_database}.") and t.split(".", 1)[1].startswith(lowered)
    }
    found |= {c for c in _statement_columns(names, line) if c.lower().startswith(lowered)}
    upper = not text or text[:1].isupper()
    found |= {k if upper else k.lower() for k in KEYWORDS if k.lower().startswith(lowered) and text}
    return sorted(found)


def _complete_meta(names: CatalogNames, text: str, line: str) -> list[str]:
    parts = line.split()
    if len(parts) <= 1 and not line.endswith(" "):
        return sorted(c for c in META_COMMANDS if c.startswith(text or "\\"))
    if parts[0] == "\\d":
        return sorted(t for t in names.tables if t.startswith(text.lower()))
    if parts[0] == "\\dialect":
        return [d for d in DIALECTS if d.startswith(text.lower())]
    return []


def _statement_columns(names: CatalogNames, line: str) -> list[str]:
    named = [names.columns_of(m) for m in _TABLE_AFTER.findall(line)]
    chosen = [cols for cols in named if cols is not None]
    if not chosen:
        chosen = list(names.tables.values())
    return sorted({c for cols in chosen for c in cols})


class SqlShell:
    """The ``dataflow sql`` loop over a :class:`QueryRunner`.

    Args:
        runner: runs each statement (history, result files).
        console: where tables and messages are printed.
        dialect: the dialect of the statements until ``\\dialect`` changes it.
        workgroup: the workgroup of every statement.
        max_rows: rows shown per result (the result file holds them all).

    Example:
        >>> with QueryRunner(settings) as runner:  # doctest: +SKIP
        ...     SqlShell(runner, console).run_lines(["SELECT 1 AS one;"])
        0
    """

    def __init__(
        self,
        runner: QueryRunner,
        console: Console,
        *,
        dialect: str = "duckdb",
        workgroup: str | None = None,
        max_rows: int = 100,
    ) -> None:
        self.runner = runner
        self.console = console
        self.dialect = dialect.lower()
        self.workgroup = workgroup
        self.max_rows = max_rows
        self.failures = 0
        self.done = False
        self._buffer = ""
        self._names: CatalogNames | None = None

    # --- names -----------------------------------------------------------------------------------

    @property
    def names(self) -> CatalogNames:
        """The catalog's tables and columns (loaded on first use)."""
        if self._names is None:
            self._names = CatalogNames.load(
                self.runner.settings, self.runner.db, self.runner.session.default_database
            )
        return self._names

    def completions(self, text: str, line: str) -> list[str]:
        """:func:`complete` with the statement typed so far before ``line``."""
        return complete(self.names, text, f"{self._buffer}\n{line}" if self._buffer else line)

    # --- input -----------------------------------------------------------------------------------

    @property
    def prompt(self) -> str:
        """``duckdb> `` for a new statement, ``     -> `` for its next lines."""
        head = f"{self.dialect}> "
        return " " * (len(head) - 3) + "-> " if self._buffer else head

    def feed(self, line: str) -> None:
        """One line of input: a meta command, or SQL run statement by statement at each ``;``."""
        if not self._buffer.strip() and line.strip().startswith("\\"):
            self.meta(line.strip())
            return
        text = f"{self._buffer}\n{line}" if self._buffer else line
        statements, self._buffer = split_statements(text)
        for statement in statements:
            self.execute(statement)
            if self.done:
                return

    def reset(self) -> None:
        """Drop the statement being typed (Ctrl-C)."""
        self._buffer = ""

    def finish(self) -> None:
        """End of input: run what is left without a ``;``."""
        rest, self._buffer = self._buffer, ""
        if rest.strip() and not self.done:
            self.execute(rest)

    def run_lines(self, lines: Iterable[str]) -> int:
        """Feed every line, then :meth:`finish`; the number of statements that failed."""
        for line in lines:
            self.feed(line.rstrip("\n"))
            if self.done:
                break
        self.finish()
        return self.failures

    # --- commands --------------------------------------------------------------------------------

    def meta(self, command: str) -> None:
        """Run a backslash command (``\\d``, ``\\d db.t``, ``\\dialect X``, ``\\q``, ``\\?``)."""
        parts = command.split()
        name, args = parts[0], parts[1:]
        if name in ("\\q", "\\quit"):
            self.done = True
        elif name == "\\d" and not args:
            self._print(
                "tables",
                ["table", "kind", "columns"],
                [
                    [n, self.names.kinds.get(n, ""), len(c)]
                    for n, c in sorted(self.names.tables.items())
                ],
            )
        elif name == "\\d":
            self._describe(args[0])
        elif name == "\\dialect":
            self._set_dialect(args)
        elif name in ("\\?", "\\h", "\\help"):
            self._say(HELP)
        else:
            self._fail(f"unknown command {name} — {HELP}")

    def execute(self, statement: str) -> None:
        """Run one statement through the runner and print its rows; errors are printed."""
        try:
            outcome = self.runner.run(statement, dialect=self.dialect, workgroup=self.workgroup)
        except DataflowError as exc:
            self._fail(str(exc))
            return
        result, execution = outcome.result, outcome.execution
        self._print(None, result.columns, result.rows[: self.max_rows])
        shown = f"{result.row_count} row(s)"
        if result.row_count > self.max_rows:
            shown = f"first {self.max_rows} of {result.row_count} row(s) shown"
        scanned = execution.bytes_scanned or 0
        self._say(
            f"{shown} in {(execution.total_ms or 0) / 1000:.2f} s, {scanned} bytes scanned "
            f"— query {execution.query_id}"
        )
        if execution.substatement_type != "SELECT":
            self._names = None  # CTAS made a table: complete its name from now on

    def _describe(self, text: str) -> None:
        from dataflow.catalog.tables import DataCatalog, split_table_name

        try:
            database, name = split_table_name(text, self.names.default_database)
            info = DataCatalog(self.runner.settings, self.runner.db).show(database, name)
        except DataflowError as exc:
            self._fail(str(exc))
            return
        rows = [[c["name"], c["type"], ""] for c in info.columns]
        if info.type == "external":
            rows += [[k["name"], k["type"], "partition key"] for k in info.partition_keys]
        else:
            rows += [
                ["", "", f"partition: {k['type']}({k.get('source', '')})"]
                for k in info.partition_keys
            ]
        self._print(info.full_name, ["column", "type", ""], rows)

    def _set_dialect(self, args: list[str]) -> None:
        if not args:
            self._say(f"dialect: {self.dialect}")
            return
        wanted = args[0].lower().rstrip(";")
        if wanted not in DIALECTS:
            self._fail(f"unknown dialect {wanted!r}: use one of {', '.join(DIALECTS)}")
            return
        self.dialect = wanted
        self._say(f"dialect: {wanted}")

    # --- output ----------------------------------------------------------------------------------

    def _print(self, title: str | None, columns: list[str], rows: Iterable[Iterable[Any]]) -> None:
        from rich.table import Table

        table = Table(title=title)
        for column in columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*["NULL" if cell is None else str(cell) for cell in row])
        self.console.print(table)

    def _say(self, message: str) -> None:
        self.console.print(message, markup=False, highlight=False)

    def _fail(self, message: str) -> None:
        self.failures += 1
        self.console.print(f"error: {message}", markup=False, highlight=False, style="red")


# --- the terminal -------------------------------------------------------------------------------


def history_path(settings: Settings) -> Path:
    """``<state dir>/.dataflow_sql_history``."""
    return settings.state_dir / HISTORY_FILE


def interactive(shell: SqlShell, history: Path) -> None:
    """Prompt with readline (history file, Tab completion) until ``\\q`` or Ctrl-D."""
    try:
        import readline
    except ImportError:  # no readline (Windows): plain input() still works
        readline = None  # type: ignore[assignment]
    if readline is not None:
        _setup_readline(readline, shell, history)
    try:
        while not shell.done:
            try:
                line = input(shell.prompt)
            except EOFError:
                print()
                break
            except KeyboardInterrupt:  # Ctrl-C drops the statement being typed, as psql does
                print()
                shell.reset()
                continue
            if readline is not None and line.strip():
                readline.add_history(line)
            shell.feed(line)
        shell.finish()
    finally:
        if readline is not None:
            try:
                history.parent.mkdir(parents=True, exist_ok=True)
                readline.write_history_file(str(history))
            except OSError:
                pass  # a read-only state folder loses the history, not the session


def _setup_readline(readline: Any, shell: SqlShell, history: Path) -> None:
    readline.set_auto_history(False)
    readline.set_history_length(HISTORY_LENGTH)
    if history.exists():
        with contextlib.suppress(OSError):
            readline.read_history_file(str(history))
    matches: list[str] = []

    def completer(text: str, state: int) -> str | None:
        if state == 0:
            try:
                matches[:] = shell.completions(text, readline.get_line_buffer())
            except Exception:
                matches[:] = []
        return matches[state] if state < len(matches) else None

    readline.set_completer(completer)
    readline.set_completer_delims(_WORD_DELIMS)
    if "libedit" in (readline.__doc__ or ""):
        readline.parse_and_bind("bind ^I rl_complete")
    else:
        readline.parse_and_bind("tab: complete")


def read_stdin(stream: TextIO | None = None) -> Iterator[str]:
    """The lines of standard input (for the non-terminal mode)."""
    yield from stream if stream is not None else sys.stdin


__all__ = [
    "HISTORY_FILE",
    "CatalogNames",
    "SqlShell",
    "complete",
    "history_path",
    "interactive",
    "read_stdin",
    "split_statements",
]
