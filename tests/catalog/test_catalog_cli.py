"""`dataflow catalog` over a real run: Iceberg clean tables and crawled raw tables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from dataflow.cli.app import _register, app
from dataflow.config import load_settings
from dataflow.pipeline import RunOptions, run_pipeline

_register()


@pytest.fixture(scope="module")
def cat_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project after one run of the whole pipeline on a few endpoints (embedded simulator)."""
    project = tmp_path_factory.mktemp("catalog") / "p"
    project.mkdir()
    (project / "dataflow.yaml").write_text(
        "sources:\n  twelvedata:\n"
        "    symbols: {stocks: [AAPL, MSFT], forex: [EUR/USD], crypto: []}\n"
    )
    settings = load_settings(project, env={})
    run_pipeline(settings, RunOptions(endpoints=["time_series", "quote", "stocks"]))
    return project


def catalog(project: Path, *args: str) -> Any:
    result = CliRunner().invoke(app, ["catalog", *args, "--project", str(project), "--format",
                                      "json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_databases_and_tables(cat_project: Path) -> None:
    assert {d["name"] for d in catalog(cat_project, "databases")} == {"market", "raw"}
    tables = {(t["database"], t["name"]): t for t in catalog(cat_project, "tables")}
    assert tables["market", "time_series"]["type"] == "iceberg"
    assert tables["raw", "time_series"]["type"] == "external"
    assert tables["raw", "quote"]["location"].endswith("raw/twelvedata/quote/")
    assert tables["market", "time_series"]["records"] > 100
    assert all({"database", "name", "type", "location"} <= t.keys() for t in tables.values())
    only_raw = catalog(cat_project, "tables", "raw")
    assert {t["database"] for t in only_raw} == {"raw"}


def test_show_an_iceberg_table(cat_project: Path) -> None:
    shown = catalog(cat_project, "show", "market.time_series")
    columns = {c["name"]: c["type"] for c in shown["columns"]}
    assert columns["ts"] == "timestamp"
    assert columns["close"] == "double"
    assert columns["volume"] == "bigint"
    assert {"_raw_key", "_raw_line", "_run_id", "_received_at"} <= columns.keys()
    assert [k["source"] for k in shown["partition_keys"]] == ["interval", "ts"]
    params = shown["parameters"]
    assert params["classification"] == "parquet"
    assert int(params["recordCount"]) > 100
    assert int(params["objectCount"]) >= 1
    assert int(params["averageRecordSize"]) > 0
    assert params["compressionType"]
    unqualified = catalog(cat_project, "show", "time_series")
    assert unqualified["name"] == "time_series"


def test_show_an_external_table_with_partitions(cat_project: Path) -> None:
    shown = catalog(cat_project, "show", "raw.quote")
    assert shown["type"] == "external"
    assert shown["classification"] == "json"
    assert [k["name"] for k in shown["partition_keys"]] == ["ingest_date"]
    assert {c["name"] for c in shown["columns"]} >= {"endpoint", "status_code", "payload"}
    assert shown["partitions"]
    assert shown["partitions"][0]["location"].endswith("/")
    assert int(shown["parameters"]["recordCount"]) >= 1


def test_versions_partitions_snapshots(cat_project: Path) -> None:
    (version,) = catalog(cat_project, "versions", "market.time_series")
    assert version["current"] is True
    assert catalog(cat_project, "versions", "raw.quote")[-1]["version"] >= 1
    parts = catalog(cat_project, "partitions", "market.time_series")
    assert {p["values"]["interval"] for p in parts} == {"1day", "1h"}
    assert all(len(p["values"]["ts_year"]) == 4 for p in parts), "years read as YYYY"
    assert sum(p["records"] for p in parts) == int(
        catalog(cat_project, "show", "market.time_series")["parameters"]["recordCount"]
    )
    (snapshot,) = catalog(cat_project, "snapshots", "market.time_series")
    assert snapshot["run_id"]
    assert snapshot["added_records"] == snapshot["total_records"]


def test_missing_tables_and_external_snapshots_are_clear_errors(cat_project: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["catalog", "show", "market.nope", "--project", str(cat_project)])
    assert missing.exit_code == 2
    assert "no table market.nope" in missing.stderr
    bad = runner.invoke(app, ["catalog", "show", "a.b.c", "--project", str(cat_project)])
    assert bad.exit_code == 2
    assert "DATABASE.TABLE" in bad.stderr
    external = runner.invoke(app, ["catalog", "snapshots", "raw.quote", "--project",
                                   str(cat_project)])  # fmt: skip
    assert external.exit_code == 1
    assert "external table: it has no snapshots" in external.stderr
