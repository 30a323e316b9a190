"""README's exit codes, for whole `dataflow` processes: 0 success, 1 a failed run, 2 bad input or
configuration (one line, no traceback), 130/143 for a run stopped by SIGINT/SIGTERM — which is
recorded `interrupted` before the process exits, publishes nothing half-written, and loses no
answer already paid for.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from dataflow.sources.twelvedata.simulator import SimulatorConfig, SimulatorServer
from dataflow.sources.twelvedata.spool import read_spool

NOW = dt.datetime(2026, 9, 1, 20, 30, tzinfo=dt.UTC)
KEY = "td-exit-codes-3c9a1f"
ENV = {**os.environ, "DATAFLOW__LOGGING__LEVEL": "WARNING", "TWELVEDATA_API_KEY": KEY}
ENV.pop("DATAFLOW_DEBUG", None)
COLUMNS = "symbol, interval, ts, open, high, low, close, volume"


def ec_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "dataflow", *args]


def ec_run(*args: str, timeout: float = 300) -> Any:
    return subprocess.run(ec_command(*args), env=ENV, capture_output=True, text=True,
                          timeout=timeout, check=False)  # fmt: skip


def ec_write(project: Path, config: dict[str, Any]) -> Path:
    project.mkdir(parents=True, exist_ok=True)
    (project / "dataflow.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return project


def ec_sim_project(project: Path, url: str, **twelvedata: Any) -> Path:
    td = {"base_url": url, "plan": "unlimited", "history_start": "2026-07-01",
          "intraday_history_days": 60, **twelvedata}  # fmt: skip
    return ec_write(project, {"sources": {"twelvedata": td}})


def ec_one_line(done: Any, code: int) -> str:
    assert done.returncode == code, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return str(lines[0])


def ec_free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- configuration and reachability: exit 2 ------------------------------------------------------


def test_an_unwritable_warehouse_is_one_line_and_exit_2(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "not-a-folder").write_text("a file where the warehouse should go")
    ec_write(project, {"warehouse": "not-a-folder/wh"})
    line = ec_one_line(ec_run("run", "--project", str(project), "--no-progress"), 2)
    # Found by the checks every run makes first (dataflow validate), before the lock.
    assert line.startswith("error: warehouse")
    assert "is a file, not a folder" in line


def test_a_missing_bucket_is_one_line_and_exit_2_before_any_credit_is_spent(
    tmp_path: Path, s3_server_url: str
) -> None:
    with SimulatorServer(SimulatorConfig(now=NOW)) as sim:
        project = ec_sim_project(tmp_path / "p", sim.url)
        config = yaml.safe_load((project / "dataflow.yaml").read_text())
        config["warehouse"] = "s3://no-such-bucket/wh"
        s3 = {"endpoint_url": s3_server_url, "region": "us-east-1", "access_key_id": "testing",
              "secret_access_key": "testing"}  # fmt: skip
        config["storage"] = {"s3": s3}
        ec_write(project, config)
        line = ec_one_line(ec_run("run", "--project", str(project), "--no-progress"), 2)
        assert sim.stats()["requests"] == 0, "the warehouse is checked before anything is asked"
    assert line.startswith("error: warehouse")
    assert "bucket 'no-such-bucket' does not exist" in line


def test_a_metadata_database_that_is_down_is_one_line_and_exit_2(tmp_path: Path) -> None:
    url = f"postgresql://dataflow@127.0.0.1:{ec_free_port()}/dataflow"
    project = ec_write(tmp_path / "p", {"metadata": {"url": url}})
    line = ec_one_line(ec_run("run", "--project", str(project), "--no-progress"), 2)
    assert line.startswith("error: metadata.url: the database does not answer")
    assert "check the URL, the server and the credentials" in line


def test_serve_on_a_busy_port_is_one_line_and_exit_2(tmp_path: Path) -> None:
    project = ec_write(tmp_path / "p", {})
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = ec_run("serve", "--project", str(project), "--port", str(port), timeout=60)
    line = ec_one_line(done, 2)
    assert f"cannot listen on 127.0.0.1:{port}" in line
    assert "--port" in line


# --- signals: interrupted at once, nothing half-published, nothing paid for lost ---------------


def ec_stages(project: Path) -> list[tuple[str, str, str]]:
    """(run status, stage, stage status) rows, read straight from the metadata database."""
    path = project / "warehouse" / "dataflow.db"
    if not path.exists():
        return []
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as db:
            rows = db.execute(
                "SELECT r.status, s.stage, s.status FROM runs r "
                "JOIN run_stages s ON s.run_id = r.run_id ORDER BY r.started_at, s.seq"
            ).fetchall()
    except sqlite3.Error:
        return []
    return [(str(a), str(b), str(c)) for a, b, c in rows]


def ec_runs(project: Path) -> list[dict[str, Any]]:
    done = ec_run("runs", "--project", str(project), "--format", "json")
    assert done.returncode == 0, done.stderr
    runs: list[dict[str, Any]] = json.loads(done.stdout)
    return runs


def ec_table(project: Path, table: str = "market.time_series") -> list[dict[str, Any]]:
    done = ec_run("query", "sql", f"SELECT {COLUMNS} FROM {table} ORDER BY symbol, interval, ts",
                  "--project", str(project), "--format", "json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


def ec_signal_when(
    project: Path, sig: signal.Signals, ready: Any, *args: str, timeout: float = 120
) -> tuple[int, str]:
    """Start `dataflow run`, send ``sig`` once ``ready(project)`` is true: exit code, stderr."""
    child = subprocess.Popen(
        ec_command("run", "--project", str(project), "--no-progress", *args),
        env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + timeout
    while not ready(project):
        if child.poll() is not None:
            _, err = child.communicate()
            raise AssertionError(f"the run ended before the signal: {err}")
        assert time.monotonic() < deadline, "the run never got there"
        time.sleep(0.02)
    child.send_signal(sig)
    _, err = child.communicate(timeout=60)
    return child.returncode, err


def ec_spooled(project: Path) -> int:
    """Answers the running (or stopped) ingest has journaled in full."""
    spools = list((project / "warehouse" / "spool").glob("*.spool"))
    return sum(read_spool(path).answers for path in spools)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_ingest_is_recorded_at_once_and_loses_nothing_paid_for(
    tmp_path: Path, sig: signal.Signals
) -> None:
    options = {"batch_size": 1, "max_concurrency": 1}
    reference = tmp_path / "reference"
    with SimulatorServer(SimulatorConfig(now=NOW)) as sim:
        ec_sim_project(reference, sim.url, **options)
        assert ec_run("run", "--project", str(reference), "--no-progress",
                      "--endpoints", "time_series").returncode == 0  # fmt: skip
    project = tmp_path / "p"
    with SimulatorServer(SimulatorConfig(now=NOW, latency_ms=150)) as slow:
        ec_sim_project(project, slow.url, **options)
        code, err = ec_signal_when(project, sig, lambda p: ec_spooled(p) >= 3,
                                   "--endpoints", "time_series")  # fmt: skip
    assert code == 128 + sig, err
    assert "Traceback" not in err
    # recorded by the process itself, before it exited: no later run had to find it
    assert ec_stages(project) == [("interrupted", "ingest", "interrupted")]
    spooled = ec_spooled(project)
    assert spooled >= 3
    assert not list((project / "warehouse" / "iceberg").rglob("*.json")), "nothing published"

    (killed,) = ec_runs(project)
    with SimulatorServer(SimulatorConfig(now=NOW)) as sim:
        ec_sim_project(project, sim.url, **options)
        again = ec_run("run", "--project", str(project), "--no-progress",
                       "--endpoints", "time_series")  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert [r["status"] for r in ec_runs(project)] == ["succeeded", "interrupted"]
    assert ec_table(project) == ec_table(reference)
    # every answer the stopped run received (and paid for) is in the raw zone now
    sql = f"SELECT count(*) AS n FROM raw.time_series WHERE run_id = '{killed['run_id']}'"
    landed = ec_run("query", "sql", sql, "--project", str(project), "--format", "json")
    assert landed.returncode == 0, landed.stderr
    assert json.loads(landed.stdout)[0]["n"] == spooled
    assert not list((project / "warehouse" / "spool").glob("*.spool"))


def test_sigterm_during_transform_is_recorded_and_publishes_nothing(tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    project = tmp_path / "p"
    with SimulatorServer(SimulatorConfig(now=NOW)) as sim:
        ec_sim_project(reference, sim.url)
        # two whole runs, as the project below gets: snapshot tables (prices, quotes) keep
        # one observation per run
        for _ in range(2):
            assert ec_run("run", "--project", str(reference), "--no-progress").returncode == 0
        ec_sim_project(project, sim.url)

        def transforming(p: Path) -> bool:
            return ("running", "transform", "running") in ec_stages(p)

        code, err = ec_signal_when(project, signal.SIGTERM, transforming)
        assert code == 143, err
        assert "Traceback" not in err
        stages = ec_stages(project)
        assert stages[-1] == ("interrupted", "transform", "interrupted"), stages
        tables = ec_run("catalog", "tables", "--project", str(project), "--format", "json")
        published = [t for t in json.loads(tables.stdout or "[]") if t.get("database") == "market"]
        assert all(not t.get("records") for t in published), "nothing half-written is published"

        again = ec_run("run", "--project", str(project), "--no-progress")
    assert again.returncode == 0, again.stderr
    assert [r["status"] for r in ec_runs(project)] == ["succeeded", "interrupted"]
    assert ec_table(project) == ec_table(reference)
    assert ec_records(project) == ec_records(reference)


def ec_records(project: Path) -> dict[str, int]:
    """Rows per clean table, as the catalog counts them."""
    done = ec_run("catalog", "tables", "--project", str(project), "--format", "json")
    assert done.returncode == 0, done.stderr
    return {t["name"]: t["records"] for t in json.loads(done.stdout) if t["database"] == "market"}
