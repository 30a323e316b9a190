"""Write → audit → publish with Iceberg branches: readers never see data that failed its gate.

Readers (queries, dashboards, the crawler, DuckDB, Athena) read a table's ``main`` branch. In
``dataflow run`` the transform commits each batch, rows and bookmark together, to the branch
:data:`AUDIT_BRANCH` instead, cut afresh from ``main`` for every table it touches. The quality
stage audits the audit branch's head; when the table passes its gate (or its policy lets it
through) it marks that snapshot with the branch :data:`APPROVED_BRANCH`. The publish stage then
fast-forwards ``main`` to the approved snapshot — one atomic catalog commit — and drops both
branches. A snapshot is on ``main`` only once approved.

The hand-off between stages is the table itself (its refs), not memory: a run that stops after
the transform or the audit leaves ``main`` untouched, and the next run's transform cuts the audit
branch again from ``main``, whose bookmark does not hold the unpublished files — so they are
transformed again. A table blocked by a ``fail`` gate keeps its audit branch until then, so the
rejected snapshot can be inspected (``FOR VERSION AS OF`` its id).

Iceberg branches: https://iceberg.apache.org/docs/latest/branching/ (pyiceberg 0.12 commits to a
branch with ``update_snapshot(branch=…)`` and moves ``main`` with ``manage_snapshots()``).

Example:
    >>> start_audit(table)  # doctest: +SKIP
    >>> pending_snapshot(table) is None  # doctest: +SKIP
    True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dataflow.errors import QualityError

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

AUDIT_BRANCH = "audit"
"""The branch the pipeline's transform writes to and the quality stage audits."""
APPROVED_BRANCH = "audit-approved"
"""The branch marking the audited snapshot the publish stage may move ``main`` to."""

__all__ = [
    "APPROVED_BRANCH",
    "AUDIT_BRANCH",
    "approve",
    "approved_snapshot",
    "head_id",
    "pending_snapshot",
    "pending_tables",
    "publish",
    "start_audit",
]


def head_id(table: Table, ref: str = "main") -> int | None:
    """The snapshot id at the head of ``ref`` (None: no such ref, or an empty table).

    Example:
        >>> head_id(table, AUDIT_BRANCH)  # doctest: +SKIP
        4312...
    """
    snapshot = table.snapshot_by_name(ref)
    return None if snapshot is None else snapshot.snapshot_id


def start_audit(table: Table, branch: str = AUDIT_BRANCH) -> None:
    """Point ``branch`` at ``main``'s head (dropping unpublished work) and drop any approval.

    On a table never published (no ``main``) the branch is removed instead: the next commit
    to it starts afresh (see :meth:`dataflow.engines.duckdb.DuckDBEngine.upsert`).
    """
    main = head_id(table)
    refs = table.metadata.refs
    if head_id(table, branch) == main and APPROVED_BRANCH not in refs:
        return
    with table.manage_snapshots() as manage:
        if APPROVED_BRANCH in refs:
            manage.remove_branch(APPROVED_BRANCH)
        if main is not None:
            manage.create_branch(main, branch)
        elif branch in refs:
            manage.remove_branch(branch)


def pending_snapshot(table: Table, branch: str = AUDIT_BRANCH) -> int | None:
    """The audit branch's head when it differs from ``main`` (new data to audit), else None."""
    audit = head_id(table, branch)
    return None if audit is None or audit == head_id(table) else audit


def pending_tables(catalog: Catalog, namespace: str) -> list[Table]:
    """The tables of ``namespace`` whose audit branch holds unpublished data, by name."""
    from dataflow.catalog.iceberg import load_table

    if (namespace,) not in {tuple(n) for n in catalog.list_namespaces()}:
        return []
    found = []
    for identifier in sorted(catalog.list_tables(namespace)):
        table = load_table(catalog, namespace, identifier[-1])
        if table is not None and pending_snapshot(table) is not None:
            found.append(table)
    return found


def approve(table: Table, snapshot_id: int) -> None:
    """Mark ``snapshot_id`` (an audited head of the audit branch) as publishable."""
    with table.manage_snapshots() as manage:
        manage.create_branch(snapshot_id, APPROVED_BRANCH)


def approved_snapshot(table: Table) -> int | None:
    """The snapshot the quality stage approved, if any."""
    return head_id(table, APPROVED_BRANCH)


def publish(table: Table) -> int:
    """Fast-forward ``main`` to the approved snapshot, drop the audit refs; returns its id.

    Raises:
        QualityError: nothing approved, or ``main`` moved since the audit branch was cut (a
            fast-forward would lose those commits): run the pipeline again.
    """
    from pyiceberg.table.snapshots import ancestors_of

    approved = table.snapshot_by_name(APPROVED_BRANCH)
    name = ".".join(table.name())
    if approved is None:
        raise QualityError(f"table {name}: no audited snapshot to publish — run the quality stage")
    main = head_id(table)
    if main is not None and main not in {
        s.snapshot_id for s in ancestors_of(approved, table.metadata)
    }:
        raise QualityError(
            f"table {name}: main moved since the audit branch was cut (another writer?) — "
            "run `dataflow run` again to transform and audit on top of it"
        )
    with table.manage_snapshots() as manage:
        # set_current_snapshot asserts main's current id, so a concurrent commit fails this.
        manage.set_current_snapshot(snapshot_id=approved.snapshot_id)
        manage.remove_branch(APPROVED_BRANCH)
        if AUDIT_BRANCH in table.metadata.refs:
            manage.remove_branch(AUDIT_BRANCH)
    return approved.snapshot_id
