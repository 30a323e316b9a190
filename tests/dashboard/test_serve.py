"""`dataflow serve` as a real process on 127.0.0.1: health, Prometheus, and the token rules."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dataflow.config import Settings, load_settings
from dataflow.pipeline import RunOptions, run_pipeline

TOKEN = "serve-test-token-5d1e"

# `dataflow serve`, whether or not the lead has wired it into dataflow/cli/app.py yet.
_CLI = """
import sys
from dataflow.cli import app as cli, serve
cli._register()
if not any(c.name == "serve" for c in cli.app.registered_commands):
    serve.register(cli.app)
sys.argv[0] = "dataflow"
cli.app()
"""


def _dataflow(*args: str) -> list[str]:
    return [sys.executable, "-c", _CLI, *args]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAFLOW")}
    return {**env, **extra}


@pytest.fixture(scope="module")
def api_project(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = load_settings(tmp_path_factory.mktemp("serve") / "project", env={})
    result = run_pipeline(settings, RunOptions(endpoints=["time_series", "quote"]))
    assert result.status == "succeeded", result.results
    return settings


class Served:
    """A running `dataflow serve` and the lines it wrote to stderr."""

    def __init__(
        self, process: subprocess.Popen[str], reader: threading.Thread, lines: list[str]
    ) -> None:
        self.process = process
        self.reader = reader
        self.lines = lines
        self.url = ""

    def wait(self) -> None:
        """Wait for the process and its stderr to end; close the pipe."""
        self.process.wait(timeout=10)
        self.reader.join(timeout=10)
        assert self.process.stderr is not None
        self.process.stderr.close()


def _start(project: Path, *args: str, env: dict[str, str] | None = None) -> Served:
    process = subprocess.Popen(
        _dataflow("serve", "--port", "0", "--project", str(project), *args),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env or _env(),
    )
    lines: list[str] = []
    found: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            match = re.search(r"Uvicorn running on (http://\S+)", line)
            if match:
                found.put(match.group(1))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    served = Served(process, reader, lines)
    try:
        served.url = found.get(timeout=20)
    except queue.Empty:
        process.kill()
        served.wait()
        pytest.fail("dataflow serve did not start:\n" + "".join(lines))
    return served


def _stop(served: Served) -> None:
    served.process.send_signal(signal.SIGTERM)
    try:
        served.wait()
    except subprocess.TimeoutExpired:
        served.process.kill()
        served.wait()
        pytest.fail("dataflow serve did not stop on SIGTERM")


@pytest.fixture
def api_server(api_project: Settings) -> Iterator[Served]:
    served = _start(api_project.project_dir)
    yield served
    _stop(served)


def test_serves_health_and_prometheus_on_loopback(api_server: Served) -> None:
    assert api_server.url.startswith("http://127.0.0.1:")
    with httpx.Client(base_url=api_server.url, timeout=10) as client:
        health = client.get("/healthz")
        assert health.status_code == 200, health.text
        assert health.json()["status"] == "ok"
        metrics = client.get("/metrics")
        assert metrics.status_code == 200, metrics.text
        assert 'dataflow_pipeline_runs{status="succeeded"} 1.0' in metrics.text
        assert "dataflow_ingest_requests{" in metrics.text
        query = client.post("/api/queries", json={"sql": "SELECT 41 + 1 AS answer"})
        assert query.status_code == 200, query.text
        assert query.json()["Status"]["State"] == "SUCCEEDED"
    startup = "".join(api_server.lines)
    assert "no token: reachable from this machine only" in startup


def test_stops_on_sigterm(api_project: Settings) -> None:
    served = _start(api_project.project_dir)
    _stop(served)
    output = "".join(served.lines)
    # uvicorn shuts down cleanly, then re-raises the signal so the exit status tells why.
    assert served.process.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output


def test_non_loopback_without_token_refuses_to_start(api_project: Settings) -> None:
    started = time.monotonic()
    result = subprocess.run(
        _dataflow(
            "serve", "--host", "0.0.0.0", "--port", "0", "--project", str(api_project.project_dir)
        ),
        capture_output=True,
        check=False,
        text=True,
        env=_env(),
        timeout=30,
    )
    assert result.returncode == 2, result.stderr
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "a token is required" in message
    assert "DATAFLOW_TOKEN" in message
    assert time.monotonic() - started < 30


def test_token_from_env_is_required_and_never_shown(api_project: Settings) -> None:
    # The token rules do not depend on the address, so the test can stay on 127.0.0.1 (a test
    # server never binds to another address).
    served = _start(api_project.project_dir, env=_env(DATAFLOW_TOKEN=TOKEN))
    try:
        with httpx.Client(base_url=served.url, timeout=10) as client:
            assert client.get("/healthz").status_code == 200
            for path in ("/metrics", "/api/runs", "/api/catalog/databases"):
                denied = client.get(path)
                assert denied.status_code == 401, denied.text
                allowed = client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
                assert allowed.status_code == 200, allowed.text
    finally:
        _stop(served)
    output = "".join(served.lines)
    assert "token required" in output
    assert TOKEN not in output


# Minutes of work on one core: it only ends when it is stopped.
RUNAWAY = "SELECT count(*) FROM range(1000000000) a, range(1000000) b WHERE a.range + b.range = -1"


def _start_runaway(client: httpx.Client) -> tuple[str, threading.Thread, list[httpx.Response]]:
    """POST a runaway query with a chosen id from a thread; return once it runs."""
    query_id = str(uuid.uuid4())
    answers: list[httpx.Response] = []

    def post() -> None:
        with contextlib.suppress(httpx.HTTPError):  # the server went away (shutdown test)
            answers.append(client.post("/api/queries", json={"sql": RUNAWAY, "query_id": query_id}))

    thread = threading.Thread(target=post, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while True:
        found = client.get(f"/api/queries/{query_id}")
        if found.status_code == 200 and found.json()["Status"]["State"] == "RUNNING":
            break
        assert time.monotonic() < deadline, found.text
        time.sleep(0.1)
    time.sleep(0.5)  # inside DuckDB by now
    return query_id, thread, answers


def test_a_running_query_is_stopped_and_sigterm_stops_the_server(api_project: Settings) -> None:
    from dataflow.query.execution import QueryRunner
    from dataflow.query.history import get_execution
    from dataflow.query.stop import CLIENT_GONE, SHUTDOWN_CANCELLED, USER_CANCELLED

    served = _start(api_project.project_dir)
    try:
        with httpx.Client(base_url=served.url, timeout=60) as client:
            stopped_id, thread, answers = _start_runaway(client)
            began = time.monotonic()
            stop = client.post(f"/api/queries/{stopped_id}/stop", json={})
            assert stop.status_code == 200, stop.text
            assert time.monotonic() - began < 5
            assert stop.json()["Status"]["State"] == "CANCELLED"
            assert stop.json()["Status"]["StateChangeReason"] == USER_CANCELLED
            thread.join(10)
            assert answers[0].status_code == 400
            assert "CANCELLED" in answers[0].json()["error"]
            missing = client.post("/api/queries/00000000-0000-4000-8000-000000000000/stop", json={})
            assert missing.status_code == 404, missing.text

            # A client that gives up (a timeout, a closed tab) stops its query.
            gone_id = str(uuid.uuid4())
            with (
                httpx.Client(base_url=served.url, timeout=2) as impatient,
                contextlib.suppress(httpx.TimeoutException),
            ):
                impatient.post("/api/queries", json={"sql": RUNAWAY, "query_id": gone_id})
            deadline = time.monotonic() + 5
            while True:
                status = client.get(f"/api/queries/{gone_id}").json()["Status"]
                if status["State"] != "RUNNING":
                    break
                assert time.monotonic() < deadline, "the query outlived its client"
                time.sleep(0.1)
            assert status["State"] == "CANCELLED"
            assert status["StateChangeReason"] == CLIENT_GONE

            running_id, _, _ = _start_runaway(client)
            began = time.monotonic()
            served.process.send_signal(signal.SIGTERM)
            served.wait()
            took = time.monotonic() - began
    finally:
        if served.process.poll() is None:
            served.process.kill()
            served.wait()
    assert took < 8, f"the server took {took:.1f} s to stop"
    assert served.process.returncode in (0, -signal.SIGTERM), "".join(served.lines)
    with QueryRunner(api_project) as runner:
        execution = get_execution(runner.db, running_id)
    assert execution.state == "CANCELLED"
    assert execution.state_change_reason == SHUTDOWN_CANCELLED
