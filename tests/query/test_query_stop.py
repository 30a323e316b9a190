"""Stopping queries: the workgroup's time limit, StopQueryExecution, Ctrl-C, a server stopping.

A runaway query once kept a core busy after its client left and stayed RUNNING forever.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataflow.config import Settings, load_settings
from dataflow.errors import ConfigError
from dataflow.query.config import QueryConfig, Workgroup
from dataflow.query.errors import QueryCancelledError, QueryError
from dataflow.query.execution import QueryRunner
from dataflow.query.history import QueryExecution, QueryState, get_execution, insert_execution
from dataflow.query.stop import (
    SHUTDOWN_CANCELLED,
    TIME_LIMIT_ERROR,
    USER_CANCELLED,
    running,
    stop_all,
    stop_query,
    stop_running,
    timeout_reason,
)

# Minutes of work on one core: it only ends when it is stopped.
RUNAWAY = "SELECT count(*) FROM range(1000000000) a, range(1000000) b WHERE a.range + b.range = -1"


# `dataflow` with Ctrl-C delivered as in a terminal: a test run in a shell's background job
# ignores SIGINT, and its children would inherit that.
AS_IN_A_TERMINAL = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'dataflow'; runpy.run_module('dataflow', run_name='__main__')"
)


@pytest.fixture(scope="module")
def st_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return load_settings(tmp_path_factory.mktemp("stop") / "project", env={})


@pytest.fixture
def st_runner(st_settings: Settings) -> Iterator[QueryRunner]:
    config = QueryConfig(
        workgroups={
            "primary": Workgroup("primary"),
            "quick": Workgroup("quick", query_timeout_seconds=0.5),
        }
    )
    with QueryRunner(st_settings, config=config) as runner:
        yield runner


def _in_thread(runner: QueryRunner, query_id: str) -> tuple[threading.Thread, list[BaseException]]:
    raised: list[BaseException] = []

    def target() -> None:
        try:
            runner.run(RUNAWAY, query_id=query_id)
        except BaseException as exc:  # the test reads it
            raised.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while query_id not in running():
        assert time.monotonic() < deadline, "the query never started"
        time.sleep(0.02)
    time.sleep(0.3)  # inside DuckDB by now
    return thread, raised


def test_the_default_time_limit_is_finite_and_athenas() -> None:
    assert QueryConfig().workgroup().query_timeout_seconds == 1800
    assert timeout_reason(1800) == "Query exceeded the maximum execution time limit of 30.00m"


def test_a_query_over_its_workgroup_time_limit_fails(st_runner: QueryRunner) -> None:
    began = time.monotonic()
    with pytest.raises(QueryError) as caught:
        st_runner.run(RUNAWAY, workgroup="quick")
    elapsed = time.monotonic() - began
    assert caught.value.error_type == TIME_LIMIT_ERROR
    assert 0.5 <= elapsed < 5, elapsed
    executions = [e for e in _history(st_runner) if e.workgroup == "quick"]
    last = executions[0]
    assert last.state is QueryState.FAILED
    assert last.error_type == TIME_LIMIT_ERROR
    assert last.state_change_reason == str(caught.value)
    assert last.state_change_reason.endswith(timeout_reason(0.5))
    # The session is usable again at once.
    assert st_runner.run("SELECT 42 AS n", workgroup="quick").result.rows == [(42,)]


def test_stop_query_cancels_a_running_query(st_runner: QueryRunner) -> None:
    query_id = str(uuid.uuid4())
    thread, raised = _in_thread(st_runner, query_id)
    began = time.monotonic()
    stopped = stop_query(st_runner.db, query_id)
    thread.join(10)
    assert not thread.is_alive()
    assert time.monotonic() - began < 5
    assert stopped.state is QueryState.CANCELLED
    assert stopped.state_change_reason == USER_CANCELLED
    assert isinstance(raised[0], QueryCancelledError)
    assert raised[0].reason == USER_CANCELLED
    assert query_id not in running()


def test_stop_all_cancels_for_a_shutdown(st_runner: QueryRunner) -> None:
    query_id = str(uuid.uuid4())
    thread, raised = _in_thread(st_runner, query_id)
    assert stop_all() >= 1
    thread.join(10)
    assert not thread.is_alive()
    assert isinstance(raised[0], QueryCancelledError)
    assert get_execution(st_runner.db, query_id).state_change_reason == SHUTDOWN_CANCELLED


def test_stopping_a_finished_or_orphaned_query(st_runner: QueryRunner) -> None:
    done = st_runner.run("SELECT 1").execution
    assert stop_query(st_runner.db, done.query_id).state is QueryState.SUCCEEDED
    orphan = QueryExecution.new("SELECT 2", dialect="duckdb", workgroup="primary")
    orphan.state = QueryState.RUNNING  # its process died
    insert_execution(st_runner.db, orphan)
    assert stop_query(st_runner.db, orphan.query_id).state is QueryState.CANCELLED
    assert get_execution(st_runner.db, orphan.query_id).state is QueryState.CANCELLED
    with pytest.raises(ConfigError):
        stop_query(st_runner.db, str(uuid.uuid4()))


def test_a_chosen_query_id_must_be_a_new_uuid(st_runner: QueryRunner) -> None:
    with pytest.raises(ConfigError, match="not a UUID"):
        st_runner.run("SELECT 1", query_id="../../etc")
    chosen = str(uuid.uuid4())
    assert st_runner.run("SELECT 1", query_id=chosen).execution.query_id == chosen
    with pytest.raises(ConfigError, match="is taken"):
        st_runner.run("SELECT 1", query_id=chosen)


def test_ctrl_c_in_dataflow_query_cancels_it(st_settings: Settings, tmp_path: Path) -> None:
    project = str(st_settings.project_dir)
    process = subprocess.Popen(
        [sys.executable, "-c", AS_IN_A_TERMINAL, "query", RUNAWAY, "--project", project],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 60
        while not any(e.state is QueryState.RUNNING for e in _executions(st_settings)):
            assert time.monotonic() < deadline, "the query never started"
            time.sleep(0.1)
        time.sleep(1)  # inside DuckDB by now
        began = time.monotonic()
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
    assert time.monotonic() - began < 5
    assert process.returncode == 130, stderr
    assert "CANCELLED" in stderr
    assert "Traceback" not in stderr
    last = _executions(st_settings)[0]
    assert last.state is QueryState.CANCELLED
    assert last.state_change_reason == USER_CANCELLED


def _executions(settings: Settings) -> list[QueryExecution]:
    with QueryRunner(settings) as runner:
        return _history(runner)


def _history(runner: QueryRunner) -> list[QueryExecution]:
    from dataflow.query.history import list_executions

    return list_executions(runner.db, limit=20)


def test_a_query_stopped_before_it_runs_is_recorded_cancelled(st_runner: QueryRunner) -> None:
    query_id = str(uuid.uuid4())
    raised: list[BaseException] = []

    def target() -> None:
        try:
            st_runner.run(RUNAWAY, query_id=query_id)
        except BaseException as exc:  # the test reads it
            raised.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    while query_id not in running():
        time.sleep(0.001)
    stop_running(query_id)  # at once: while it is recorded or planned
    thread.join(10)
    assert isinstance(raised[0], QueryCancelledError)
    execution = get_execution(st_runner.db, query_id)
    assert execution.state is QueryState.CANCELLED
    assert execution.state_change_reason == USER_CANCELLED
