"""The engine interface: what a stage may ask of an execution engine.

A stage never talks to DuckDB or Spark directly. It hands an engine Arrow data (the raw envelopes
of a batch, flattened), SQL text in the DuckDB dialect (the contract: models, quality rules and
queries are written in it), and Iceberg tables to write. An engine whose dialect differs
translates the SQL with sqlglot (:func:`translate`), so the same model text runs everywhere.

An engine is a small class plus data: :class:`EngineCapabilities` says what it can do, and the
registry (:mod:`dataflow.engines.registry`) finds it by name.

Example:
    >>> translate("SELECT rec->>'open' AS o FROM raw", "spark")
    "SELECT GET_JSON_OBJECT(rec, '$.open') AS o FROM raw"
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from dataflow.errors import ConfigError

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.table import Table

CONTRACT_DIALECT = "duckdb"
"""The SQL dialect models, rules and queries are written in."""


@dataclass(frozen=True)
class EngineCapabilities:
    """What an engine can do; stages read these instead of checking engine names.

    Attributes:
        dialect: the sqlglot dialect of the SQL the engine executes.
        distributed: work is spread over several machines.
        json_functions: understands the contract's JSON operators (``->>``, ``json_keys``).
        lambdas: understands list lambdas (``list_transform(xs, x -> …)``).
        iceberg_write: can commit Arrow data to Iceberg tables itself.
        max_batch_rows: a hint: the most rows one batch should hold in memory.
    """

    dialect: str = CONTRACT_DIALECT
    distributed: bool = False
    json_functions: bool = True
    lambdas: bool = True
    iceberg_write: bool = True
    max_batch_rows: int = 2_000_000


@dataclass
class WriteResult:
    """What one Iceberg commit did.

    Attributes:
        rows_written: rows in the data files added (winners of the upsert).
        rows_replaced: existing rows an upsert replaced with newer ones.
        rows_skipped: incoming rows older than (or identical to) what the table holds.
        snapshot_id: the table's current snapshot after the commit (None: nothing committed).
    """

    rows_written: int = 0
    rows_replaced: int = 0
    rows_skipped: int = 0
    snapshot_id: int | None = None
    details: dict[str, int] = field(default_factory=dict)


@runtime_checkable
class Engine(Protocol):
    """An execution engine: relations in, SQL run, Iceberg out.

    Implementations: :class:`dataflow.engines.duckdb.DuckDBEngine`. A Spark engine implements the
    same methods (reading envelopes with ``spark.read``, writing with ``MERGE INTO``) without any
    change to the stages.
    """

    name: str
    capabilities: EngineCapabilities

    def register(self, name: str, data: pa.Table) -> None:
        """Make Arrow data queryable as the relation ``name`` (replacing an earlier one)."""
        ...

    def unregister(self, name: str) -> None:
        """Forget the relation ``name`` (no error when it does not exist)."""
        ...

    def sql(self, text: str, *, dialect: str = CONTRACT_DIALECT) -> pa.Table:
        """Run SQL (translated from ``dialect`` when needed) and return the result as Arrow."""
        ...

    def run_model(self, text: str, *, relations: Mapping[str, pa.Table]) -> pa.Table:
        """Run a model's SELECT over the given relations and return its rows."""
        ...

    def upsert(
        self,
        table: Table,
        rows: pa.Table,
        *,
        keys: Sequence[str],
        snapshot_properties: Mapping[str, str],
        replace_all: bool = False,
        branch: str | None = None,
    ) -> WriteResult:
        """Commit ``rows`` to ``table`` in one Iceberg commit carrying ``snapshot_properties``.

        On equal key columns the row with the latest ``_received_at`` (then ``_raw_key``,
        ``_raw_line``) wins; equal lineage changes nothing. ``replace_all`` first empties the
        table in the same commit (a full refresh). ``branch`` commits to that Iceberg branch
        instead of ``main`` (the write-audit-publish branch of the quality gate).
        """
        ...

    def close(self) -> None:
        """Release connections and memory."""
        ...


def translate(text: str, dialect: str, *, source: str = CONTRACT_DIALECT) -> str:
    """Translate SQL from the contract dialect to ``dialect`` with sqlglot.

    Raises:
        ConfigError: the SQL cannot be parsed in ``source``, with the parser's message.

    Example:
        >>> translate("SELECT TRY_CAST(x AS DOUBLE) FROM t", "duckdb")
        'SELECT TRY_CAST(x AS DOUBLE) FROM t'
    """
    if dialect == source:
        return text
    import sqlglot
    from sqlglot.errors import ParseError

    try:
        statements = sqlglot.transpile(text, read=source, write=dialect)
    except ParseError as exc:
        raise ConfigError(f"SQL cannot be parsed as {source}: {exc}") from None
    return ";\n".join(statements)


def run_over(engine: Engine, text: str, relations: Mapping[str, pa.Table]) -> pa.Table:
    """``engine.run_model`` for any engine: register ``relations``, run ``text``, unregister."""
    for name, data in relations.items():
        engine.register(name, data)
    try:
        return engine.sql(text)
    finally:
        for name in relations:
            engine.unregister(name)


__all__ = [
    "CONTRACT_DIALECT",
    "Engine",
    "EngineCapabilities",
    "WriteResult",
    "run_over",
    "translate",
]
