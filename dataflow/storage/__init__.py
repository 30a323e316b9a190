"""Storage: object stores (local folder or S3), the immutable raw zone, run manifests, replay.

Example:
    >>> import tempfile
    >>> store = LocalStore(tempfile.mkdtemp())
    >>> list_raw(store)
    []
"""

from __future__ import annotations

from dataflow.storage.manifest import (
    Manifest,
    RequestRecord,
    list_manifests,
    manifest_key,
    read_manifest,
    write_manifest,
)
from dataflow.storage.objectstore import LocalStore, ObjectInfo, ObjectStore, S3Store, open_store
from dataflow.storage.raw import (
    RAW_PREFIX,
    RawFile,
    RawFileInfo,
    RawWriter,
    iter_envelopes,
    list_raw,
    make_envelope,
    raw_key,
)
from dataflow.storage.replay import ImportResult, import_responses

__all__ = [
    "RAW_PREFIX",
    "ImportResult",
    "LocalStore",
    "Manifest",
    "ObjectInfo",
    "ObjectStore",
    "RawFile",
    "RawFileInfo",
    "RawWriter",
    "RequestRecord",
    "S3Store",
    "import_responses",
    "iter_envelopes",
    "list_manifests",
    "list_raw",
    "make_envelope",
    "manifest_key",
    "open_store",
    "raw_key",
    "read_manifest",
    "write_manifest",
]
