"""The run lock lives where the state lives: two hosts cannot run one pipeline at once.

A "host" here is a process with its own project folder (so its own local state folder) sharing
the PostgreSQL metadata database or the S3 warehouse with the other: a local lock file could not
see the other host; the advisory lock and the S3 lock object do.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from dataflow.config import S3Settings, load_settings
from dataflow.errors import LockTimeoutError
from dataflow.metadata.lock import ProjectLock
from dataflow.metadata.locks import PostgresLock, S3Lock, project_lock

HOLDER = """
import sys, time
from dataflow.config import load_settings
from dataflow.metadata.locks import S3Lock, project_lock
if sys.argv[1] == "s3":
    from dataflow.config import S3Settings
    lock = S3Lock(sys.argv[2], S3Settings(**eval(sys.argv[4])), timeout=0, lease=2)
else:
    lock = project_lock(load_settings(sys.argv[2]), timeout=0)
with lock:
    lock.acquire(sys.argv[3])
    print("held", flush=True)
    time.sleep(600)
"""


@pytest.fixture
def holders() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate()  # waits and closes the pipes


def hold(holders: list[subprocess.Popen[str]], *args: str) -> subprocess.Popen[str]:
    """A process that takes the lock and keeps it until killed."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    holders.append(process)
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.strip() == "held", process.stderr.read() if process.stderr else line
    return process


def host(root: Path, **config: Any) -> Path:
    root.mkdir(parents=True)
    body = {"name": "shared", **config}
    (root / "dataflow.yaml").write_text(yaml.safe_dump(body))
    return root


def s3_config(url: str) -> dict[str, Any]:
    return {
        "endpoint_url": url,
        "region": "us-east-1",
        "access_key_id": "testing",
        "secret_access_key": "testing",
    }


def run(project: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATAFLOW__RUN__LOCK_TIMEOUT": "0"}
    return subprocess.run(
        [sys.executable, "-m", "dataflow", "run", "--no-progress", "--endpoints", "time_series",
         "--project", str(project)],
        check=False, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip


def test_two_hosts_sharing_postgres_cannot_run_at_once(
    tmp_path: Path, md_pg_url: str, holders: list[subprocess.Popen[str]]
) -> None:
    symbols = {"sources": {"twelvedata": {"symbols": {"stocks": ["AAPL"], "forex": [],
                                                      "crypto": []}}}}  # fmt: skip
    shared_wh = str(tmp_path / "shared-warehouse")
    one = host(tmp_path / "host1", metadata={"url": md_pg_url}, warehouse=shared_wh, **symbols)
    two = host(tmp_path / "host2", metadata={"url": md_pg_url}, warehouse=shared_wh, **symbols)
    assert isinstance(project_lock(load_settings(two, env={}), timeout=0), PostgresLock)
    holder = hold(holders, "pg", str(one), "run-on-host-1")

    refused = run(two)
    assert refused.returncode == 1, refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, refused.stderr
    [line] = lines
    assert "run-on-host-1" in line
    assert "holds the run lock of project 'shared'" in line
    assert "Traceback" not in refused.stderr

    holder.send_signal(signal.SIGKILL)  # a dead host's lock goes with its connection
    holder.communicate()
    done = run(two)
    assert done.returncode == 0, done.stderr


def test_two_hosts_sharing_an_s3_warehouse_cannot_run_at_once(
    tmp_path: Path, s3_server_url: str, holders: list[subprocess.Popen[str]]
) -> None:
    warehouse = f"s3://bucket/lock-{secrets.token_hex(4)}"
    s3 = {"storage": {"s3": s3_config(s3_server_url)}, "warehouse": warehouse}
    one, two = host(tmp_path / "host1", **s3), host(tmp_path / "host2", **s3)
    settings = load_settings(two, env={})
    assert settings.state_dir != load_settings(one, env={}).state_dir
    assert isinstance(project_lock(settings, timeout=0), S3Lock)
    hold(holders, "default", str(one), "run-on-host-1")

    refused = run(two)
    assert refused.returncode == 1, refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, refused.stderr
    [line] = lines
    assert "run-on-host-1" in line
    assert "_dataflow/run.lock" in line


def test_an_s3_lock_left_by_a_killed_holder_is_taken_over_once_stale(
    s3_server_url: str, holders: list[subprocess.Popen[str]]
) -> None:
    uri = f"s3://bucket/stale-{secrets.token_hex(4)}"
    s3 = s3_config(s3_server_url)
    holder = hold(holders, "s3", uri, "dead-run", repr(s3))
    live = S3Lock(uri, S3Settings(**s3), timeout=0, lease=2)
    with pytest.raises(LockTimeoutError, match="dead-run"):
        live.acquire("second")  # renewed every lease/3 while alive: never stale

    holder.send_signal(signal.SIGKILL)
    holder.communicate()
    started = time.monotonic()
    patient = S3Lock(uri, S3Settings(**s3), timeout=15, lease=2, poll=0.2)
    with patient:
        patient.acquire("second")
        waited = time.monotonic() - started
        assert patient.held
        assert 1.0 <= waited < 10, waited
        late = S3Lock(uri, S3Settings(**s3), timeout=0, lease=2)
        with pytest.raises(LockTimeoutError, match="second"):
            late.acquire("third")
    # Released: free at once.
    with S3Lock(uri, S3Settings(**s3), timeout=0) as again:
        again.acquire("fourth")


def test_only_one_of_two_racing_hosts_takes_a_stale_s3_lock(s3_server_url: str) -> None:
    uri = f"s3://bucket/race-{secrets.token_hex(4)}"
    s3 = S3Settings(**s3_config(s3_server_url))
    dead = S3Lock(uri, s3, timeout=0, lease=1)
    dead.acquire("dead")
    dead._stop.set()  # stops renewing, like a holder that hung
    time.sleep(2.2)
    contenders = [S3Lock(uri, s3, timeout=0, lease=30) for _ in range(4)]
    barrier = threading.Barrier(len(contenders))
    outcomes: list[str] = []

    def contend(lock: S3Lock, n: int) -> None:
        barrier.wait()
        try:
            lock.acquire(f"c{n}")
            outcomes.append("won")
        except LockTimeoutError:
            outcomes.append("lost")

    threads = [threading.Thread(target=contend, args=(lk, n)) for n, lk in enumerate(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert sorted(outcomes) == ["lost", "lost", "lost", "won"]
    finally:
        for lock in contenders:
            lock.release()


def test_a_local_project_keeps_the_lock_file(tmp_path: Path) -> None:
    lock = project_lock(load_settings(tmp_path, env={}), timeout=0)
    assert isinstance(lock, ProjectLock)
    assert lock.path == tmp_path / "warehouse" / "dataflow.lock"


def test_a_released_s3_lock_leaves_nothing_behind(tmp_path: Path, s3_server_url: str) -> None:
    warehouse = f"s3://bucket/released-{secrets.token_hex(4)}"
    project = host(tmp_path / "p", warehouse=warehouse, storage={"s3": s3_config(s3_server_url)})
    settings = load_settings(project, env={})
    lock = project_lock(settings, timeout=0)
    assert isinstance(lock, S3Lock)
    with lock:
        lock.acquire("r1")
        assert lock._get() is not None
    assert lock._get() is None, "deleted on release"
    with project_lock(settings, timeout=0) as again:
        again.acquire("r2")  # and free for the next run at once
