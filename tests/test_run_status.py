"""A run is `succeeded` only when it got what it asked for — whole `dataflow` processes.

Dead networks (a closed port, a name that does not resolve, https to a plain-HTTP server) fail
within seconds on every plan; requests the API refuses (the simulator answers 404 for endpoints
it does not serve, 400 for `earliest_timestamp` without `interval`, 404 for unknown symbols) make
the run `partial` or `failed`, exit 1, fire the default run-failed alarm, and `dataflow runs show`
lists each one.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ENV = {**os.environ, "DATAFLOW__LOGGING__LEVEL": "INFO", "COLUMNS": "200"}
ENV.pop("TWELVEDATA_API_KEY", None)


def rs_dataflow(*args: str, key: str | None = None, timeout: float = 300) -> Any:
    env = dict(ENV)
    if key is not None:
        env["TWELVEDATA_API_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "dataflow", *args],
        env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def rs_project(root: Path, **twelvedata: Any) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    config = {"sources": {"twelvedata": {"history_start": "2026-07-01", **twelvedata}}}
    (root / "dataflow.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return root


def rs_runs(project: Path) -> list[dict[str, Any]]:
    shown = rs_dataflow("runs", "--project", str(project), "--format", "json")
    assert shown.returncode == 0, shown.stderr
    runs: list[dict[str, Any]] = json.loads(shown.stdout)
    return runs


def rs_alarm_state(project: Path, name: str = "dataflow-run-failed") -> str:
    shown = rs_dataflow("alarms", "list", "--project", str(project), "--format", "json")
    assert shown.returncode == 0, shown.stderr
    (alarm,) = [a for a in json.loads(shown.stdout) if a["name"] == name]
    return str(alarm["state"])


@pytest.fixture(scope="module")
def rs_plain_http() -> Iterator[str]:
    """A plain-HTTP server on loopback, to be spoken to in https."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def rs_closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("plan", ["unlimited", "basic"])
@pytest.mark.parametrize(
    ("kind", "cause"),
    [
        ("refused", "connection refused"),
        ("dns", "the host name does not resolve"),
        ("tls", "TLS handshake failed"),
    ],
)
def test_a_dead_network_fails_the_run_within_seconds(
    tmp_path: Path, rs_plain_http: str, kind: str, cause: str, plan: str
) -> None:
    url = {
        "refused": f"http://127.0.0.1:{rs_closed_port()}",
        "dns": "http://nowhere.invalid",
        "tls": rs_plain_http,
    }[kind]
    project = rs_project(tmp_path / "p", base_url=url, plan=plan)
    started = time.monotonic()
    done = rs_dataflow("run", "--project", str(project), "--no-progress", key="k-123", timeout=120)
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    # the process's own start-up is ~2 s on a busy machine; before, this took 124 s (an hour on
    # the free plan)
    assert elapsed < 15, f"{elapsed:.1f} s"
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ingest stage failed in run "), last
    assert f"cannot connect to {url}: {cause}" in last
    assert "check sources.twelvedata.base_url / your network" in last
    assert "read_timeout" not in done.stderr
    warnings = [line for line in done.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) <= 3, warnings
    (run,) = rs_runs(project)
    assert run["status"] == "failed"
    assert [s["status"] for s in run["stages"]] == ["failed"]
    assert not (project / "warehouse" / "raw").exists() or not list(
        (project / "warehouse" / "raw").rglob("*.jsonl.gz")
    ), "nothing was received, so nothing landed"
    assert rs_alarm_state(project) == "ALARM"


def test_refused_requests_make_the_run_partial_and_runs_show_lists_them(tmp_path: Path) -> None:
    project = rs_project(tmp_path / "p")
    done = rs_dataflow(
        "run", "--project", str(project), "--no-progress",
        "--endpoints", "time_series,wma,adx,cci,willr,earliest_timestamp",
        "--symbols", "AAPL,NOSUCH1",
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    (run,) = rs_runs(project)
    assert run["status"] == "partial"
    stages = {s["stage"]: s for s in run["stages"]}
    assert stages["ingest"]["status"] == "partial"
    # the later stages still ran on what landed
    assert stages["transform"]["status"] == "succeeded"
    assert stages["transform"]["rows"] > 0
    failures = stages["ingest"]["details"]["failures"]
    found = {(f["endpoint"], f["symbol"], f["interval"], f["status"]) for f in failures}
    expected = {
        ("time_series", "NOSUCH1", "1day", 404),
        ("time_series", "NOSUCH1", "1h", 404),
        ("earliest_timestamp", "AAPL", None, 400),
        ("earliest_timestamp", "NOSUCH1", None, 404),
    } | {
        (endpoint, symbol, "1day", 404)
        for endpoint in ("wma", "adx", "cci", "willr")
        for symbol in ("AAPL", "NOSUCH1")
    }
    assert found == expected
    assert stages["ingest"]["details"]["failures_total"] == len(expected)
    messages = {(f["endpoint"], f["symbol"]): f["error"] for f in failures}
    assert "Endpoint /wma not found" in messages["wma", "AAPL"]
    assert "interval" in messages["earliest_timestamp", "AAPL"]
    assert rs_alarm_state(project) == "ALARM"

    shown = rs_dataflow("runs", "show", run["run_id"], "--project", str(project))
    assert shown.returncode == 0, shown.stderr
    assert f"ingest: {len(expected)} request(s) without a usable answer" in shown.stdout
    for endpoint in ("wma", "adx", "cci", "willr", "earliest_timestamp"):
        assert endpoint in shown.stdout
    assert "NOSUCH1" in shown.stdout


def test_a_run_whose_every_request_fails_is_failed(tmp_path: Path) -> None:
    project = rs_project(tmp_path / "p")
    done = rs_dataflow(
        "ingest", "--project", str(project), "--no-progress", "--endpoints", "wma,willr"
    )
    assert done.returncode == 1, done.stderr
    (run,) = rs_runs(project)
    assert run["status"] == "failed"
    assert run["stages"][0]["details"]["failures_total"] == 2 * 14  # 2 endpoints x 14 symbols


def test_a_run_that_gets_every_answer_succeeds_with_exit_0(tmp_path: Path) -> None:
    project = rs_project(tmp_path / "p")
    done = rs_dataflow(
        "ingest", "--project", str(project), "--no-progress", "--endpoints", "quote,time_series"
    )
    assert done.returncode == 0, done.stderr
    (run,) = rs_runs(project)
    assert run["status"] == "succeeded"
    assert run["stages"][0]["details"]["failures"] == []
    assert rs_alarm_state(project) == "OK"
