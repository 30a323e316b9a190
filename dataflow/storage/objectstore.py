"""Object stores: a local folder or an S3-compatible bucket, behind one small protocol.

Keys are relative, ``/``-separated paths under the store's root (``raw/twelvedata/quote/...``).
Every write is atomic — no reader ever sees a partly written object under its final name:

* :class:`LocalStore` writes a temp file (``.tmp-*``) in the target folder, fsyncs it, then
  links it to its final name (``os.link`` fails if the name exists, so "create only if absent"
  is atomic even between processes) or renames it over the old object, and fsyncs the folder.
* :class:`S3Store` sends one PUT (S3 objects appear whole); "create only if absent" uses a
  conditional PUT (``If-None-Match: *``) after an existence check, for stores that ignore it.

``put_bytes(..., overwrite=False)`` raises :class:`~dataflow.errors.ImmutableError` when the key
exists: the raw zone is append-only.

Example:
    >>> import tempfile
    >>> store = LocalStore(tempfile.mkdtemp())
    >>> store.put_bytes("raw/a.txt", b"hello")
    >>> store.get_bytes("raw/a.txt"), [o.key for o in store.list("raw/")]
    (b'hello', ['raw/a.txt'])
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from dataflow.errors import ConfigError, ImmutableError, StorageError

if TYPE_CHECKING:
    from dataflow.config import S3Settings, Settings

TEMP_PREFIX = ".tmp-"
S3_EXTRA_HINT = "install the s3 extra: pip install 'dataflow-etl[s3]'"


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object: its key (relative to the store root), size in bytes, last change."""

    key: str
    size: int
    modified: dt.datetime | None


@runtime_checkable
class ObjectStore(Protocol):
    """What the pipeline needs of a store: :class:`LocalStore` or :class:`S3Store`."""

    uri: str
    """The root: an absolute folder path or ``s3://bucket/prefix``."""

    def put_bytes(self, key: str, data: bytes, *, overwrite: bool = False) -> None:
        """Write an object atomically; ``overwrite=False``: ImmutableError if it exists."""
        ...

    def get_bytes(self, key: str) -> bytes:
        """Read a whole object; StorageError if it does not exist."""
        ...

    def exists(self, key: str) -> bool:
        """True when an object is stored under ``key``."""
        ...

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        """Objects whose key starts with ``prefix``, recursively, sorted by key."""
        ...

    def url_for(self, key: str) -> str:
        """The absolute path or ``s3://`` URI of an object."""
        ...


def check_key(key: str) -> str:
    """Validate an object key: relative, ``/``-separated, no empty, ``.``/``..`` or temp parts.

    Example:
        >>> check_key("raw/x/y.jsonl.gz")
        'raw/x/y.jsonl.gz'
    """
    parts = key.split("/")
    bad = (
        not key
        or "\\" in key
        or "\x00" in key
        or any(part in ("", ".", "..") for part in parts)
        or any(part.startswith(TEMP_PREFIX) for part in parts)
    )
    if bad:
        raise StorageError(
            f"invalid object key {key!r}: use a relative '/'-separated path without '.', '..', "
            f"empty parts or names starting with {TEMP_PREFIX!r}"
        )
    return key


class LocalStore:
    """An object store in a local folder (created on the first write).

    Args:
        root: the folder; relative paths are resolved against the current folder.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.uri = str(self.root)

    def __repr__(self) -> str:
        return f"LocalStore({self.uri!r})"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def put_bytes(self, key: str, data: bytes, *, overwrite: bool = False) -> None:
        """Write ``data`` under ``key``: temp file, fsync, link (or rename), fsync the folder.

        Raises:
            ImmutableError: ``overwrite`` is false and the key exists (the old object is intact).
            StorageError: the file system refused the write.
        """
        target = self._path(key)
        folder = target.parent
        tmp = folder / f"{TEMP_PREFIX}{target.name}-{secrets.token_hex(6)}"
        try:
            created = _make_dirs(folder)
            with open(tmp, "xb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            if overwrite:
                os.replace(tmp, target)
            else:
                _link_no_replace(tmp, target)
            _fsync_dir(folder)
            for new_dir in created:  # the entries of new folders must survive a crash too
                _fsync_dir(new_dir.parent)
        except FileExistsError:
            raise ImmutableError(
                f"{key}: already exists in {self.uri} — raw objects are never overwritten"
            ) from None
        except OSError as exc:
            raise StorageError(
                f"{key}: cannot write to {self.uri} ({exc.strerror or exc})"
            ) from exc
        finally:
            # After a link the temp name is a second name of the object; after a rename it is gone.
            tmp.unlink(missing_ok=True)

    def get_bytes(self, key: str) -> bytes:
        """Read a whole object.

        Raises:
            StorageError: no such object, or it cannot be read.
        """
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise StorageError(f"{key}: no such object in {self.uri}") from None
        except OSError as exc:
            raise StorageError(
                f"{key}: cannot read from {self.uri} ({exc.strerror or exc})"
            ) from exc

    def exists(self, key: str) -> bool:
        """True when a file is stored under ``key``."""
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        """Objects whose key starts with ``prefix`` (a plain string prefix, as on S3)."""
        # Walk only the deepest folder the prefix names, then filter by the string prefix.
        base_key = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        base = self._path(base_key) if base_key else self.root
        if not base.is_dir():
            return []
        found: list[ObjectInfo] = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if not d.startswith(TEMP_PREFIX)]
            for name in filenames:
                if name.startswith(TEMP_PREFIX):
                    continue
                path = Path(dirpath, name)
                key = path.relative_to(self.root).as_posix()
                if not key.startswith(prefix):
                    continue
                try:
                    stat = path.stat()
                except FileNotFoundError:  # removed by someone else while we walked
                    continue
                modified = dt.datetime.fromtimestamp(stat.st_mtime, tz=dt.UTC)
                found.append(ObjectInfo(key=key, size=stat.st_size, modified=modified))
        return sorted(found, key=lambda info: info.key)

    def url_for(self, key: str) -> str:
        """The absolute file path of an object."""
        return str(self._path(key))


def _make_dirs(folder: Path) -> list[Path]:
    """Create ``folder`` and missing parents; return the folders created, outermost first."""
    missing: list[Path] = []
    current = folder
    while not current.is_dir():
        missing.append(current)
        current = current.parent
    missing.reverse()
    for new_dir in missing:
        try:
            new_dir.mkdir()
        except FileExistsError:  # a concurrent writer made it first
            if not new_dir.is_dir():
                raise
    return missing


def _link_no_replace(source: Path, target: Path) -> None:
    """Give ``source`` the name ``target``, atomically failing if ``target`` exists."""
    try:
        os.link(source, target)
    except FileExistsError:
        raise
    except OSError as exc:
        # Some file systems (FAT, a few network mounts) have no hard links. Fall back to a
        # check-then-rename, which is atomic per file but can race with a concurrent writer.
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        if target.exists():
            raise FileExistsError(errno.EEXIST, "exists", str(target)) from None
        os.rename(source, target)


def _fsync_dir(folder: Path) -> None:
    """Make the new directory entry durable (no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class S3Store:
    """An object store in an S3-compatible bucket, through s3fs (imported only here).

    Credentials come from the settings, else from the standard AWS sources (``AWS_ACCESS_KEY_ID``,
    ``AWS_SECRET_ACCESS_KEY``, profiles, instance roles), as botocore resolves them.

    Args:
        uri: ``s3://bucket`` or ``s3://bucket/prefix``.
        s3: endpoint, region, credentials.

    Raises:
        ConfigError: s3fs is not installed, or the URI is not ``s3://bucket[/prefix]``.
    """

    def __init__(self, uri: str, s3: S3Settings) -> None:
        scheme, _, rest = uri.partition("://")
        bucket, _, prefix = rest.strip("/").partition("/")
        if scheme not in ("s3", "s3a") or not bucket:
            raise ConfigError(f"warehouse {uri!r} is not an S3 URI — use s3://bucket/prefix")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.uri = f"s3://{bucket}" + (f"/{self.prefix}" if self.prefix else "")
        self._secrets = [
            value.get_secret_value()
            for value in (s3.access_key_id, s3.secret_access_key)
            if value is not None and value.get_secret_value()
        ]
        try:
            import s3fs
        except ImportError:
            raise ConfigError(f"warehouse {self.uri} needs s3fs — {S3_EXTRA_HINT}") from None
        options: dict[str, Any] = {
            "anon": s3.anon,
            # Other processes write to the bucket: never answer list() from a stale cache,
            # and never share a cached instance configured with other credentials.
            "use_listings_cache": False,
            "skip_instance_cache": True,
        }
        if s3.access_key_id is not None:
            options["key"] = s3.access_key_id.get_secret_value()
        if s3.secret_access_key is not None:
            options["secret"] = s3.secret_access_key.get_secret_value()
        if s3.endpoint_url:
            options["endpoint_url"] = s3.endpoint_url
        if s3.region:
            options["client_kwargs"] = {"region_name": s3.region}
        self._fs = s3fs.S3FileSystem(**options)

    def __repr__(self) -> str:
        return f"S3Store({self.uri!r})"

    def _path(self, key: str) -> str:
        key = check_key(key)
        return f"{self.bucket}/{self.prefix}/{key}" if self.prefix else f"{self.bucket}/{key}"

    def _error(self, action: str, key: str, exc: BaseException) -> StorageError:
        detail = str(exc) or type(exc).__name__
        for secret in self._secrets:  # botocore never should, but a secret must not leak
            detail = detail.replace(secret, "***")
        return StorageError(f"{key}: cannot {action} {self.uri} ({detail})")

    def put_bytes(self, key: str, data: bytes, *, overwrite: bool = False) -> None:
        """Write ``data`` in a single PUT; with ``overwrite=False`` only if the key is absent.

        Raises:
            ImmutableError: ``overwrite`` is false and the key exists.
            StorageError: the store refused the write.
        """
        path = self._path(key)
        immutable = ImmutableError(
            f"{key}: already exists in {self.uri} — raw objects are never overwritten"
        )
        try:
            if overwrite:
                self._fs.pipe_file(path, data)
                return
            # The check catches stores that ignore If-None-Match; the conditional PUT closes
            # the race between two writers on stores (AWS S3, MinIO, moto) that honour it.
            if self._is_file(path):
                raise immutable
            self._fs.pipe_file(path, data, mode="create")
        except FileExistsError:
            raise immutable from None
        except OSError as exc:
            if _is_precondition_failure(exc):
                raise immutable from None
            raise self._error("write to", key, exc) from exc

    def get_bytes(self, key: str) -> bytes:
        """Read a whole object.

        Raises:
            StorageError: no such object, or it cannot be read.
        """
        try:
            data: bytes = self._fs.cat_file(self._path(key))
        except FileNotFoundError:
            raise StorageError(f"{key}: no such object in {self.uri}") from None
        except OSError as exc:
            raise self._error("read from", key, exc) from exc
        return data

    def exists(self, key: str) -> bool:
        """True when an object is stored under ``key``."""
        try:
            return self._is_file(self._path(key))
        except OSError as exc:
            raise self._error("check", key, exc) from exc

    def _is_file(self, path: str) -> bool:
        # Not fs.exists/isfile: they answer True for "folders" and swallow auth errors.
        try:
            info: dict[str, Any] = self._fs.info(path)
        except FileNotFoundError:
            return False
        return info.get("type") == "file"

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        """Objects whose key starts with ``prefix`` (a plain string prefix)."""
        base_key = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        root = f"{self.bucket}/{self.prefix}" if self.prefix else self.bucket
        base = self._path(base_key) if base_key else root
        try:
            entries: dict[str, dict[str, Any]] = self._fs.find(base, detail=True)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise self._error("list", prefix or "/", exc) from exc
        found: list[ObjectInfo] = []
        for path, entry in entries.items():
            if entry.get("type") != "file" or not path.startswith(root + "/"):
                continue
            key = path[len(root) + 1 :]
            if not key.startswith(prefix) or Path(key).name.startswith(TEMP_PREFIX):
                continue
            modified = entry.get("LastModified")
            found.append(
                ObjectInfo(
                    key=key,
                    size=int(entry.get("size") or 0),
                    modified=(
                        modified.astimezone(dt.UTC) if isinstance(modified, dt.datetime) else None
                    ),
                )
            )
        return sorted(found, key=lambda info: info.key)

    def url_for(self, key: str) -> str:
        """The ``s3://`` URI of an object."""
        return f"s3://{self._path(key)}"


def _is_precondition_failure(exc: BaseException) -> bool:
    """A conditional PUT lost: 412 PreconditionFailed, or 409 for a concurrent conditional PUT."""
    cause = exc.__cause__
    response = getattr(cause, "response", None)
    if not isinstance(response, dict):
        return False
    code = str(response.get("Error", {}).get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in ("PreconditionFailed", "ConditionalRequestConflict", "412") or status == 412


def open_store(settings: Settings) -> ObjectStore:
    """The warehouse of a project: a :class:`LocalStore` or, for ``s3://``, an :class:`S3Store`.

    Example:
        >>> from dataflow.config import load_settings
        >>> s = load_settings("/tmp/p", overrides={"warehouse": "/tmp/wh"}, env={})
        >>> open_store(s).uri
        '/tmp/wh'
    """
    if not settings.warehouse_is_remote:
        return LocalStore(settings.warehouse_uri)
    uri = settings.warehouse_uri
    scheme = uri.split("://", 1)[0].lower()
    if scheme not in ("s3", "s3a"):
        raise ConfigError(
            f"warehouse {uri!r}: unsupported scheme {scheme!r} — use a folder or s3://bucket/prefix"
        )
    return S3Store(uri, settings.storage.s3)
