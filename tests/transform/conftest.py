"""Transform test fixtures: a project on tmp_path, helpers to land raw data and read tables."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dataflow.catalog.iceberg import open_catalog
from dataflow.config import Settings, TransformSettings, load_settings
from dataflow.pipeline import RunOptions, RunResult, run_pipeline
from dataflow.storage import ObjectStore, RawWriter, import_responses, make_envelope, open_store
from dataflow.transform import TransformStage

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "twelvedata-samples"


@pytest.fixture
def tf_settings(tmp_path: Path) -> Settings:
    """A project whose ingest fetches only a few weeks from the built-in simulator."""
    today = dt.datetime.now(dt.UTC).date()
    return load_settings(
        tmp_path / "project",
        overrides={
            "sources.twelvedata.history_start": (today - dt.timedelta(days=20)).isoformat(),
            "sources.twelvedata.intraday_history_days": 3,
        },
        env={},
    )


@pytest.fixture
def tf_store(tf_settings: Settings) -> ObjectStore:
    return open_store(tf_settings)


def transform(
    settings: Settings,
    tables: list[str] | None = None,
    *,
    full_refresh: bool = False,
    batch_files: int = 200,
) -> RunResult:
    stage = TransformStage(
        tables=tables,
        full_refresh=full_refresh,
        settings=TransformSettings(batch_files=batch_files),
    )
    return run_pipeline(settings, RunOptions(full_refresh=full_refresh), stages=[stage])


def read_table(settings: Settings, name: str) -> list[dict[str, Any]]:
    table = open_catalog(settings).load_table(("market", name))
    return table.scan().to_arrow().to_pylist()


def snapshot_ids(settings: Settings, name: str) -> list[int]:
    table = open_catalog(settings).load_table(("market", name))
    return [s.snapshot_id for s in table.snapshots()]


def import_sample(
    store: ObjectStore, name: str, endpoint: str, symbol: str | None = None, **params: str
) -> str:
    """Import one real sample as its own raw file; return the raw key."""
    result = import_responses(
        store, [SAMPLES / name], endpoint=endpoint, symbol=symbol, params=params or None
    )
    return result.files[0].key


def land(
    store: ObjectStore,
    endpoint: str,
    payloads: list[Any],
    *,
    received_at: dt.datetime,
    run_id: str,
    params: dict[str, str] | None = None,
    symbols: list[str] | None = None,
) -> str:
    """Write one raw file of envelopes with a chosen received_at (one line per payload)."""
    writer = RawWriter(store, source="twelvedata", run_id=run_id, ingest_date=received_at.date())
    for number, payload in enumerate(payloads):
        writer.add(
            make_envelope(
                source="twelvedata",
                endpoint=endpoint,
                path=f"/{endpoint}",
                params=params or {},
                status_code=200,
                headers={},
                body=json.dumps(payload).encode(),
                received_at=received_at,
                run_id=run_id,
                request_id=f"{run_id}-{number}",
                symbols=symbols or [],
            )
        )
    return writer.flush()[0].key


Transform = Callable[..., RunResult]
