"""Evaluation history in the metadata database: outcomes, metrics, and what dynamic rules read.

Every evaluation is one ``dq_evaluations`` row (ruleset name and hash, dataset, snapshot, run id,
evaluation context, score, aggregated metrics, analyzer results), its rule outcomes are
``dq_rule_results`` rows, and every metric (rules' and analyzers') is a ``dq_metrics`` row.
``last(k)`` of a dynamic rule reads the same metric key of the same dataset, ruleset name and
evaluation context, newest first — as Glue keys its history by ruleset and context.

Example:
    >>> from dataflow.metadata import open_metadata
    >>> store = HistoryStore(open_metadata("sqlite://"))
    >>> store.series("market.t", "prices").values("Dataset.*.RowCount", 3)
    []
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from dataflow.metadata.db import MetadataDB
from dataflow.metadata.schema import dq_evaluations, dq_metrics, dq_rule_results, utcnow
from dataflow.quality.outcomes import (
    DEFAULT_CONTEXT,
    AnalyzerResult,
    EvaluationResult,
    RuleResult,
)

__all__ = ["HistoryStore", "MetricSeries", "ruleset_hash"]


def ruleset_hash(text: str) -> str:
    """The SHA-256 of a ruleset's text, to tell which version of a ruleset ran.

    Example:
        >>> ruleset_hash("Rules = [ RowCount > 0 ]")[:12]
        'bd22cff46543'
    """
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class MetricSeries:
    """The history one evaluation reads (a ``MetricHistory`` for the evaluator).

    ``before`` excludes evaluations recorded after it (none by default): the current
    evaluation is recorded only once it has finished, so it never reads itself.
    """

    store: HistoryStore
    dataset: str
    ruleset_name: str
    evaluation_context: str = DEFAULT_CONTEXT

    def values(self, key: str, limit: int) -> list[float]:
        """Up to ``limit`` earlier values of ``key``, most recent first."""
        return self.store.metric_values(
            self.dataset, self.ruleset_name, key, limit, self.evaluation_context
        )


class HistoryStore:
    """Read and write evaluations in the metadata database."""

    def __init__(self, db: MetadataDB) -> None:
        self.db = db

    def series(
        self, dataset: str, ruleset_name: str, context: str = DEFAULT_CONTEXT
    ) -> MetricSeries:
        """The history of one dataset and ruleset, for :func:`dataflow.quality.evaluate`."""
        return MetricSeries(self, dataset, ruleset_name, context)

    def record(self, result: EvaluationResult) -> str:
        """Store an evaluation; returns its result id (set on ``result`` too).

        Example:
            >>> store.record(result)  # doctest: +SKIP
            'dqresult-3f2a...'
        """
        result_id = result.result_id or f"dqresult-{uuid.uuid4().hex}"
        result.result_id = result_id
        now = utcnow()
        started = result.started_on or now
        completed = result.completed_on or now
        with self.db.begin() as conn:
            conn.execute(
                dq_evaluations.insert().values(
                    result_id=result_id,
                    ruleset_name=result.ruleset_name,
                    ruleset_hash=result.ruleset_hash or "",
                    dataset=result.dataset,
                    snapshot_id=result.snapshot_id,
                    run_id=result.run_id,
                    evaluation_context=result.evaluation_context,
                    started_on=started,
                    completed_on=completed,
                    score=result.score,
                    rules_passed=result.count("PASS"),
                    rules_failed=result.count("FAIL"),
                    rules_errored=result.count("ERROR"),
                    aggregated_metrics=result.aggregated_metrics(),
                    analyzer_results=[a.to_glue() for a in result.analyzer_results],
                )
            )
            if result.rule_results:
                conn.execute(
                    dq_rule_results.insert(),
                    [
                        {
                            "result_id": result_id,
                            "seq": seq,
                            "name": r.name,
                            "description": r.description,
                            "result": r.result,
                            "message": r.message,
                            "evaluated_metrics": r.metrics,
                            "labels": r.labels,
                        }
                        for seq, r in enumerate(result.rule_results)
                    ],
                )
            metrics = result.metrics()
            if metrics:
                conn.execute(
                    dq_metrics.insert(),
                    [
                        {
                            "result_id": result_id,
                            "dataset": result.dataset,
                            "ruleset_name": result.ruleset_name,
                            "evaluation_context": result.evaluation_context,
                            "key": key,
                            "value": value,
                            "recorded_at": completed,
                        }
                        for key, value in metrics.items()
                    ],
                )
        return result_id

    def metric_values(
        self,
        dataset: str,
        ruleset_name: str,
        key: str,
        limit: int,
        context: str = DEFAULT_CONTEXT,
    ) -> list[float]:
        """Up to ``limit`` recorded values of one metric, most recent first."""
        query = (
            sa.select(dq_metrics.c.value)
            .where(
                dq_metrics.c.dataset == dataset,
                dq_metrics.c.ruleset_name == ruleset_name,
                dq_metrics.c.evaluation_context == context,
                dq_metrics.c.key == key,
            )
            .order_by(dq_metrics.c.recorded_at.desc(), dq_metrics.c.id.desc())
            .limit(limit)
        )
        with self.db.read() as conn:
            return [float(v) for v in conn.execute(query).scalars()]

    def evaluations(
        self,
        *,
        dataset: str | None = None,
        run_id: str | None = None,
        limit: int = 50,
    ) -> list[EvaluationResult]:
        """Recorded evaluations, newest first, with their rule outcomes.

        Example:
            >>> [e.score for e in store.evaluations(dataset="market.time_series")]  # doctest: +SKIP
            [1.0, 0.75]
        """
        query = (
            sa.select(dq_evaluations).order_by(dq_evaluations.c.completed_on.desc()).limit(limit)
        )
        if dataset is not None:
            query = query.where(dq_evaluations.c.dataset == dataset)
        if run_id is not None:
            query = query.where(dq_evaluations.c.run_id == run_id)
        with self.db.read() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
            ids = [r["result_id"] for r in rows]
            outcomes: dict[str, list[RuleResult]] = {i: [] for i in ids}
            if ids:
                found = conn.execute(
                    sa.select(dq_rule_results)
                    .where(dq_rule_results.c.result_id.in_(ids))
                    .order_by(dq_rule_results.c.result_id, dq_rule_results.c.seq)
                )
                for r in found:
                    outcomes[r.result_id].append(
                        RuleResult(
                            r.name,
                            r.description,
                            r.result,
                            r.message,
                            dict(r.evaluated_metrics),
                            dict(r.labels),
                        )
                    )
        return [_evaluation(row, outcomes[row["result_id"]]) for row in rows]


def _evaluation(row: dict[str, Any], rules: list[RuleResult]) -> EvaluationResult:
    aggregated = row["aggregated_metrics"]
    processed = int(aggregated.get("TotalRowsProcessed", 0))
    passed = int(aggregated.get("TotalRowsPassed", processed))
    return EvaluationResult(
        ruleset_name=row["ruleset_name"],
        dataset=row["dataset"],
        rule_results=rules,
        analyzer_results=[
            AnalyzerResult(
                a["Name"], a["Description"], dict(a["EvaluatedMetrics"]), a.get("EvaluationMessage")
            )
            for a in row["analyzer_results"]
        ],
        rows=processed,
        known_rows_passed=passed,
        evaluation_context=row["evaluation_context"],
        started_on=row["started_on"],
        completed_on=row["completed_on"],
        result_id=row["result_id"],
        run_id=row["run_id"],
        snapshot_id=row["snapshot_id"],
        ruleset_hash=row["ruleset_hash"],
    )
