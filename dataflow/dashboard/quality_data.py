"""What the Data quality page reads: rulesets and their policies, latest outcomes, quarantined
rows, evaluation history and rule metrics.

Example:
    >>> from dataflow.metadata import open_metadata
    >>> db = open_metadata("sqlite://")
    >>> latest_outcomes(db), dq_metric_keys(db, "market.quotes")
    ([], [])
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from dataflow.dashboard.data import clean_tables, is_quarantine, iso, snapshot_rows

if TYPE_CHECKING:
    from dataflow.config import Settings
    from dataflow.metadata.db import MetadataDB


def ruleset_listing(settings: Settings) -> list[dict[str, Any]]:
    """Each table's ruleset (project or built-in), its policy and where the policy comes from.

    Tables: the clean zone's, and every table a built-in or project ruleset names. A table
    without a ruleset is listed with ``source: None`` (it is published unaudited).

    Example:
        >>> import tempfile
        >>> from dataflow.config import load_settings
        >>> rows = ruleset_listing(load_settings(tempfile.mkdtemp(), env={}))
        >>> rows[0]["table"], rows[0]["source"], rows[0]["policy"], rows[0]["policy_source"]
        ('cryptocurrencies', 'built-in', 'warn', 'default')
    """
    from dataflow.errors import DataflowError
    from dataflow.quality.dqdl import load_ruleset
    from dataflow.quality.policy import BUILTIN_RULESETS, POLICY_KEY, find_ruleset, policy_for

    project = Path(settings.project_dir) / "quality"
    names = {p.stem for p in BUILTIN_RULESETS.glob("*.dqdl")}
    names |= {p.stem for p in project.glob("*.dqdl")} if project.is_dir() else set()
    names |= set(clean_tables(settings))
    found = []
    for table in sorted(names):
        path = find_ruleset(settings, table)
        row: dict[str, Any] = {"table": table, "source": None, "path": None, "policy": None}
        row |= {"policy_source": None, "rules": 0, "text": None, "error": None}
        found.append(row)
        if path is None:
            continue
        builtin = path.parent == BUILTIN_RULESETS
        row["source"] = "built-in" if builtin else "project"
        row["path"] = f"{'dataflow/quality/rulesets' if builtin else 'quality'}/{path.name}"
        row["text"] = path.read_text(encoding="utf-8")
        try:
            ruleset = load_ruleset(path)
            row["policy"] = str(policy_for(table, ruleset, settings))
        except DataflowError as exc:
            row["error"] = str(exc)
            continue
        row["rules"] = len(ruleset.rules)
        if table in settings.quality.policies:
            row["policy_source"] = f"quality.policies.{table} in dataflow.yaml"
        elif ruleset.metadata.get(POLICY_KEY) is not None:
            row["policy_source"] = f'ruleset Metadata "{POLICY_KEY}"'
        elif settings.quality.default_policy is not None:
            row["policy_source"] = "quality.default_policy in dataflow.yaml"
        else:
            row["policy_source"] = "default"
    return found


def latest_outcomes(db: MetadataDB) -> list[dict[str, Any]]:
    """The newest evaluation of every dataset, with every rule's outcome and message.

    Example:
        >>> from dataflow.metadata import open_metadata
        >>> latest_outcomes(open_metadata("sqlite://"))
        []
    """
    from dataflow.metadata.schema import dq_evaluations
    from dataflow.quality.history import HistoryStore

    with db.read() as conn:
        datasets = conn.execute(sa.select(dq_evaluations.c.dataset).distinct()).scalars().all()
    store = HistoryStore(db)
    found = []
    for dataset in sorted(datasets):
        (evaluation,) = store.evaluations(dataset=dataset, limit=1)
        failed = evaluation.count("FAIL")
        errored = evaluation.count("ERROR")
        found.append(
            {
                "dataset": dataset,
                "table": dataset.rpartition(".")[2],
                "result_id": evaluation.result_id,
                "ruleset_name": evaluation.ruleset_name,
                "completed_on": iso(evaluation.completed_on),
                "run_id": evaluation.run_id,
                "snapshot_id": evaluation.snapshot_id,
                "score": evaluation.score,
                "rules_passed": evaluation.count("PASS"),
                "rules_failed": failed,
                "rules_errored": errored,
                "rows": evaluation.rows,
                "result": "PASS" if evaluation.passed else "FAIL",
                "rules": [
                    {
                        "name": r.name,
                        "description": r.description,
                        "result": r.result,
                        "message": r.message,
                        "metrics": dict(r.metrics),
                    }
                    for r in evaluation.rule_results
                ],
            }
        )
    return found


def quarantine_counts(settings: Settings) -> list[dict[str, Any]]:
    """Rows in every ``<table>__quarantine`` table, in total and per run that put them there.

    The per-run split needs the run id column the quality gate writes (``_dq_run_id``);
    only that column is read.

    Example:
        >>> import tempfile
        >>> from dataflow.config import load_settings
        >>> quarantine_counts(load_settings(tempfile.mkdtemp(), env={}))
        []
    """
    from collections import Counter

    from dataflow.catalog.iceberg import open_catalog
    from dataflow.quality.audit import QUARANTINE_SUFFIX

    catalog = open_catalog(settings)
    namespace = settings.catalog.namespace
    if (namespace,) not in {tuple(n) for n in catalog.list_namespaces()}:
        return []
    found = []
    for identifier in sorted(catalog.list_tables(namespace)):
        name = identifier[-1]
        if not is_quarantine(name):
            continue
        table = catalog.load_table(identifier)
        run_column = next(
            (c for c in ("_dq_run_id", "_run_id") if c in table.schema().column_names), None
        )
        by_run: list[dict[str, Any]] = []
        if run_column is not None and table.current_snapshot() is not None:
            values = table.scan(selected_fields=(run_column,)).to_arrow().column(run_column)
            counts = Counter(values.to_pylist())
            by_run = [
                {"run_id": run, "rows": n}
                for run, n in sorted(counts.items(), key=lambda kv: str(kv[0]), reverse=True)
            ]
        found.append(
            {
                "table": name,
                "source_table": name.removesuffix(QUARANTINE_SUFFIX),
                "rows": snapshot_rows(table),
                "run_column": run_column,
                "by_run": by_run,
            }
        )
    return found


def dq_history(db: MetadataDB, dataset: str, *, limit: int = 50) -> list[dict[str, Any]]:
    """The score and rule counts of a dataset's evaluations, oldest first.

    The fields of ``dataflow dq history --format json`` (which lists newest first).

    Example:
        >>> from dataflow.metadata import open_metadata
        >>> dq_history(open_metadata("sqlite://"), "market.time_series")
        []
    """
    from dataflow.quality.history import HistoryStore

    evaluations = HistoryStore(db).evaluations(dataset=dataset, limit=limit)
    return [{**e.summary(), "CompletedOn": iso(e.completed_on)} for e in reversed(evaluations)]


def dq_metric_keys(db: MetadataDB, dataset: str) -> list[str]:
    """The rule and analyzer metric keys recorded for a dataset (``Column.close.Completeness``).

    Example:
        >>> from dataflow.metadata import open_metadata
        >>> dq_metric_keys(open_metadata("sqlite://"), "market.time_series")
        []
    """
    from dataflow.metadata.schema import dq_metrics

    query = (
        sa.select(dq_metrics.c.key)
        .where(dq_metrics.c.dataset == dataset)
        .distinct()
        .order_by(dq_metrics.c.key)
    )
    with db.read() as conn:
        return [str(k) for k in conn.execute(query).scalars()]


def dq_metric_series(
    db: MetadataDB, dataset: str, key: str, *, limit: int = 200
) -> list[dict[str, Any]]:
    """One DQ metric of a dataset over its recent evaluations, oldest first.

    Example:
        >>> from dataflow.metadata import open_metadata
        >>> dq_metric_series(open_metadata("sqlite://"), "market.t", "Dataset.*.RowCount")
        []
    """
    from dataflow.metadata.schema import dq_metrics as m

    query = (
        sa.select(m.c.recorded_at, m.c.value, m.c.result_id)
        .where(m.c.dataset == dataset, m.c.key == key)
        .order_by(m.c.recorded_at.desc(), m.c.id.desc())
        .limit(limit)
    )
    with db.read() as conn:
        rows = conn.execute(query).all()
    return [
        {"time": iso(at), "value": value, "result_id": result_id}
        for at, value, result_id in reversed(rows)
    ]


# --- monitoring page -------------------------------------------------------------------------


__all__ = [
    "dq_history",
    "dq_metric_keys",
    "dq_metric_series",
    "latest_outcomes",
    "quarantine_counts",
    "ruleset_listing",
]
