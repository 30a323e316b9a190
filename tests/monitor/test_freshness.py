"""Freshness lag per clean table, from the Iceberg manifests, recorded after every run."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from dataflow.catalog.iceberg import open_catalog
from dataflow.config import load_settings
from dataflow.metadata import open_metadata
from dataflow.monitor.freshness import newest_value, record_freshness
from dataflow.monitor.metrics import Metrics
from dataflow.pipeline import RunOptions, run_pipeline
from dataflow.query import QuerySession


def test_lag_is_recorded_per_table_and_for_the_pipeline(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, env={})
    run_pipeline(settings, RunOptions(endpoints=["time_series", "quote", "eod"]))
    db = open_metadata(settings.metadata_url)
    try:
        metrics = Metrics(db)
        pipeline = {"pipeline": settings.name}
        per_table = {
            name: metrics.query(
                "Dataflow/Freshness", "LagSeconds", dimensions={**pipeline, "table": name}
            )
            for name in ("time_series", "quotes", "eod")
        }
        assert all(len(points) == 1 for points in per_table.values()), per_table
        overall = metrics.query("Dataflow/Freshness", "LagSeconds", dimensions=pipeline)
        assert [p.value for p in overall] == [min(p[0].value for p in per_table.values())]
        assert per_table["quotes"][0].value < 60, "quotes were received seconds ago"

        with QuerySession(settings, db) as session:
            (newest_ts,) = session.execute("SELECT max(ts) FROM market.time_series").rows[0]
        table = open_catalog(settings).load_table(("market", "time_series"))
        assert newest_value(table) == newest_ts
        now = newest_ts + dt.timedelta(hours=2)
        assert record_freshness(settings, metrics, now=now)["time_series"] == 7200.0
    finally:
        db.dispose()
