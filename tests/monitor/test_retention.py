"""metrics.retention_days: datapoints older than the retention are deleted after each run."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from dataflow.config import load_settings
from dataflow.metadata import open_metadata
from dataflow.monitor.metrics import Metrics
from dataflow.pipeline import RunOptions, run_pipeline
from dataflow.sources.twelvedata.ingest import IngestStage


def test_old_datapoints_are_pruned_after_a_run(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, overrides={"metrics.retention_days": 2}, env={})
    db = open_metadata(settings.metadata_url)
    now = dt.datetime.now(dt.UTC)
    try:
        metrics = Metrics(db)
        metrics.record("Custom", "Old", 1.0, timestamp=now - dt.timedelta(days=3))
        metrics.record("Custom", "Recent", 1.0, timestamp=now - dt.timedelta(days=1))
    finally:
        db.dispose()
    run_pipeline(settings, RunOptions(endpoints=["price"]), stages=[IngestStage()])
    db = open_metadata(settings.metadata_url)
    try:
        metrics = Metrics(db)
        assert metrics.query("Custom", "Old") == []
        assert len(metrics.query("Custom", "Recent")) == 1
        assert metrics.query("Dataflow/Ingest", "Requests", dimensions={"pipeline": "dataflow"})
    finally:
        db.dispose()
