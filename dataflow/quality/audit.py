"""Audit one table's unpublished snapshot: evaluate its ruleset, apply the policy, approve or not.

The ruleset is evaluated over the whole table as of the audit branch's head (published rows plus
the new ones), so dataset-level rules — key uniqueness, row count against history — judge what
readers would see after publishing. The evaluation is recorded in the DQ history with the run id
and that snapshot's id.

With :attr:`Policy.QUARANTINE`, the rows failing a row-level rule (Glue's row-level outcomes,
``DataQualityEvaluationResult = 'Failed'``) are upserted into ``<table>__quarantine`` — the row,
``_dq_run_id``, ``_dq_ruleset``, ``_dq_rules`` (rule names, ``Rule_3``) and ``_dq_rule_texts``
(the rules themselves) — then deleted from the audit branch in one commit, before approval.
Quarantine is written first: a crash in between leaves ``main`` untouched, and the next run
upserts the same rows again (keyed on the table's key), so nothing is duplicated.

Example:
    >>> audit = audit_table(settings, db, table, run_id="r1", engine=engine)  # doctest: +SKIP
    >>> audit.approved, audit.quarantined  # doctest: +SKIP
    (True, 3)
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from dataflow.quality.gate import AUDIT_BRANCH, approve, pending_snapshot
from dataflow.quality.policy import Policy, find_ruleset, policy_for

if TYPE_CHECKING:
    from pyiceberg.table import Table

    from dataflow.config import Settings
    from dataflow.engines.duckdb import DuckDBEngine
    from dataflow.metadata.db import MetadataDB
    from dataflow.quality.evaluate import Evaluator
    from dataflow.quality.outcomes import EvaluationResult

log = logging.getLogger("dataflow.quality")

QUARANTINE_SUFFIX = "__quarantine"
"""``<table>__quarantine``: the rows a quarantine policy took out of ``<table>``."""
DQ_COLUMNS = ("_dq_run_id", "_dq_ruleset", "_dq_rules", "_dq_rule_texts", "_dq_quarantined_at")
"""The columns a quarantine table adds to the table's own."""

__all__ = ["DQ_COLUMNS", "QUARANTINE_SUFFIX", "TableAudit", "audit_table"]


@dataclass
class TableAudit:
    """What the audit of one table decided.

    Attributes:
        table: the table name (no namespace).
        snapshot_id: the audited snapshot (head of the audit branch).
        ruleset: the ruleset file (None: the table has none, and is published unaudited).
        policy: the ruleset's policy.
        result: the evaluation (None without a ruleset).
        quarantined: rows moved to ``<table>__quarantine``.
        approved: the publish stage may publish the table.
    """

    table: str
    snapshot_id: int
    ruleset: Path | None = None
    policy: Policy | None = None
    result: EvaluationResult | None = None
    quarantined: int = 0
    approved: bool = True

    @property
    def failed_rules(self) -> list[str]:
        """``Rule_3: IsComplete "close"`` for each rule that did not pass."""
        if self.result is None:
            return []
        return [
            f"{r.name}: {r.description}" for r in self.result.rule_results if r.result != "PASS"
        ]


def audit_table(
    settings: Settings,
    db: MetadataDB,
    table: Table,
    *,
    run_id: str,
    engine: DuckDBEngine,
    keys: Sequence[str] | None = None,
    now: dt.datetime | None = None,
) -> TableAudit:
    """Audit ``table``'s audit-branch head and approve it unless its ``fail`` gate blocks it.

    Args:
        keys: the table's key columns (its model's); quarantine needs them.
        now: the instant rules measure time from (default: now).

    Raises:
        DqdlParseError: the table's ruleset does not parse.
        ConfigError: an unknown policy.
    """
    name = table.name()[-1]
    snapshot = pending_snapshot(table)
    if snapshot is None:
        raise ValueError(f"table {name} has nothing to audit")
    audit = TableAudit(table=name, snapshot_id=snapshot)
    audit.ruleset = find_ruleset(settings, name)
    if audit.ruleset is None:
        approve(table, snapshot)
        return audit
    from dataflow.quality.datasets import connect
    from dataflow.quality.dqdl import parse_ruleset
    from dataflow.quality.evaluate import Evaluator
    from dataflow.quality.freshness import ruleset_text
    from dataflow.quality.history import HistoryStore, ruleset_hash
    from dataflow.quality.special import PRIMARY
    from dataflow.query.views import iceberg_select, quote_identifier

    # A built-in ruleset gets the freshness window of the project's schedule (freshness.py).
    text = ruleset_text(audit.ruleset, settings, now=now)
    ruleset = parse_ruleset(text)
    audit.policy = policy_for(name, ruleset, settings)
    ruleset_name = str(ruleset.metadata.get("Name") or audit.ruleset.stem)
    dataset = f"{settings.catalog.namespace}.{name}".lower()
    con = connect()
    try:
        body = iceberg_select(
            table, con, remote=settings.warehouse_is_remote, scan=table.scan(snapshot_id=snapshot)
        )
        con.execute(f"CREATE OR REPLACE VIEW {quote_identifier(PRIMARY)} AS {body}")
        store = HistoryStore(db)
        evaluator = Evaluator(
            ruleset,
            con,
            history=store.series(dataset, ruleset_name),
            now=now,
            s3=settings.storage.s3,
        )
        result = evaluator.run(dataset=dataset, ruleset_name=ruleset_name)
        result.snapshot_id, result.run_id = str(snapshot), run_id
        result.ruleset_hash = ruleset_hash(text)
        store.record(result)
        audit.result = result
        if result.passed or audit.policy is Policy.WARN:
            approve(table, snapshot)
            return audit
        if audit.policy is Policy.FAIL:
            audit.approved = False
            return audit
        if not keys:
            log.warning("table %s: no key columns known, nothing quarantined", name)
            approve(table, snapshot)
            return audit
        failing = _failing_rows(evaluator, result, run_id, ruleset_name)
    finally:
        con.close()
    if failing.num_rows:
        audit.quarantined = _quarantine(engine, table, failing, list(keys), run_id)
    approve(table, pending_snapshot(table) or snapshot)
    return audit


def _failing_rows(
    evaluator: Evaluator, result: EvaluationResult, run_id: str, ruleset_name: str
) -> pa.Table:
    """The rows some row-level rule failed, with the ``_dq_*`` columns."""
    rows = evaluator.con.sql(
        f"SELECT * FROM ({evaluator.row_level_sql()}) WHERE DataQualityEvaluationResult = 'Failed'"
    ).to_arrow_table()
    texts = rows.column("DataQualityRulesFail").to_pylist()
    # Row-level outcomes list rule texts (Glue's Descriptions); the quarantine names them too.
    names = {r.description: r.name for r in result.rule_results}
    rows = rows.drop_columns(
        [
            "DataQualityRulesPass",
            "DataQualityRulesFail",
            "DataQualityRulesSkip",
            "DataQualityEvaluationResult",
        ]
    )
    count = rows.num_rows
    at = dt.datetime.now(dt.UTC)
    extra = {
        "_dq_run_id": pa.array([run_id] * count, pa.string()),
        "_dq_ruleset": pa.array([ruleset_name] * count, pa.string()),
        "_dq_rules": pa.array(
            [[names.get(t, t) for t in found or []] for found in texts], pa.list_(pa.string())
        ),
        "_dq_rule_texts": pa.array([list(found or []) for found in texts], pa.list_(pa.string())),
        "_dq_quarantined_at": pa.array([at] * count, pa.timestamp("us", tz="UTC")),
    }
    for column, values in extra.items():
        rows = rows.append_column(column, values)
    return rows


def _quarantine(
    engine: DuckDBEngine, table: Table, failing: pa.Table, keys: list[str], run_id: str
) -> int:
    """Upsert ``failing`` into ``<table>__quarantine``, then delete it from the audit branch."""
    from dataflow.catalog.iceberg import create_table, load_table

    namespace, name = table.name()[-2], table.name()[-1]
    catalog = table.catalog
    target = f"{name}{QUARANTINE_SUFFIX}"
    quarantine = load_table(catalog, namespace, target)
    if quarantine is None:
        quarantine = create_table(
            catalog, namespace, target, failing.schema,
            properties={"comment": f"Rows of {name} that failed a row-level rule of its ruleset."},
        )  # fmt: skip
    elif any(c not in quarantine.schema().column_names for c in failing.column_names):
        with quarantine.update_schema() as update:
            update.union_by_name(failing.schema)
        quarantine = quarantine.refresh()
    props = {"dataflow.run_id": run_id}
    engine.upsert(quarantine, failing, keys=keys, snapshot_properties=props)
    deleted = engine.delete_keys(
        table, failing, keys=keys, snapshot_properties={**props, "dataflow.quality": "quarantine"},
        branch=AUDIT_BRANCH,
    )  # fmt: skip
    log.warning("table %s: %d row(s) failed row-level rules, moved to %s", name, deleted, target)
    return deleted
