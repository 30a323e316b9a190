"""Where file rules find their files: local paths and ``s3://`` objects, listed and hashed.

Local paths are read directly; ``s3://bucket/key`` (and ``s3a://``) through the project's object
store (:class:`dataflow.storage.S3Store`, s3fs) with the project's ``storage.s3`` settings, else
the standard AWS sources. An S3 path names one object when an object has exactly that key, else
every object under ``<key>/``; an object's modification time is its ``LastModified``. Checksums
of S3 objects read each object whole (one GET). botocore's errors become StorageErrors with the
configured secrets masked.

Example:
    >>> FileAccess().files("/no/such/dir")
    []
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import glob
import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dataflow.errors import QualityError, StorageError

if TYPE_CHECKING:
    from dataflow.config import S3Settings
    from dataflow.storage import S3Store

__all__ = [
    "HASH_ALGORITHMS",
    "FileAccess",
    "FileInfo",
    "checksum",
    "is_s3",
    "list_files",
    "local_file",
]

HASH_ALGORITHMS = {"MD5": "md5", "SHA-1": "sha1", "SHA-256": "sha256"}
"""FileMatch's ``hashAlgorithm`` values -> hashlib names; SHA-256 when the tag is absent."""

_S3_SCHEMES = ("s3://", "s3a://")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class FileInfo:
    """One file a rule checks: its path, size in bytes and modification time (UTC).

    ``path`` is a local path or an ``s3://bucket/key`` URI.
    """

    path: str
    size: int
    modified: dt.datetime

    @property
    def name(self) -> str:
        """The file name (the last part of the path)."""
        return self.path.rsplit("/", 1)[-1] if is_s3(self.path) else Path(self.path).name


def is_s3(text: str) -> bool:
    """True for an ``s3://`` or ``s3a://`` URI.

    Example:
        >>> is_s3("s3://bucket/x"), is_s3("data/x")
        (True, False)
    """
    return text.lower().startswith(_S3_SCHEMES)


class FileAccess:
    """Lists and reads the files of file rules: local paths, and ``s3://`` through S3Store.

    Args:
        s3: endpoint, region and credentials of S3 (the project's ``storage.s3``); None: the
            standard AWS sources (environment, profiles). Secrets are never part of a message:
            S3Store masks them in its errors.

    Example:
        >>> FileAccess().files("/no/such/dir")
        []
    """

    def __init__(self, s3: S3Settings | None = None) -> None:
        self._s3 = s3
        self._stores: dict[str, S3Store] = {}

    def _store(self, uri: str) -> tuple[S3Store, str]:
        """The store of the URI's bucket and the key (no leading slash) the URI names."""
        from dataflow.config import S3Settings
        from dataflow.storage import S3Store

        rest = uri.split("://", 1)[1]
        bucket, _, key = rest.partition("/")
        if not bucket:
            raise QualityError(f"{uri}: no bucket — write s3://bucket/prefix/")
        if bucket not in self._stores:
            self._stores[bucket] = S3Store(f"s3://{bucket}", self._s3 or S3Settings())
        return self._stores[bucket], key.lstrip("/")

    def files(self, location: str | Path) -> list[FileInfo]:
        """The file at ``location``, or every file under the folder (prefix), sorted by path."""
        text = str(location)
        if not is_s3(text):
            path = Path(text.removeprefix("file://"))
            if path.is_file():
                found = [path]
            elif path.is_dir():
                found = sorted(p for p in path.rglob("*") if p.is_file())
            else:
                found = []
            return [local_file(p) for p in found]
        store, key = self._store(text)
        with self._errors(text):
            if key and not key.endswith("/"):
                exact = [o for o in store.list(key) if o.key == key]
                if exact:
                    return [self._object(store, exact[0].key, exact[0].size, exact[0].modified)]
            prefix = key.rstrip("/") + "/" if key.strip("/") else ""
            listed = store.list(prefix)
        return [self._object(store, o.key, o.size, o.modified) for o in listed]

    def glob(self, pattern: str) -> list[FileInfo]:
        """The files a DuckDB-style glob (``*``, ``**``, ``?``, ``[...]``) matches."""
        if not is_s3(pattern):
            matched = sorted(glob.glob(pattern, recursive=True))
            return [local_file(Path(p)) for p in matched if Path(p).is_file()]
        store, key = self._store(pattern)
        fixed = re.split(r"[*?\[]", key, maxsplit=1)[0]
        folder = fixed.rsplit("/", 1)[0] + "/" if "/" in fixed else ""
        wanted = key.replace("**/", "*")  # fnmatch's * already crosses folders
        with self._errors(pattern):
            listed = store.list(folder)
        return [
            self._object(store, o.key, o.size, o.modified)
            for o in listed
            if fnmatch.fnmatchcase(o.key, wanted) or fnmatch.fnmatchcase(o.key, key)
        ]

    def is_file(self, location: str) -> bool:
        """True when ``location`` is one file (one object with exactly that key)."""
        if not is_s3(location):
            return Path(location.removeprefix("file://")).is_file()
        store, key = self._store(location)
        with self._errors(location):
            return bool(key) and not key.endswith("/") and store.exists(key)

    def checksum(self, location: str, algorithm: str = "SHA-256") -> str:
        """The lower-case hex digest of a file with one of :data:`HASH_ALGORITHMS`."""
        digest = hashlib.new(HASH_ALGORITHMS[algorithm])
        if is_s3(location):
            store, key = self._store(location)
            with self._errors(location):
                digest.update(store.get_bytes(key))
            return digest.hexdigest()
        with Path(location.removeprefix("file://")).open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()

    @contextmanager
    def _errors(self, uri: str) -> Iterator[None]:
        """botocore's errors (no credentials, bad endpoint) as a StorageError, secrets masked."""
        try:
            yield
        except StorageError:
            raise
        except Exception as exc:
            if not type(exc).__module__.startswith(("botocore", "aiobotocore", "s3fs")):
                raise
            detail = str(exc) or type(exc).__name__
            for secret in (self._s3.access_key_id, self._s3.secret_access_key) if self._s3 else ():
                if secret is not None and secret.get_secret_value():
                    detail = detail.replace(secret.get_secret_value(), "***")
            raise StorageError(f"{uri}: cannot read ({detail})") from exc

    @staticmethod
    def _object(store: S3Store, key: str, size: int, modified: dt.datetime | None) -> FileInfo:
        return FileInfo(store.url_for(key), size, modified or _EPOCH)


def list_files(path: str | Path, *, s3: S3Settings | None = None) -> list[FileInfo]:
    """The file at ``path``, or every file under the folder ``path`` (sorted by path).

    ``path`` may be an ``s3://bucket/prefix`` URI (read with ``s3``, see :class:`FileAccess`).

    Example:
        >>> list_files(Path("/no/such/dir"))
        []
    """
    return FileAccess(s3).files(path)


def checksum(path: str | Path, algorithm: str = "SHA-256", *, s3: S3Settings | None = None) -> str:
    """The lower-case hex digest of a file with one of :data:`HASH_ALGORITHMS`.

    Example:
        >>> checksum(Path("prices.csv"), "MD5")  # doctest: +SKIP
        '3ee0d8617ac041793154713e5ef8f319'
    """
    return FileAccess(s3).checksum(str(path), algorithm)


def local_file(path: Path) -> FileInfo:
    """The :class:`FileInfo` of a local file (its size and mtime, UTC)."""
    stat = path.stat()
    return FileInfo(str(path), stat.st_size, dt.datetime.fromtimestamp(stat.st_mtime, dt.UTC))
