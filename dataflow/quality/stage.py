"""The ``quality`` and ``publish`` stages: audit what the transform wrote, then publish it.

``dataflow run`` is ingest → transform → quality → publish → crawl. The transform commits to each
table's audit branch (:mod:`dataflow.quality.gate`); :class:`QualityStage` audits every table
whose audit branch is ahead of ``main`` (:func:`dataflow.quality.audit.audit_table`) and records
the DQ metrics; :class:`PublishStage` fast-forwards ``main`` of every approved table.

Metrics (namespace ``Dataflow/Quality``): per audited table (dimensions ``pipeline``, ``table``)
``RulesPassed``, ``RulesFailed`` (FAIL and ERROR), ``Score`` and ``RowsQuarantined``; and
``Score`` with the ``pipeline`` dimension only: the minimum over the tables audited in the run,
which the default alarm ``dataflow-dq-score`` watches. The score is the audited data's, before
any quarantine: a quarantine run still alarms, since the source sent bad rows.

A table blocked by a ``fail`` gate ends the quality stage ``partial`` (the other tables are
still published) and the publish stage ``failed``, so the run fails (exit status 1) with the
table named; ``main`` of that table has not moved.

Example:
    >>> from dataflow.pipeline import run_pipeline   # doctest: +SKIP
    >>> run_pipeline(settings, stages=[QualityStage(), PublishStage()]).status  # doctest: +SKIP
    'succeeded'
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dataflow.crashpoints import crashpoint

if TYPE_CHECKING:
    import datetime as dt

    from pyiceberg.table import Table

    from dataflow.contract import RunContext, StageResult
    from dataflow.quality.audit import TableAudit

log = logging.getLogger("dataflow.quality")

NAMESPACE = "Dataflow/Quality"

__all__ = ["NAMESPACE", "PublishStage", "QualityStage"]


@dataclass
class QualityStage:
    """Pipeline stage ``quality``: audit each table's unpublished snapshot.

    Args:
        now: the instant rules measure time from (default: the current time).
        tables: only these tables (names without namespace; default: every pending table).
            ``dataflow transform --tables`` audits just what it wrote, so an earlier run's
            blocked table does not fail it.
    """

    now: dt.datetime | None = None
    tables: Sequence[str] | None = None
    name: str = field(default="quality", init=False)

    def run(self, ctx: RunContext) -> StageResult:
        """Audit the pending tables; record their DQ metrics; report what was blocked."""
        from dataflow.catalog.iceberg import open_catalog
        from dataflow.contract import StageResult
        from dataflow.engines.duckdb import DuckDBEngine
        from dataflow.quality.audit import audit_table
        from dataflow.quality.gate import pending_tables
        from dataflow.transform.models import discover_models

        started = time.perf_counter()
        catalog = open_catalog(ctx.settings)
        keys = {m.target: m.key for m in discover_models(ctx.settings.project_dir).values()}
        audits: list[TableAudit] = []
        with DuckDBEngine() as engine:
            for table in _chosen(pending_tables(catalog, ctx.settings.catalog.namespace), self):
                name = table.name()[-1]
                audit = audit_table(
                    ctx.settings, ctx.db, table, run_id=ctx.run_id, engine=engine,
                    keys=keys.get(name), now=self.now,
                )  # fmt: skip
                audits.append(audit)
                crashpoint("quality.after_audit")
                _log(audit)
        self._record_metrics(ctx, audits)
        blocked = [a for a in audits if not a.approved]
        checked = [a for a in audits if a.result is not None]
        message = (
            f"{len(checked)} table(s) audited, {sum(a.result.passed for a in checked if a.result)}"
            f" passed; {sum(a.quarantined for a in audits)} row(s) quarantined"
        )
        if blocked:
            message += "; blocked by a fail gate: " + "; ".join(
                f"{a.table} ({', '.join(a.failed_rules)})" for a in blocked
            )
        ctx.metrics.record(NAMESPACE, "Seconds", time.perf_counter() - started, "Seconds")
        crashpoint("quality.after_stage")
        return StageResult(
            status="partial" if blocked else "succeeded",
            rows=sum(a.result.rows for a in checked if a.result),
            message=message,
            details={"tables": {a.table: _details(a) for a in audits}},
        )

    @staticmethod
    def _record_metrics(ctx: RunContext, audits: list[TableAudit]) -> None:
        from dataflow.monitor.metrics import Datapoint

        points = []
        scores = []
        for audit in audits:
            result = audit.result
            if result is None:
                continue
            dims = {"table": audit.table}
            failed = result.count("FAIL") + result.count("ERROR")
            scores.append(result.score)
            points += [
                Datapoint(NAMESPACE, "RulesPassed", float(result.count("PASS")), "Count", dims),
                Datapoint(NAMESPACE, "RulesFailed", float(failed), "Count", dims),
                Datapoint(NAMESPACE, "Score", result.score, "None", dims),
                Datapoint(NAMESPACE, "RowsQuarantined", float(audit.quarantined), "Count", dims),
            ]
        if scores:
            # The pipeline's score is its worst table's: one alarm watches every ruleset.
            points.append(Datapoint(NAMESPACE, "Score", min(scores), "None"))
            points.append(
                Datapoint(
                    NAMESPACE,
                    "RowsQuarantined",
                    float(sum(a.quarantined for a in audits)),
                    "Count",
                )
            )
        ctx.metrics.record_many(points)


@dataclass
class PublishStage:
    """Pipeline stage ``publish``: fast-forward ``main`` of every table the audit approved.

    Args:
        tables: only these tables (default: every pending table), as :class:`QualityStage`.
    """

    tables: Sequence[str] | None = None
    name: str = field(default="publish", init=False)

    def run(self, ctx: RunContext) -> StageResult:
        """Publish approved tables; fail the stage when some table could not be published."""
        from dataflow.catalog.iceberg import open_catalog
        from dataflow.contract import StageResult
        from dataflow.errors import QualityError
        from dataflow.quality.gate import approved_snapshot, pending_tables, publish

        catalog = open_catalog(ctx.settings)
        published: dict[str, int] = {}
        refused: dict[str, str] = {}
        for table in _chosen(pending_tables(catalog, ctx.settings.catalog.namespace), self):
            name = table.name()[-1]
            if approved_snapshot(table) is None:
                refused[name] = "failed its quality gate (or was not audited)"
                continue
            try:
                published[name] = publish(table)
                crashpoint("publish.after_table")
            except QualityError as exc:
                refused[name] = str(exc)
        for name, snapshot in published.items():
            log.info("table %s: published snapshot %s", name, snapshot)
        for name, reason in refused.items():
            log.error("table %s not published: %s", name, reason)
        ctx.metrics.record(NAMESPACE, "TablesPublished", float(len(published)), "Count")
        ctx.metrics.record(NAMESPACE, "TablesBlocked", float(len(refused)), "Count")
        crashpoint("publish.after_stage")
        message = f"{len(published)} table(s) published"
        if refused:
            message += "; not published: " + "; ".join(f"{n} {r}" for n, r in refused.items())
        return StageResult(
            status="failed" if refused else "succeeded",
            errors=len(refused),
            message=message,
            details={"published": {n: str(s) for n, s in published.items()}, "refused": refused},
        )


def _chosen(tables: list[Table], stage: QualityStage | PublishStage) -> list[Table]:
    """The pending tables the stage was limited to (all when it was not)."""
    if stage.tables is None:
        return tables
    wanted = set(stage.tables)
    return [t for t in tables if t.name()[-1] in wanted]


def _log(audit: TableAudit) -> None:
    if audit.result is None:
        log.info("table %s: no ruleset, published unaudited", audit.table)
    elif audit.result.passed:
        log.info("table %s: all %d rule(s) passed", audit.table, len(audit.result.rule_results))
    else:
        log.warning(
            "table %s: ruleset %s failed (policy %s): %s",
            audit.table,
            audit.ruleset.name if audit.ruleset else "?",
            audit.policy,
            "; ".join(audit.failed_rules),
        )


def _details(audit: TableAudit) -> dict[str, Any]:
    result = audit.result
    return {
        "snapshot_id": str(audit.snapshot_id),
        "ruleset": str(audit.ruleset) if audit.ruleset else None,
        "policy": str(audit.policy) if audit.policy else None,
        "score": result.score if result else None,
        "result_id": result.result_id if result else None,
        "failed_rules": audit.failed_rules,
        "quarantined": audit.quarantined,
        "approved": audit.approved,
    }
