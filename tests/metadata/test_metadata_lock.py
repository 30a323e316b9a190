"""The project lock: waiting, timing out with a clear message, taking over after a kill."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataflow.errors import LockTimeoutError
from dataflow.metadata import ProjectLock


@pytest.fixture
def md_lock_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "dataflow.lock"


def test_acquire_records_the_holder_and_release_clears_it(md_lock_path: Path) -> None:
    lock = ProjectLock(md_lock_path, timeout=0)
    lock.acquire("run-1")
    try:
        on_disk = json.loads(md_lock_path.read_text())
        assert on_disk["run_id"] == "run-1"
        assert on_disk["pid"] == os.getpid()
        assert on_disk["host"] == socket.gethostname()
        assert on_disk["since"].endswith("+00:00")
        assert ProjectLock(md_lock_path, timeout=0).holder() == on_disk
    finally:
        lock.release()
    assert md_lock_path.read_text() == ""
    assert ProjectLock(md_lock_path, timeout=0).holder() is None
    lock.release()  # twice is harmless


def test_second_acquirer_waits_then_times_out_with_a_clear_message(md_lock_path: Path) -> None:
    with ProjectLock(md_lock_path, timeout=0, run_id="first"):
        second = ProjectLock(md_lock_path, timeout=0.5, poll=0.05)
        started = time.monotonic()
        with pytest.raises(LockTimeoutError) as info:
            second.acquire("second")
        waited = time.monotonic() - started
    assert 0.5 <= waited < 3
    message = str(info.value)
    assert message.startswith(
        f"another run (run first, pid {os.getpid()} on {socket.gethostname()}"
    )
    assert re.search(
        rf"holds the project lock {re.escape(str(md_lock_path))}; waited \d+\.\ds", message
    )
    assert message.endswith("— wait for it to finish or raise run.lock_timeout")
    assert info.value.exit_code == 1
    assert not second.held


def test_second_acquirer_gets_the_lock_when_the_first_releases(md_lock_path: Path) -> None:
    first = ProjectLock(md_lock_path, timeout=0)
    first.acquire("first")
    releaser = threading.Timer(0.3, first.release)
    releaser.start()
    second = ProjectLock(md_lock_path, timeout=10, poll=0.05)
    started = time.monotonic()
    with second.hold("second"):
        assert 0.25 <= time.monotonic() - started < 5
        assert second.holder()["run_id"] == "second"  # type: ignore[index]
    releaser.join()


CHILD_HOLDS_LOCK = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from dataflow.metadata import ProjectLock
    lock = ProjectLock(Path(sys.argv[1]), timeout=5)
    lock.acquire("killed-run")
    print("locked", flush=True)
    time.sleep(120)
    """
)


@pytest.fixture
def md_lock_child(md_lock_path: Path) -> Iterator[subprocess.Popen[str]]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD_HOLDS_LOCK, str(md_lock_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "locked"
        yield child
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=10)
        if child.stdout is not None:
            child.stdout.close()


def test_lock_of_a_killed_process_is_taken_over_at_once(
    md_lock_path: Path,
    md_lock_child: subprocess.Popen[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    lock = ProjectLock(md_lock_path, timeout=0.2, poll=0.05)
    assert lock.holder()["pid"] == md_lock_child.pid  # type: ignore[index]
    with pytest.raises(LockTimeoutError, match=f"run killed-run, pid {md_lock_child.pid}"):
        lock.acquire("mine")

    md_lock_child.send_signal(signal.SIGKILL)
    md_lock_child.wait(timeout=10)
    assert json.loads(md_lock_path.read_text())["run_id"] == "killed-run"  # left behind
    assert lock.holder() is None  # the file names a holder, but nobody holds the flock

    caplog.set_level(logging.WARNING, logger="dataflow.metadata.lock")
    taker = ProjectLock(md_lock_path, timeout=0)  # zero wait: must not need to wait at all
    taker.acquire("mine")
    try:
        assert json.loads(md_lock_path.read_text())["run_id"] == "mine"
    finally:
        taker.release()
    [record] = [r for r in caplog.records if r.name == "dataflow.metadata.lock"]
    assert "taking over the project lock" in record.getMessage()
    assert f"run killed-run, pid {md_lock_child.pid}" in record.getMessage()
    assert "(process gone)" in record.getMessage()


def test_acquire_twice_on_one_object_is_refused(md_lock_path: Path) -> None:
    from dataflow.errors import MetadataError

    lock = ProjectLock(md_lock_path, timeout=0)
    with lock.hold("r1"), pytest.raises(MetadataError, match="already held"):
        lock.acquire("r1")
    assert not lock.held


def test_context_manager_styles_both_release(md_lock_path: Path) -> None:
    with ProjectLock(md_lock_path, timeout=0, run_id="r1") as lock:
        assert lock.held
        assert lock.holder()["run_id"] == "r1"  # type: ignore[index]
    assert not lock.held
    with ProjectLock(md_lock_path, timeout=0) as lock:
        assert not lock.held  # no run id yet: entering does not acquire
        lock.acquire("r2")
        assert ProjectLock(md_lock_path, timeout=0).holder()["run_id"] == "r2"  # type: ignore[index]
    assert ProjectLock(md_lock_path, timeout=0).holder() is None

    with pytest.raises(RuntimeError), ProjectLock(md_lock_path, timeout=0) as lock:  # noqa: PT012
        lock.acquire("r3")
        raise RuntimeError("stage failed")
    assert ProjectLock(md_lock_path, timeout=0).holder() is None
