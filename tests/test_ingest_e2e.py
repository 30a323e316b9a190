"""The ingest stage end to end: CLI -> client -> simulator over loopback HTTP -> raw zone.

Each test runs the real `dataflow` command (Typer's CliRunner, or a subprocess where a process
must be killed) on a project folder, against a simulator on 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from dataflow.cli.app import _register, app
from dataflow.config import load_settings
from dataflow.metadata import ProjectLock, RunStore, WatermarkStore, open_metadata
from dataflow.sources.twelvedata.simulator import SimulatorConfig, SimulatorServer
from dataflow.storage import iter_envelopes, list_raw, open_store, read_manifest

_register()
FAKE_KEY = "td-e2e-secret-5f1c2b9a77"
NOW = dt.datetime(2026, 9, 1, 20, 30, tzinfo=dt.UTC)  # a Tuesday, after the New York close
DEFAULT_ENDPOINTS = {
    "time_series", "quote", "price", "eod", "exchange_rate", "currency_conversion", "rsi", "macd",
    "sma", "ema", "bbands", "stocks", "etfs", "forex_pairs", "cryptocurrencies", "exchanges",
}  # fmt: skip


def make_project(root: Path, *, url: str | None = None, **twelvedata: Any) -> Path:
    """A project folder whose dataflow.yaml talks to `url` (None: the embedded simulator)."""
    td: dict[str, Any] = {"history_start": "2026-07-01", "intraday_history_days": 400}
    if url is not None:
        td.update(base_url=url, plan="unlimited")
    td.update(twelvedata)
    root.mkdir(parents=True, exist_ok=True)
    config = {"sources": {"twelvedata": td}}
    (root / "dataflow.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return root


def cli(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


@pytest.fixture
def keyed_sim() -> Iterator[SimulatorServer]:
    """A simulator that demands FAKE_KEY, with a fixed clock."""
    with SimulatorServer(SimulatorConfig(api_key=FAKE_KEY, now=NOW)) as server:
        yield server


@pytest.fixture
def key_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("TWELVEDATA_API_KEY", FAKE_KEY)
    return {"TWELVEDATA_API_KEY": FAKE_KEY}


def raw_endpoints(project: Path) -> set[str]:
    store = open_store(load_settings(project, env={}))
    return {info.endpoint for info in list_raw(store)}


def bars(project: Path, endpoint: str = "time_series") -> dict[tuple[str, str], set[str]]:
    """(symbol, interval) -> datetimes of every bar landed in the raw zone."""
    store = open_store(load_settings(project, env={}))
    found: dict[tuple[str, str], set[str]] = defaultdict(set)
    for info in list_raw(store, endpoint=endpoint):
        for env in iter_envelopes(store, info.key):
            payload, params = env["payload"], env["request"]["params"]
            if not isinstance(payload, dict):
                continue
            bodies = {env["symbols"][0]: payload} if "values" in payload else payload
            for symbol, body in bodies.items():
                if isinstance(body, dict) and isinstance(body.get("values"), list):
                    found[symbol, params["interval"]].update(v["datetime"] for v in body["values"])
    return found


def test_run_on_the_embedded_simulator_lands_every_default_endpoint(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    result = cli("run", "--project", str(project), "--no-progress")
    assert result.exit_code == 0, result.output
    assert "succeeded" in result.output
    assert raw_endpoints(project) == DEFAULT_ENDPOINTS

    listed = cli("runs", "--project", str(project), "--format", "json")
    runs = json.loads(listed.stdout)
    assert [r["status"] for r in runs] == ["succeeded"]
    stage = runs[0]["stages"][0]
    assert stage["stage"] == "ingest"
    assert stage["rows"] > 1000
    assert stage["errors"] == 0
    assert stage["requests"] > 0
    assert stage["bytes"] > 0
    shown = cli("runs", "show", runs[0]["run_id"][:18], "--project", str(project))
    assert shown.exit_code == 0
    assert "time_series" in shown.stdout

    store = open_store(load_settings(project, env={}))
    manifest = read_manifest(store, "twelvedata", runs[0]["run_id"])
    assert manifest.status == "succeeded"
    assert all(r.file for r in manifest.requests), "every request points at its raw file"

    logs = list((project / "warehouse" / "logs").rglob("*.jsonl"))
    records = [json.loads(line) for line in logs[0].read_text().splitlines()]
    assert all(r["run_id"] == runs[0]["run_id"] for r in records)
    assert any(r["stage"] == "ingest" for r in records)
    assert all(
        r["stage"] in {"pipeline", "ingest", "transform", "quality", "publish", "crawl"}
        for r in records
    )


def test_second_run_asks_only_for_new_data(tmp_path: Path, key_env: dict[str, str]) -> None:
    project = tmp_path / "p"
    with SimulatorServer(SimulatorConfig(api_key=FAKE_KEY, now=NOW)) as sim:
        make_project(project, url=sim.url, symbols={"stocks": ["AAPL", "MSFT"], "forex": []})
        first = cli("ingest", "--project", str(project), "--no-progress", "--endpoints",
                    "time_series,stocks")  # fmt: skip
        assert first.exit_code == 0, first.output
    landed = bars(project)
    newest = {key: max(values) for key, values in landed.items()}
    assert newest["AAPL", "1day"] == "2026-09-01"

    later = NOW + dt.timedelta(days=3)
    with SimulatorServer(SimulatorConfig(api_key=FAKE_KEY, now=later)) as sim:
        make_project(project, url=sim.url, symbols={"stocks": ["AAPL", "MSFT"], "forex": []})
        second = cli("ingest", "--project", str(project), "--no-progress", "--format", "json",
                     "--endpoints", "time_series,stocks")  # fmt: skip
        assert second.exit_code == 0, second.output
        run_id = json.loads(second.stdout)["run_id"]

    manifest = read_manifest(open_store(load_settings(project, env={})), "twelvedata", run_id)
    asked = {(r.symbols[0], r.params["interval"]): r.params["start_date"]
             for r in manifest.requests}  # fmt: skip
    assert {r.endpoint for r in manifest.requests} == {"time_series"}, "catalogues: once a day"
    assert asked["AAPL", "1day"] == "2026-09-01"
    assert asked["AAPL", "1h"] == newest["AAPL", "1h"]
    daily = sum(r.rows for r in manifest.requests if r.params["interval"] == "1day")
    assert daily == 2 * 4, "from the watermark bar (Sep 1) to the new close (Sep 4)"
    hourly = sum(r.rows for r in manifest.requests if r.params["interval"] == "1h")
    assert hourly == 2 * (1 + 3 * 7), "the watermark bar, then 3 days of 7 hourly bars"
    marks = {
        k.symbol + "/" + k.interval: v
        for k, v, _ in WatermarkStore(open_metadata(load_settings(project).metadata_url)).list()
    }
    assert marks["AAPL/1day"] == dt.datetime(2026, 9, 4, tzinfo=dt.UTC)


def test_api_key_is_written_nowhere(
    tmp_path: Path, keyed_sim: SimulatorServer, key_env: dict[str, str]
) -> None:
    project = make_project(tmp_path / "p", url=keyed_sim.url)
    result = cli("run", "--project", str(project), "--no-progress")
    assert result.exit_code == 0, result.output
    assert FAKE_KEY not in result.output
    assert raw_endpoints(project) == DEFAULT_ENDPOINTS
    checked = 0
    for path in project.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if path.suffix == ".gz":
                data = gzip.decompress(data)
            assert FAKE_KEY.encode() not in data, f"API key found in {path}"
            checked += 1
    assert checked > 20


def test_wrong_key_stops_the_run_with_a_clear_message(
    tmp_path: Path, keyed_sim: SimulatorServer
) -> None:
    project = make_project(tmp_path / "p", url=keyed_sim.url)
    result = cli("run", "--project", str(project), "--no-progress",
                 env={"TWELVEDATA_API_KEY": "wrong-key-123"})  # fmt: skip
    assert result.exit_code == 2
    assert "rejected the API key (401)" in result.stderr
    assert "wrong-key-123" not in result.output
    db = open_metadata(load_settings(project, env={}).metadata_url)
    (run,) = RunStore(db).list()
    assert run.status == "failed"


def test_daily_limit_stops_cleanly_and_the_next_run_goes_on(
    tmp_path: Path, key_env: dict[str, str]
) -> None:
    project = tmp_path / "p"
    config = SimulatorConfig(api_key=FAKE_KEY, now=NOW, daily_credits=20)
    with SimulatorServer(config) as sim:
        make_project(project, url=sim.url, batch_size=1, max_concurrency=2)
        result = cli("ingest", "--project", str(project), "--no-progress", "--format", "json",
                     "--endpoints", "quote,time_series")  # fmt: skip
    assert result.exit_code == 1, "a partial run is a failed run (README: exit codes)"
    run = json.loads(result.stdout)
    assert run["status"] == "partial"
    assert "daily credit budget reached" in run["message"]
    partial = bars(project)
    assert 0 < len(partial) < 28

    with SimulatorServer(SimulatorConfig(api_key=FAKE_KEY, now=NOW)) as sim:
        make_project(project, url=sim.url, batch_size=1, max_concurrency=2)
        again = cli("ingest", "--project", str(project), "--no-progress", "--format", "json",
                    "--endpoints", "quote,time_series")  # fmt: skip
    assert json.loads(again.stdout)["status"] == "succeeded"
    assert len(bars(project)) == 28  # 14 symbols x 2 intervals


def test_client_side_daily_budget(tmp_path: Path, keyed_sim: SimulatorServer,
                                  key_env: dict[str, str]) -> None:  # fmt: skip
    make_project(tmp_path / "p", url=keyed_sim.url, plan="custom", credits_per_day=5)
    result = cli("ingest", "--project", str(tmp_path / "p"), "--no-progress", "--format", "json",
                 "--endpoints", "price", "--symbols", "AAPL,MSFT,IBM")  # fmt: skip
    assert json.loads(result.stdout)["results"]["ingest"]["status"] in {"succeeded", "partial"}
    assert keyed_sim.stats()["responses_by_status"].get("429", 0) == 0
    assert keyed_sim.stats()["credits_used"] <= 5


def test_budgeted_ingest_never_gets_a_429(tmp_path: Path, key_env: dict[str, str]) -> None:
    config = SimulatorConfig(api_key=FAKE_KEY, now=NOW, credits_per_minute=20, minute_seconds=2)
    with SimulatorServer(config) as sim:
        make_project(tmp_path / "p", url=sim.url, plan="custom", credits_per_minute=20,
                     minute_seconds=2, batch_size=2, max_concurrency=6)  # fmt: skip
        started = time.monotonic()
        result = cli("ingest", "--project", str(tmp_path / "p"), "--no-progress",
                     "--endpoints", "quote,price,eod,time_series")  # fmt: skip
        elapsed = time.monotonic() - started
        stats = sim.stats()
    assert result.exit_code == 0, result.output
    assert stats["responses_by_status"].get("429", 0) == 0
    assert stats["credits_used"] >= 60
    windows = elapsed / 2
    assert stats["credits_used"] >= 0.6 * 20 * (windows - 1), "the budget is used, not wasted"


def test_history_deeper_than_a_page_is_paged_backwards(
    tmp_path: Path, keyed_sim: SimulatorServer, key_env: dict[str, str]
) -> None:
    project = make_project(
        tmp_path / "p", url=keyed_sim.url,
        endpoints={"time_series": {"intervals": ["1min"], "symbols": ["AAPL", "MSFT"]}},
        intraday_history_days=400,
    )  # fmt: skip
    result = cli("ingest", "--project", str(project), "--no-progress", "--format", "json",
                 "--start", "2026-06-01", "--end", "2026-09-01")  # fmt: skip
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)
    manifest = read_manifest(open_store(load_settings(project)), "twelvedata", run["run_id"])
    pages = [r for r in manifest.requests if r.symbols == ["AAPL"]]
    assert len(pages) == 4, "after the batch request's 5000 bars, 4 pages back"
    landed = bars(project)
    # Trading days: June 2026 22 weekdays - Juneteenth, July 23 - Independence Day (observed on
    # Friday the 3rd), August 21: 64 days x 390 one-minute bars.
    assert len(landed["AAPL", "1min"]) == 64 * 390
    assert len(landed["MSFT", "1min"]) == 64 * 390
    assert min(landed["AAPL", "1min"]) == "2026-06-01 13:30:00"  # 09:30 New York, in UTC
    assert max(landed["AAPL", "1min"]) == "2026-08-31 19:59:00"
    rows = 5000 + sum(r.rows for r in pages)
    assert rows == 64 * 390, "pages neither overlap nor leave gaps"


def test_killed_ingest_leaves_whole_files_and_the_next_run_completes(
    tmp_path: Path, key_env: dict[str, str]
) -> None:
    env = {**os.environ, "TWELVEDATA_API_KEY": FAKE_KEY, "DATAFLOW__LOGGING__LEVEL": "WARNING"}
    slow = SimulatorConfig(api_key=FAKE_KEY, now=NOW, latency_ms=150)
    project = tmp_path / "p"
    with SimulatorServer(slow) as sim:
        make_project(project, url=sim.url, batch_size=1, max_concurrency=1)
        raw_cfg = {"storage": {"raw": {"file_max_lines": 1}}}
        text = (project / "dataflow.yaml").read_text() + yaml.safe_dump(raw_cfg)
        (project / "dataflow.yaml").write_text(text)
        child = subprocess.Popen(
            [sys.executable, "-m", "dataflow", "ingest", "--project", str(project),
             "--no-progress", "--endpoints", "time_series"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        raw_dir = project / "warehouse" / "raw" / "twelvedata" / "time_series"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(list(raw_dir.rglob("*.jsonl.gz"))) < 4:
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait()
    killed = list(raw_dir.rglob("*.jsonl.gz"))
    assert 4 <= len(killed) < 28, "killed mid-ingest"
    for path in killed:
        lines = gzip.decompress(path.read_bytes()).decode().splitlines()
        assert all(json.loads(line)["endpoint"] == "time_series" for line in lines)

    with SimulatorServer(SimulatorConfig(api_key=FAKE_KEY, now=NOW)) as sim:
        make_project(project, url=sim.url, batch_size=1, max_concurrency=1)
        again = cli("ingest", "--project", str(project), "--no-progress", "--endpoints",
                    "time_series")  # fmt: skip
        assert again.exit_code == 0, again.output
        reference = make_project(tmp_path / "ref", url=sim.url)
        clean = cli("ingest", "--project", str(reference), "--no-progress", "--endpoints",
                    "time_series")  # fmt: skip
        assert clean.exit_code == 0, clean.output
    assert bars(project) == bars(reference), "resumed run landed exactly the full window"
    runs = RunStore(open_metadata(load_settings(project).metadata_url)).list()
    assert [r.status for r in runs] == ["succeeded", "interrupted"]


def test_bad_configuration_is_one_line_and_exit_2(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "dataflow.yaml").write_text("sources:\n  twelvedata:\n    batch_size: many\n")
    result = cli("run", "--project", str(project), "--no-progress")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert "sources.twelvedata.batch_size: 'many' is invalid" in result.stderr
    bad_flag = cli("ingest", "--project", str(tmp_path / "q"), "--start", "yesterday")
    assert bad_flag.exit_code == 2
    assert "--start: 'yesterday' is not a date" in bad_flag.stderr


def test_a_second_run_waits_for_the_lock_then_says_who_holds_it(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p")
    settings = load_settings(project, env={})
    settings.state_dir.mkdir(parents=True)
    with ProjectLock(settings.state_dir / "dataflow.lock", timeout=0, run_id="other-run"):
        started = time.monotonic()
        result = cli("run", "--project", str(project), "--no-progress",
                     env={"DATAFLOW__RUN__LOCK_TIMEOUT": "0.6"})  # fmt: skip
        waited = time.monotonic() - started
    assert result.exit_code == 1
    assert "holds the project lock" in result.stderr
    assert "other-run" in result.stderr
    assert waited >= 0.6


@pytest.mark.s3
def test_run_into_an_s3_warehouse(tmp_path: Path, s3_server_url: str) -> None:
    project = make_project(tmp_path / "p")
    text = (project / "dataflow.yaml").read_text() + yaml.safe_dump(
        {
            "warehouse": "s3://bucket/e2e",
            "storage": {"s3": {"endpoint_url": s3_server_url, "anon": False}},
        }
    )
    (project / "dataflow.yaml").write_text(text)
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
    result = cli("run", "--project", str(project), "--no-progress", "--endpoints",
                 "quote,stocks", env=env)  # fmt: skip
    assert result.exit_code == 0, result.output
    listed = cli("raw", "ls", "--project", str(project), "--format", "json", env=env)
    keys = [row["key"] for row in json.loads(listed.stdout)]
    assert {k.split("/")[2] for k in keys} == {"quote", "stocks"}
    assert (project / ".dataflow" / "dataflow.db").is_file()
    assert not (project / "warehouse").exists(), "nothing lands in a local warehouse"
    counted = cli("query", "SELECT count(*) AS n FROM market.quotes", "--project", str(project),
                  "--format", "json", env=env)  # fmt: skip
    assert counted.exit_code == 0, counted.output
    assert json.loads(counted.stdout) == [{"n": 14}]
    shown = cli("catalog", "show", "market.quotes", "--project", str(project), "--format",
                "json", env=env)  # fmt: skip
    assert json.loads(shown.stdout)["location"].startswith("s3://bucket/e2e/iceberg/")


def test_full_refresh_fetches_the_whole_history_again(
    tmp_path: Path, keyed_sim: SimulatorServer, key_env: dict[str, str]
) -> None:
    project = make_project(tmp_path / "p", url=keyed_sim.url, symbols={"stocks": ["AAPL"]})
    args = ["ingest", "--project", str(project), "--no-progress", "--format", "json",
            "--endpoints", "time_series"]  # fmt: skip
    first = json.loads(cli(*args).stdout)["results"]["ingest"]["rows"]
    incremental = json.loads(cli(*args).stdout)["results"]["ingest"]["rows"]
    refreshed = json.loads(cli(*args, "--full-refresh").stdout)["results"]["ingest"]["rows"]
    assert incremental == 2, "only the watermark bar of each interval"
    assert refreshed == first > 100


def test_optional_endpoints_can_be_enabled(tmp_path: Path, keyed_sim: SimulatorServer,
                                           key_env: dict[str, str]) -> None:  # fmt: skip
    optional = ["earnings", "dividends", "splits", "profile", "statistics"]
    endpoints: dict[str, Any] = {name: {"asset_classes": ["stocks"]} for name in optional}
    endpoints.update(market_state={}, api_usage={}, symbol_search={"params": {"symbol": "AAPL"}})
    project = make_project(tmp_path / "p", url=keyed_sim.url, endpoints=endpoints,
                           symbols={"stocks": ["AAPL", "MSFT"]})  # fmt: skip
    result = cli("ingest", "--project", str(project), "--no-progress", "--format", "json")
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)["results"]["ingest"]["details"]["endpoints"]
    assert set(stats) == set(endpoints)
    assert all(s["errors"] == 0 and s["rows"] > 0 for s in stats.values()), stats
    assert stats["statistics"]["credits"] == 2 * 50, "fundamentals cost their weight per symbol"


def test_a_scheduled_run_takes_the_run_id_and_trigger_the_scheduler_gave(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATAFLOW_SCHEDULE_JOB", "nightly")
    monkeypatch.setenv("DATAFLOW_SCHEDULE_RUN_ID", "20261126T020000Z-ab12")
    project = make_project(tmp_path / "p")
    result = cli("ingest", "--project", str(project), "--no-progress", "--endpoints", "price")
    assert result.exit_code == 0, result.output
    (run,) = RunStore(open_metadata(load_settings(project, env={}).metadata_url)).list()
    assert run.run_id == "20261126T020000Z-ab12"
    assert run.trigger == "schedule:nightly"
