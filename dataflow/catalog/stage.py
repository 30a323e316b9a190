"""The crawl stage: after every ingest, describe the raw zone as ``raw.<endpoint>`` tables."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from dataflow.crashpoints import crashpoint

if TYPE_CHECKING:
    from dataflow.contract import RunContext, StageResult


class CrawlStage:
    """Pipeline stage ``crawl``: crawl ``raw/twelvedata/<endpoint>/`` into ``raw.<endpoint>``.

    Unchanged raw files are not read again (their schemas are cached in the metadata DB), so the
    stage costs little on a run that landed little.
    """

    name = "crawl"

    def run(self, ctx: RunContext) -> StageResult:
        """Crawl the raw zone; report tables, files and records."""
        from dataflow.catalog.crawler import crawl_raw_zone
        from dataflow.catalog.external import ExternalCatalog
        from dataflow.contract import StageResult

        started = time.perf_counter()
        results = crawl_raw_zone(ctx.store, ExternalCatalog(ctx.db), source="twelvedata")
        changed = [r for r in results if r.changed]
        crashpoint("crawl.after_stage")
        for result in results:
            dims = {"table": result.table}
            ctx.metrics.record("Dataflow/Crawl", "FilesRead", result.files_read, "Count", dims)
            ctx.metrics.record("Dataflow/Crawl", "Records", result.records, "Count", dims)
        seconds = time.perf_counter() - started
        ctx.metrics.record("Dataflow/Crawl", "Seconds", seconds, "Seconds")
        return StageResult(
            rows=sum(r.records for r in results),
            bytes=sum(r.bytes for r in results),
            message=f"{len(results)} raw table(s) crawled, {len(changed)} changed",
            details={"tables": {r.table: r.to_dict() for r in results}},
        )
