"""The run lock where the state lives: one run of a project at a time, across hosts.

Which lock a run takes follows where the project's state is shared:

* metadata on PostgreSQL: a session advisory lock (``pg_try_advisory_lock``) keyed by the project
  (:meth:`~dataflow.metadata.db.MetadataDB.lock_key`). PostgreSQL drops it when the holder's
  connection ends, so a killed run frees it at once; the holder's connection is named after
  the run (``application_name``) so a waiting run can say whom it waits for.
* warehouse on S3: a lock object ``_dataflow/run.lock`` created with a conditional write
  (``PUT`` with ``If-None-Match: *``). The holder renews it every ``lease / 3`` seconds; a lock
  not renewed for ``lease`` seconds (by the *server's* clock: ``Date`` minus ``Last-Modified``)
  belongs to a dead holder and is taken over with ``If-Match`` on its ETag, so of two hosts
  that find it stale only one wins.
* both remote: both locks; neither (a local project): the lock file of :mod:`.lock`.

Example:
    >>> from dataflow.config import load_settings
    >>> import tempfile
    >>> settings = load_settings(tempfile.mkdtemp(), env={})
    >>> with project_lock(settings, timeout=0) as lock:
    ...     lock.acquire("r1")
    ...     type(lock).__name__
    'ProjectLock'
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import threading
import time
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self

import sqlalchemy as sa

from dataflow.errors import ConfigError, LockTimeoutError, MetadataError, StorageError
from dataflow.metadata.db import MetadataDB
from dataflow.metadata.lock import ProjectLock

if TYPE_CHECKING:
    from dataflow.config import S3Settings, Settings

log = logging.getLogger("dataflow.metadata.lock")

#: The lock object's key under the warehouse root (S3).
S3_LOCK_KEY = "_dataflow/run.lock"
#: Seconds an S3 lock stays valid without renewal.
S3_LEASE_SECONDS = 60.0


class RunLock(Protocol):
    """What a run needs of a lock: take it for a run, give it back."""

    def acquire(self, run_id: str) -> None: ...

    def release(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class _Releasing:
    """``with lock:`` releases on exit, whatever happened."""

    def release(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _holder(run_id: str) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def _describe(info: dict[str, Any] | None) -> str:
    if not info:
        return "run unknown"
    return (
        f"run {info.get('run_id', '?')}, pid {info.get('pid', '?')} on {info.get('host', '?')}, "
        f"since {info.get('since', '?')}"
    )


class PostgresLock(_Releasing):
    """The run lock of a project whose metadata is on PostgreSQL (a session advisory lock).

    Args:
        url: the project's metadata URL (``Settings.metadata_url``).
        timeout: seconds :meth:`acquire` waits for another holder; ``0`` tries once.
    """

    def __init__(self, url: str, *, timeout: float, poll: float = 0.5) -> None:
        self._db = MetadataDB(url)
        self.timeout = max(0.0, timeout)
        self.poll = max(0.05, poll)
        self._conn: sa.Connection | None = None
        self.key = self._db.lock_key()

    def acquire(self, run_id: str) -> None:
        """Take the lock for ``run_id``, waiting up to ``timeout`` seconds.

        Raises:
            LockTimeoutError: another run (on any host) still holds it.
            MetadataError: the database cannot be reached.
        """
        if self._conn is not None:
            raise MetadataError("the project's run lock is already held by this run")
        try:
            conn = self._db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except sa.exc.OperationalError as err:
            raise MetadataError(
                f"metadata database {self._db.safe_url}: cannot take the run lock — check that "
                "it is reachable (metadata.url)"
            ) from err
        start = time.monotonic()
        try:
            # What a waiting run reports (PostgreSQL keeps 63 bytes of it).
            name = _describe(_holder(run_id)).split(", since", 1)[0][:63]
            conn.execute(sa.text("SELECT set_config('application_name', :n, false)"), {"n": name})
            while not conn.execute(
                sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}
            ).scalar_one():
                waited = time.monotonic() - start
                if waited >= self.timeout:
                    raise LockTimeoutError(
                        f"another run ({self._who(conn)}) holds the run lock of project "
                        f"{self._db.project!r} in {self._db.where}; waited {waited:.1f}s — wait "
                        "for it to finish or raise run.lock_timeout"
                    )
                time.sleep(min(self.poll, max(0.0, self.timeout - waited)))
        except BaseException:
            conn.close()
            self._db.dispose()
            raise
        self._conn = conn

    def _who(self, conn: sa.Connection) -> str:
        hi, lo = (self.key >> 32) & 0xFFFFFFFF, self.key & 0xFFFFFFFF
        row = conn.execute(
            sa.text(
                "SELECT a.application_name, a.backend_start FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
                "AND l.granted AND l.classid = :hi AND l.objid = :lo AND l.objsubid = 1 LIMIT 1"
            ),
            {"hi": hi, "lo": lo},
        ).first()
        if row is None or not row[0]:
            return "run unknown"
        since = row[1].isoformat(timespec="seconds") if row[1] is not None else "?"
        return f"{row[0]}, since {since}"

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._conn is not None

    def release(self) -> None:
        """Give the lock up (closing the session would too)."""
        conn, self._conn = self._conn, None
        try:
            if conn is not None:
                try:
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                finally:
                    conn.close()
        finally:
            self._db.dispose()


class S3Lock(_Releasing):
    """The run lock of a project whose warehouse is on S3: a lock object with a lease.

    Args:
        uri: the warehouse, ``s3://bucket/prefix``.
        s3: endpoint, region and credentials (``storage.s3``).
        timeout: seconds :meth:`acquire` waits for another holder; ``0`` tries once.
        lease: seconds the lock stays valid without renewal (renewed every ``lease / 3``).
    """

    def __init__(
        self,
        uri: str,
        s3: S3Settings,
        *,
        timeout: float,
        lease: float = S3_LEASE_SECONDS,
        poll: float = 1.0,
    ) -> None:
        scheme, _, rest = uri.partition("://")
        bucket, _, prefix = rest.strip("/").partition("/")
        if scheme not in ("s3", "s3a") or not bucket:
            raise ConfigError(f"warehouse {uri!r} is not an S3 URI — use s3://bucket/prefix")
        self.uri = uri
        self.bucket = bucket
        self.key = f"{prefix.strip('/')}/{S3_LOCK_KEY}" if prefix.strip("/") else S3_LOCK_KEY
        self.timeout = max(0.0, timeout)
        self.lease = max(1.0, lease)
        self.poll = max(0.05, poll)
        self._client = _s3_client(s3)
        self._etag: str | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._guard = threading.Lock()
        #: Set when a renewal found the lock taken over (this holder stalled past its lease).
        self.lost = False

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._etag is not None

    def acquire(self, run_id: str) -> None:
        """Take the lock for ``run_id``, waiting up to ``timeout`` seconds.

        Raises:
            LockTimeoutError: a live holder keeps it past ``timeout``.
            StorageError: the bucket cannot be reached.
        """
        if self._etag is not None:
            raise MetadataError("the project's run lock is already held by this run")
        body = json.dumps({**_holder(run_id), "lease_s": self.lease}).encode()
        start = time.monotonic()
        while True:
            etag = self._put(body, IfNoneMatch="*")
            if etag is None:
                current = self._get()
                if current is None:
                    continue  # released in between: try again at once
                info, current_etag, age = current
                # The holder's own lease decides, whatever ours is.
                lease = info.get("lease_s") if info else None
                if age > (lease if isinstance(lease, int | float) else self.lease):
                    etag = self._put(body, IfMatch=current_etag)
                    if etag is not None:
                        log.warning(
                            "taking over the run lock %s/%s left by %s (not renewed for %.0fs)",
                            self.uri,
                            S3_LOCK_KEY,
                            _describe(info),
                            age,
                        )
                if etag is None:
                    waited = time.monotonic() - start
                    if waited >= self.timeout:
                        raise LockTimeoutError(
                            f"another run ({_describe(info)}) holds the run lock {self.uri}/"
                            f"{S3_LOCK_KEY}; waited {waited:.1f}s — wait for it to finish or "
                            "raise run.lock_timeout"
                        )
                    time.sleep(min(self.poll, max(0.0, self.timeout - waited)))
                    continue
            self._etag = etag
            self._body = body
            self._stop.clear()
            self._renewer = threading.Thread(
                target=self._renew, name="dataflow-s3-lock", daemon=True
            )
            self._renewer.start()
            return

    def release(self) -> None:
        """Stop renewing and delete the lock object, if it is still ours."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
            self._renewer = None
        with self._guard:
            etag, self._etag = self._etag, None
        if etag is None or self.lost:
            return
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self.key, IfMatch=etag)
        except Exception as exc:  # a stale lock expires anyway; never fail a finished run
            log.warning("could not delete the run lock %s/%s: %s", self.uri, S3_LOCK_KEY, exc)

    def _renew(self) -> None:
        while not self._stop.wait(self.lease / 3):
            with self._guard:
                if self._etag is None:
                    return
                try:
                    etag = self._put(self._body, IfMatch=self._etag)
                except StorageError as exc:
                    log.warning("could not renew the run lock: %s", exc)
                    continue
                if etag is None:
                    self.lost = True
                    log.error(
                        "the run lock %s/%s was taken over by another run: this run stalled "
                        "longer than its lease (%.0fs)",
                        self.uri,
                        S3_LOCK_KEY,
                        self.lease,
                    )
                    return
                self._etag = etag

    def _put(self, body: bytes, **condition: str) -> str | None:
        """PUT the lock object if ``condition`` holds: its new ETag, or ``None`` if it did not."""
        try:
            response = self._client.put_object(
                Bucket=self.bucket, Key=self.key, Body=body, **condition
            )
        except Exception as exc:
            if _precondition_failed(exc):
                return None
            raise StorageError(
                f"cannot write the run lock {self.uri}/{S3_LOCK_KEY} ({_error_code(exc)}) — check "
                "the bucket and storage.s3"
            ) from exc
        return str(response["ETag"])

    def _get(self) -> tuple[dict[str, Any] | None, str, float] | None:
        """The holder, the ETag and the age in seconds by the server's clock; ``None``: absent."""
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self.key)
        except Exception as exc:
            if _error_code(exc) in ("NoSuchKey", "404"):
                return None
            raise StorageError(
                f"cannot read the run lock {self.uri}/{S3_LOCK_KEY} ({_error_code(exc)}) — check "
                "the bucket and storage.s3"
            ) from exc
        raw = response["Body"].read()
        try:
            info = json.loads(raw)
        except ValueError:
            info = None
        date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
        now = parsedate_to_datetime(date) if date else dt.datetime.now(dt.UTC)
        age = (now - response["LastModified"]).total_seconds()
        return (info if isinstance(info, dict) else None), str(response["ETag"]), age


def _s3_client(s3: S3Settings) -> Any:
    """A plain (synchronous) botocore S3 client; botocore comes with s3fs (extra ``s3``)."""
    try:
        import botocore.session  # type: ignore[import-untyped]
        from botocore.config import Config  # type: ignore[import-untyped]
    except ImportError:
        raise ConfigError(
            "an s3:// warehouse needs s3fs — install it with: pip install 'dataflow-etl[s3]'"
        ) from None
    kwargs: dict[str, Any] = {"config": Config(retries={"max_attempts": 3, "mode": "standard"})}
    if s3.endpoint_url:
        kwargs["endpoint_url"] = s3.endpoint_url
    if s3.region:
        kwargs["region_name"] = s3.region
    if s3.access_key_id is not None:
        kwargs["aws_access_key_id"] = s3.access_key_id.get_secret_value()
    if s3.secret_access_key is not None:
        kwargs["aws_secret_access_key"] = s3.secret_access_key.get_secret_value()
    if s3.anon:
        from botocore import UNSIGNED

        kwargs["config"] = kwargs["config"].merge(Config(signature_version=UNSIGNED))
    return botocore.session.get_session().create_client("s3", **kwargs)


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", "")) or type(exc).__name__
    return type(exc).__name__


def _precondition_failed(exc: BaseException) -> bool:
    # 412: the condition failed; 409: a concurrent conditional write to the same key won.
    return _error_code(exc) in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409")


class _Both(_Releasing):
    """Several locks taken in order and released in reverse."""

    def __init__(self, locks: list[RunLock]) -> None:
        self.locks = locks
        self._taken: list[RunLock] = []

    def acquire(self, run_id: str) -> None:
        for lock in self.locks:
            lock.acquire(run_id)
            self._taken.append(lock)

    def release(self) -> None:
        while self._taken:
            self._taken.pop().release()


def project_lock(settings: Settings, *, timeout: float) -> RunLock:
    """The run lock of a project, where its state lives (see the module docstring).

    Call ``acquire(run_id)`` inside ``with``; leaving the block releases it.
    """
    locks: list[RunLock] = []
    try:
        backend = sa.make_url(settings.metadata_url).get_backend_name()
    except sa.exc.ArgumentError:
        backend = ""  # opening the database says what is wrong with the URL
    if backend == "postgresql":
        locks.append(PostgresLock(settings.metadata_url, timeout=timeout))
    if settings.warehouse_is_remote:
        locks.append(S3Lock(settings.warehouse_uri, settings.storage.s3, timeout=timeout))
    if not locks:
        return ProjectLock(settings.state_dir / "dataflow.lock", timeout=timeout)
    return locks[0] if len(locks) == 1 else _Both(locks)


__all__ = ["S3_LEASE_SECONDS", "S3_LOCK_KEY", "PostgresLock", "RunLock", "S3Lock", "project_lock"]
