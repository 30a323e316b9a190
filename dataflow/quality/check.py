"""Check a ruleset against a table or a data file, record the outcome: what ``dq check`` runs.

Example:
    >>> outcome = check_file("prices.dqdl", data="prices.csv")  # doctest: +SKIP
    >>> outcome.result.score  # doctest: +SKIP
    1.0
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from dataflow.errors import ConfigError, StorageError
from dataflow.quality.datasets import connect, register_file, register_table
from dataflow.quality.dqdl import parse_ruleset
from dataflow.quality.evaluate import Evaluator, MetricHistory
from dataflow.quality.freshness import ruleset_text
from dataflow.quality.history import HistoryStore, ruleset_hash
from dataflow.quality.outcomes import DEFAULT_CONTEXT, EvaluationResult
from dataflow.quality.special import PRIMARY

if TYPE_CHECKING:
    from dataflow.config import Settings
    from dataflow.metadata.db import MetadataDB

_FILE_SUFFIXES = {".csv", ".tsv", ".parquet", ".json", ".jsonl", ".ndjson", ".gz"}

__all__ = ["CheckOutcome", "check_ruleset", "is_table_name", "write_row_level"]


@dataclass
class CheckOutcome:
    """An evaluation and the evaluator that made it (for row-level outcomes)."""

    result: EvaluationResult
    evaluator: Evaluator


def is_table_name(value: str) -> bool:
    """``db.table`` rather than a file path (``--reference ref=market.quotes``).

    Example:
        >>> is_table_name("market.quotes"), is_table_name("data/quotes.csv")
        (True, False)
    """
    return (
        "/" not in value
        and "\\" not in value
        and Path(value).suffix.lower() not in _FILE_SUFFIXES
        and not Path(value).exists()
    )


def check_ruleset(
    ruleset_path: str | Path,
    *,
    table: str | None = None,
    data: str | Path | None = None,
    references: Mapping[str, str] | None = None,
    settings: Settings | None = None,
    db: MetadataDB | None = None,
    run_id: str | None = None,
    evaluation_context: str = DEFAULT_CONTEXT,
    now: dt.datetime | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
) -> CheckOutcome:
    """Evaluate a ruleset file over a catalog table or a data file; record it when ``db`` is given.

    Args:
        ruleset_path: the ``.dqdl`` file; its stem names the ruleset (unless its Metadata has a
            ``Name``).
        table: ``db.table`` of the catalog (needs ``settings`` and ``db``).
        data: a CSV, Parquet or JSON file instead.
        references: alias -> ``db.table`` or file path, for the reference-dataset rules.
        db: the metadata database: history for dynamic rules is read from it, and the
            evaluation is recorded in it. Without it nothing is recorded and ``last()`` is 0.

    Raises:
        ConfigError: neither or both of table and data, a table without a project.
        DqdlParseError: the ruleset does not parse.
    """
    if (table is None) == (data is None):
        raise ConfigError("give either a table (--table DB.T) or a data file (--data PATH)")
    path = Path(ruleset_path)
    # A built-in ruleset gets the freshness window of the project's schedule (freshness.py).
    text = ruleset_text(path, settings, now=now)
    ruleset = parse_ruleset(text)
    name = str(ruleset.metadata.get("Name") or path.stem)
    con = con or connect()
    snapshot: str | None = None
    if table is not None:
        if settings is None or db is None:
            raise ConfigError(f"checking table {table} needs a project (--project DIR)")
        snapshot = register_table(con, settings, db, table, PRIMARY)
        dataset = table.lower() if "." in table else f"{settings.catalog.namespace}.{table}"
    else:
        assert data is not None
        register_file(con, data, PRIMARY)
        dataset = str(Path(data).resolve())
    for alias, source in (references or {}).items():
        if is_table_name(source):
            if settings is None or db is None:
                raise ConfigError(f"reference {alias}={source} is a table: it needs a project")
            register_table(con, settings, db, source, alias)
        else:
            register_file(con, source, alias)
    store = HistoryStore(db) if db is not None else None
    history: MetricHistory | None = (
        store.series(dataset, name, evaluation_context) if store is not None else None
    )
    evaluator = Evaluator(
        ruleset,
        con,
        references=(references or {}).keys(),
        history=history,
        now=now,
        s3=settings.storage.s3 if settings is not None else None,
    )
    result = evaluator.run(
        dataset=dataset, ruleset_name=name, evaluation_context=evaluation_context
    )
    result.snapshot_id, result.run_id, result.ruleset_hash = snapshot, run_id, ruleset_hash(text)
    if store is not None:
        store.record(result)
    return CheckOutcome(result, evaluator)


def write_row_level(evaluator: Evaluator, path: str | Path) -> int:
    """Write the row-level outcomes (the data + Glue's four columns) to a Parquet file.

    Returns:
        The number of rows written.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    sql = evaluator.row_level_sql()
    import pyarrow.parquet as pq

    # The evaluation's connection is locked (it reads only its datasets): Arrow writes the file.
    try:
        table = evaluator.con.sql(sql).arrow().read_all()
        pq.write_table(table, str(target))
    except (duckdb.Error, OSError) as exc:
        raise StorageError(f"cannot write {target}: {str(exc).splitlines()[0]}") from exc
    return int(table.num_rows)
