"""The project lock: one run of a project at a time.

An exclusive ``flock`` on a lock file in the state folder. The holder writes who it is (pid,
host, run id, since) into the file so a waiting run can say what it waits for. The kernel drops
an ``flock`` when its process dies, however it dies, so a lock left by a killed run is simply
free: the next run takes it over at once and logs whose it was.

The file is emptied on release, never deleted: deleting would let two processes lock two
different files of the same name. The descriptor is not inherited across ``exec``, so a child
process that outlives a run does not keep the project locked (a bare ``fork`` would share it).

Local file systems only: ``flock`` on NFS or SMB is unreliable, and POSIX only (no Windows).

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> lock = ProjectLock(Path(tempfile.mkdtemp()) / "dataflow.lock", timeout=0)
    >>> with lock.hold("20260101T000000Z-abcd"):
    ...     lock.holder()["run_id"]
    '20260101T000000Z-abcd'
    >>> lock.holder() is None
    True
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from dataflow.errors import LockTimeoutError, MetadataError

log = logging.getLogger("dataflow.metadata.lock")


class ProjectLock:
    """An exclusive lock on a project, held by one run.

    Args:
        path: the lock file (created with its folder), e.g. ``<state dir>/dataflow.lock``.
        timeout: seconds :meth:`acquire` waits for another holder; ``0`` tries once.
        poll: seconds between attempts while waiting.
        run_id: when given, ``with ProjectLock(...)`` acquires for this run on entry.

    As a context manager the lock is always released on exit. Entering acquires it only when
    ``run_id`` was given; otherwise call :meth:`acquire` inside the block::

        with ProjectLock(path, timeout=600) as lock:
            lock.acquire(run_id)
            ...
    """

    def __init__(
        self, path: Path, *, timeout: float, poll: float = 0.2, run_id: str | None = None
    ) -> None:
        self.path = Path(path)
        self.timeout = max(0.0, timeout)
        self.poll = max(0.01, poll)
        self.run_id = run_id
        self._fd: int | None = None
        self._info: dict[str, Any] | None = None

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._fd is not None

    def acquire(self, run_id: str) -> None:
        """Take the lock for ``run_id``, waiting up to ``timeout`` seconds for another run.

        Raises:
            LockTimeoutError: another run still holds it after ``timeout`` seconds.
            MetadataError: already held by this object, or the lock file cannot be opened.

        Example:
            >>> import tempfile
            >>> lock = ProjectLock(Path(tempfile.mkdtemp()) / "x.lock", timeout=1)
            >>> lock.acquire("r1"); lock.held
            True
            >>> lock.release()
        """
        if self._fd is not None:
            raise MetadataError(f"the project lock {self.path} is already held by this run")
        fd = self._open()
        start = time.monotonic()
        announced = False
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    waited = time.monotonic() - start
                    if waited >= self.timeout:
                        raise LockTimeoutError(self._timeout_message(fd, waited)) from None
                    if not announced:
                        log.info("waiting for the project lock: %s", _describe(_read(fd)))
                        announced = True
                    time.sleep(min(self.poll, max(0.0, self.timeout - waited)))
            previous = _read(fd)
            if previous:
                # The file names a holder, yet the flock was free: that holder died without
                # releasing (SIGKILL, power loss, OOM killer). The kernel freed its lock.
                state = "gone" if not _same_host_alive(previous) else "no longer holding it"
                log.warning(
                    "taking over the project lock %s left by %s (process %s)",
                    self.path,
                    _describe(previous),
                    state,
                )
            self._info = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "run_id": run_id,
                "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            }
            _write(fd, self._info)
        except BaseException:
            os.close(fd)  # closing drops the flock if we got it
            raise
        self._fd = fd
        self.run_id = run_id

    def release(self) -> None:
        """Give the lock up (a no-op when not held).

        Example:
            >>> import tempfile
            >>> ProjectLock(Path(tempfile.mkdtemp()) / "x.lock", timeout=0).release()
        """
        fd, self._fd = self._fd, None
        self._info = None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)  # empty = nobody; see the module docstring for why not unlink
        finally:
            os.close(fd)

    def holder(self) -> dict[str, Any] | None:
        """Who holds the lock (``pid``, ``host``, ``run_id``, ``since``), or ``None`` if free.

        Example:
            >>> import tempfile
            >>> ProjectLock(Path(tempfile.mkdtemp()) / "x.lock", timeout=0).holder() is None
            True
        """
        if self._info is not None:
            return dict(self._info)
        if not self.path.exists():
            return None
        fd = self._open()
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return _read(fd) or {}
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None  # free, whatever a dead holder left in the file
        finally:
            os.close(fd)

    @contextmanager
    def hold(self, run_id: str) -> Iterator[ProjectLock]:
        """Hold the lock for the ``with`` block.

        Example:
            >>> import tempfile
            >>> with ProjectLock(Path(tempfile.mkdtemp()) / "x.lock", timeout=0).hold("r") as lk:
            ...     lk.held
            True
        """
        self.acquire(run_id)
        try:
            yield self
        finally:
            self.release()

    def __enter__(self) -> ProjectLock:
        if self.run_id is not None and not self.held:
            self.acquire(self.run_id)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"ProjectLock({str(self.path)!r}, held={self.held})"

    # --- internals -------------------------------------------------------------------------------

    def _open(self) -> int:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise MetadataError(
                f"cannot open the project lock {self.path} ({exc.strerror}) — check that the "
                "state folder is writable"
            ) from exc

    def _timeout_message(self, fd: int, waited: float) -> str:
        return (
            f"another run ({_describe(_read(fd))}) holds the project lock {self.path}; "
            f"waited {waited:.1f}s — wait for it to finish or raise run.lock_timeout"
        )


def pid_alive(pid: int) -> bool:
    """True when a process with this id exists on this host (it may belong to another user).

    Example:
        >>> pid_alive(os.getpid())
        True
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read(fd: int) -> dict[str, Any] | None:
    """The holder recorded in the file, ``None`` if empty or half-written."""
    try:
        size = os.fstat(fd).st_size
        raw = os.pread(fd, max(size, 1), 0)
    except OSError:
        return None
    if not raw.strip():
        return None
    try:
        info = json.loads(raw)
    except ValueError:
        return None
    return info if isinstance(info, dict) else None


def _write(fd: int, info: dict[str, Any]) -> None:
    data = json.dumps(info).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    os.fsync(fd)


def _describe(info: dict[str, Any] | None) -> str:
    if not info:
        return "run unknown"
    return (
        f"run {info.get('run_id', '?')}, pid {info.get('pid', '?')} on {info.get('host', '?')}, "
        f"since {info.get('since', '?')}"
    )


def _same_host_alive(info: dict[str, Any]) -> bool:
    pid = info.get("pid")
    return info.get("host") == socket.gethostname() and isinstance(pid, int) and pid_alive(pid)


__all__ = ["ProjectLock", "pid_alive"]
