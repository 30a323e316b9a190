"""The ticker META next to the key ``meta``: the raw table stays readable, the bars land.

A multi-symbol answer is keyed by ticker (``{"AAPL": {...}, "META": {...}}``); a single-symbol
answer (any per-symbol retry) has the key ``meta``. DuckDB's names are case-insensitive, so
both in one raw table once made ``raw.time_series`` unreadable ("Duplicate name meta").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from dataflow.catalog.stage import CrawlStage
from dataflow.config import Settings
from dataflow.pipeline import RunOptions, run_pipeline
from dataflow.storage import ObjectStore, import_responses

from .conftest import read_table, transform


def answer(symbol: str, day: str, close: str) -> dict[str, Any]:
    return {
        "meta": {"symbol": symbol, "interval": "1day", "exchange_timezone": "America/New_York"},
        "values": [{"datetime": day, "open": "1", "high": "2", "low": "1", "close": close}],
        "status": "ok",
    }


def test_raw_table_with_meta_ticker_and_single_answers_is_readable(
    tf_settings: Settings, tf_store: ObjectStore, tmp_path: Path
) -> None:
    batch = tmp_path / "batch.json"
    batch.write_text(
        json.dumps(
            {"AAPL": answer("AAPL", "2024-01-02", "1"), "META": answer("META", "2024-01-02", "2")}
        )
    )
    single = tmp_path / "single.json"
    single.write_text(json.dumps(answer("META", "2024-01-03", "3")))
    import_responses(
        tf_store, [batch], endpoint="time_series", params={"interval": "1day"}, run_id="r1"
    )
    import_responses(
        tf_store, [single], endpoint="time_series", params={"interval": "1day"}, run_id="r2"
    )
    project = str(tf_settings.project_dir)
    env = {**os.environ, "DATAFLOW_PROJECT": project}
    run = [sys.executable, "-m", "dataflow"]

    assert run_pipeline(tf_settings, RunOptions(), stages=[CrawlStage()]).status == "succeeded"
    query = subprocess.run(
        [*run, "query", "SELECT count(*) AS n FROM raw.time_series", "--format", "json"],
        capture_output=True, text=True, env=env, check=False, timeout=120,
    )  # fmt: skip

    assert query.returncode == 0, query.stderr
    assert "Duplicate name" not in query.stdout + query.stderr
    assert json.loads(query.stdout) == [{"n": 2}]

    assert transform(tf_settings, ["time_series"]).status == "succeeded"
    closes = {
        (r["symbol"], r["ts"].day): r["close"] for r in read_table(tf_settings, "time_series")
    }
    assert closes == {("AAPL", 2): 1.0, ("META", 2): 2.0, ("META", 3): 3.0}
