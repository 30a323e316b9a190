"""The transform stage: raw zone -> Iceberg clean tables through SQL models (Glue ETL + bookmarks).

For each model, in dependency order: list the raw files of its source endpoints, drop those its
table's bookmark says are consumed, and process the rest in bounded batches of whole files
(``transform.batch_files`` files and ``transform.batch_bytes`` bytes at most). Each batch is
flattened into the relation ``raw``, run through the model's SQL, split into good and quarantined
rows, and committed: quarantine first, then rows + bookmark in one Iceberg commit.

``--full-refresh`` rebuilds a table from every raw file: the first batch replaces the table's
content in its commit, the following ones upsert.

Example:
    >>> from dataflow.pipeline import RunOptions, run_pipeline   # doctest: +SKIP
    >>> run_pipeline(settings, RunOptions(), stages=[TransformStage()]).status  # doctest: +SKIP
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
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

    from dataflow.config import TransformSettings
    from dataflow.contract import RunContext, StageResult
    from dataflow.engines.base import Engine
    from dataflow.transform.models import Model

log = logging.getLogger("dataflow.transform")

NAMESPACE = "Dataflow/Transform"


REBUILD_BRANCH = "dataflow-rebuild"
"""The branch a ``--full-refresh`` without the quality gate builds a table on (then published)."""


def _drop_branch(table: Table, name: str) -> None:
    if name in table.metadata.refs:
        with table.manage_snapshots() as manage:
            manage.remove_branch(name)


def _publish_rebuild(table: Table | None) -> None:
    """Point ``main`` at the rebuilt table's head and drop the rebuild branch, in one commit."""
    if table is None:
        return
    head = table.snapshot_by_name(REBUILD_BRANCH)
    if head is None:
        return
    with table.manage_snapshots() as manage:
        manage.set_current_snapshot(snapshot_id=head.snapshot_id)
        manage.remove_branch(REBUILD_BRANCH)


@dataclass
class TableStats:
    """What the stage did to one table (also its metrics)."""

    table: str
    files: int = 0
    bytes: int = 0
    rows_in: int = 0
    rows_out: int = 0
    quarantined: int = 0
    replaced: int = 0
    skipped: int = 0
    duplicates: int = 0
    superseded: int = 0
    unfolded: int = 0
    set_aside: int = 0
    commits: int = 0
    error_envelopes: int = 0
    non_json: int = 0
    symbol_errors: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """Plain data for stage details and JSON output."""
        return dict(self.__dict__)


@dataclass
class TransformStage:
    """Pipeline stage ``transform``.

    Args:
        tables: only the models writing these tables (default: all enabled models).
        full_refresh: rebuild from all raw files (also set by ``RunOptions.full_refresh``).
        settings: overrides of the stage settings (default: read from the project settings).
        branch: commit to this Iceberg branch, cut afresh from ``main`` for each table, instead
            of ``main`` itself; ``dataflow run`` writes to the audit branch that the quality
            stage audits and the publish stage fast-forwards ``main`` to
            (:mod:`dataflow.quality.gate`). None (the default): write to ``main``.
    """

    tables: Sequence[str] | None = None
    full_refresh: bool = False
    settings: TransformSettings | None = None
    branch: str | None = None
    name: str = field(default="transform", init=False)

    def run(self, ctx: RunContext) -> StageResult:
        """Run the selected models; return counts for the run record."""
        from dataflow.catalog.iceberg import open_catalog
        from dataflow.contract import StageResult
        from dataflow.engines.registry import get_engine
        from dataflow.transform.models import discover_models, select_models

        config = self.settings or ctx.settings.transform
        namespace = ctx.settings.catalog.namespace
        models = select_models(discover_models(ctx.settings.project_dir), self.tables)
        full_refresh = self.full_refresh or ctx.options.full_refresh
        catalog = open_catalog(ctx.settings)
        if self.branch is not None:
            self._start_quarantine_audit(catalog, namespace, self.branch)
        engine = get_engine(config.engine or ctx.settings.engine, settings=ctx.settings)
        stats: list[TableStats] = []
        try:
            for model in models:
                started = time.perf_counter()
                table_stats = self._run_model(
                    ctx, engine, catalog, namespace, model, config, full_refresh
                )
                table_stats.seconds = round(time.perf_counter() - started, 3)
                stats.append(table_stats)
                self._record_metrics(ctx, table_stats)
        finally:
            engine.close()
        total = TableStats(table="*")
        for item in stats:
            for name in (
                "files", "bytes", "rows_in", "rows_out", "quarantined", "commits",
                "duplicates", "superseded", "set_aside",
            ):  # fmt: skip
                setattr(total, name, getattr(total, name) + getattr(item, name))
            total.error_envelopes += item.error_envelopes
            total.non_json += item.non_json
        message = (
            f"{total.rows_out} rows into {sum(1 for s in stats if s.commits)} table(s) from "
            f"{total.files} file(s); {total.quarantined} quarantined"
        )
        if total.duplicates or total.superseded:
            message += (
                f"; {total.duplicates} identical duplicate(s) collapsed, "
                f"{total.superseded} superseded by a newer response"
            )
        if total.set_aside:
            message += f"; {total.set_aside} unreadable raw file(s)/line(s) set aside"
        return StageResult(
            rows=total.rows_out,
            bytes=total.bytes,
            errors=0,
            message=message,
            details={
                "tables": {s.table: s.as_dict() for s in stats},
                "quarantined": total.quarantined,
                "duplicates": total.duplicates,
                "superseded": total.superseded,
                "set_aside": total.set_aside,
                "error_envelopes": total.error_envelopes,
                "non_json": total.non_json,
                "full_refresh": full_refresh,
            },
        )

    def _run_model(
        self,
        ctx: RunContext,
        engine: Engine,
        catalog: Catalog,
        namespace: str,
        model: Model,
        config: TransformSettings,
        full_refresh: bool,
    ) -> TableStats:
        from dataflow.catalog.iceberg import load_table
        from dataflow.storage import list_raw
        from dataflow.transform.bookmarks import read_bookmark
        from dataflow.transform.flatten import plan_batches

        stats = TableStats(table=model.target)
        files = sorted(
            (info for source in model.sources for info in list_raw(ctx.store, endpoint=source)),
            key=lambda info: info.key,
        )
        table = load_table(catalog, namespace, model.target)
        if table is not None and REBUILD_BRANCH in table.metadata.refs:
            _drop_branch(table, REBUILD_BRANCH)  # a rebuild a crash cut short: never published
        if self.branch is not None and table is not None:
            from dataflow.quality.gate import start_audit

            # Unpublished work of an earlier run (blocked by its gate, or cut short) is dropped:
            # main's bookmark does not hold its files, so they are transformed again below.
            start_audit(table, self.branch)
        consumed = set() if full_refresh or table is None else read_bookmark(table)
        pending = [info for info in files if info.key not in consumed]
        if not pending:
            log.info("table %s: no new raw files", model.target)
            return stats
        if full_refresh:
            consumed = set()
            self._clear_quarantine(catalog, namespace, model.target, self.branch)
        batches = plan_batches(pending, max_files=config.batch_files, max_bytes=config.batch_bytes)
        log.info(
            "table %s: %d new raw file(s) in %d batch(es)", model.target, len(pending), len(batches)
        )
        # A rebuild straight to main in several commits would show readers a half-built table:
        # it is built on a branch of its own, and main moves to its head in one commit.
        rebuild = full_refresh and self.branch is None and len(batches) > 1
        branch = REBUILD_BRANCH if rebuild else self.branch
        if rebuild and table is not None:
            _drop_branch(table, REBUILD_BRANCH)
        for number, batch in enumerate(batches):
            consumed |= {info.key for info in batch}
            self._run_batch(
                ctx, engine, catalog, namespace, model, batch, consumed, stats,
                replace_all=full_refresh and number == 0, branch=branch,
            )  # fmt: skip
        if rebuild:
            _publish_rebuild(load_table(catalog, namespace, model.target))
        return stats

    def _run_batch(
        self,
        ctx: RunContext,
        engine: Engine,
        catalog: Catalog,
        namespace: str,
        model: Model,
        batch: Sequence[Any],
        consumed: set[str],
        stats: TableStats,
        *,
        replace_all: bool,
        branch: str | None,
    ) -> None:
        import pyarrow as pa

        from dataflow.transform.duplicates import drop_fold_columns, resolve_duplicates
        from dataflow.transform.flatten import flatten_files
        from dataflow.transform.raw_view import BODIES, raw_relation
        from dataflow.transform.writer import (
            QUARANTINE_KEY,
            check_output,
            commit_rows,
            ensure_quarantine,
            ensure_table,
            quarantine_rows,
            set_aside_rows,
            split_rows,
        )

        raw, flat = flatten_files(ctx.store, batch)
        with raw_relation(
            engine, raw, record_fields=model.record_fields, meta_fields=model.meta_fields
        ):
            output = engine.sql(model.sql)
            check_output(model, output)
            good, rejected = split_rows(model, output)
            del output
            resolved = resolve_duplicates(engine, good, model.key, bodies=BODIES)
            good = resolved.rows
            if resolved.rejected is not None:
                rejected = pa.concat_tables(
                    [drop_fold_columns(rejected), resolved.rejected], promote_options="permissive"
                )
            if rejected.num_rows or raw.set_aside:
                quarantine = ensure_quarantine(catalog, namespace)
                parked = quarantine_rows(model, rejected, engine, ctx.run_id)
                if raw.set_aside:
                    for item in raw.set_aside:
                        log.warning(
                            "table %s: %s line %d set aside: %s",
                            model.target, item.key, item.line, item.reason,
                        )  # fmt: skip
                    parked = pa.concat_tables([parked, set_aside_rows(model, raw, ctx.run_id)])
                engine.upsert(
                    quarantine,
                    parked,
                    keys=QUARANTINE_KEY,
                    snapshot_properties={"dataflow.run_id": ctx.run_id},
                    branch=self.branch,
                )
                crashpoint("transform.after_quarantine")
        set_aside = len(raw.set_aside)
        del raw  # the envelope texts: free them before the commit builds its copies
        table = ensure_table(catalog, namespace, model, good.schema)
        crashpoint("transform.before_commit")
        result = commit_rows(
            engine, table, good, keys=model.key, consumed=consumed, run_id=ctx.run_id,
            replace_all=replace_all, branch=branch,
        )  # fmt: skip
        crashpoint("transform.after_commit")
        stats.files += flat.files
        stats.bytes += flat.bytes
        stats.rows_in += flat.records
        stats.rows_out += result.rows_written
        stats.replaced += result.rows_replaced
        stats.skipped += result.rows_skipped
        stats.quarantined += rejected.num_rows + set_aside
        stats.set_aside += set_aside
        stats.duplicates += resolved.duplicates
        stats.superseded += resolved.superseded
        stats.unfolded += resolved.unfolded
        stats.error_envelopes += flat.error_envelopes
        stats.non_json += flat.non_json
        stats.symbol_errors += flat.symbol_errors
        stats.commits += 1

    @staticmethod
    def _start_quarantine_audit(catalog: Catalog, namespace: str, branch: str) -> None:
        """Cut the parse-quarantine's audit branch afresh, once for all models of the run.

        Its rows are written there like the tables' rows, so a gated run publishes them with
        the rest (the table has no ruleset: it is approved) and a blocked run leaves ``main``
        as it was.
        """
        from dataflow.catalog.iceberg import load_table
        from dataflow.quality.gate import start_audit
        from dataflow.transform.writer import QUARANTINE_TABLE

        quarantine = load_table(catalog, namespace, QUARANTINE_TABLE)
        if quarantine is not None and quarantine.metadata.snapshots:
            start_audit(quarantine, branch)

    @staticmethod
    def _clear_quarantine(
        catalog: Catalog, namespace: str, target: str, branch: str | None
    ) -> None:
        from pyiceberg.expressions import EqualTo, Reference
        from pyiceberg.expressions.literals import literal
        from pyiceberg.table.refs import MAIN_BRANCH

        from dataflow.catalog.iceberg import load_table
        from dataflow.transform.writer import QUARANTINE_TABLE

        quarantine = load_table(catalog, namespace, QUARANTINE_TABLE)
        if quarantine is not None and quarantine.current_snapshot() is not None:
            quarantine.delete(
                EqualTo(term=Reference("table_name"), value=literal(target)),
                branch=branch or MAIN_BRANCH,
            )

    @staticmethod
    def _record_metrics(ctx: RunContext, stats: TableStats) -> None:
        dims = {"table": stats.table}
        points = [
            ("RowsIn", stats.rows_in, "Count"),
            ("RowsOut", stats.rows_out, "Count"),
            ("Quarantined", stats.quarantined, "Count"),
            ("Files", stats.files, "Count"),
            ("Bytes", stats.bytes, "Bytes"),
            ("ErrorEnvelopes", stats.error_envelopes + stats.non_json, "Count"),
            ("Seconds", stats.seconds, "Seconds"),
        ]
        from dataflow.monitor.metrics import Datapoint

        # One transaction for the table's points (one commit each cost ~1 ms); the same points
        # and run id as one ``record`` call each gave (the run id is filled in by record_many).
        ctx.metrics.record_many(
            Datapoint(NAMESPACE, name, float(value), unit, dict(dims))
            for name, value, unit in points
        )


__all__ = ["REBUILD_BRANCH", "TableStats", "TransformStage"]
