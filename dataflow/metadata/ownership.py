"""Which project owns a warehouse, and the checks a run makes before it spends anything.

The warehouse (a folder or an ``s3://`` prefix) holds a small marker object,
``_dataflow/project.json``, naming the project that first ran on it. A project whose ``name``
differs is refused with one line (:class:`~dataflow.errors.ConfigError`, exit 2) unless
``metadata.adopt`` is set, which rewrites the marker (e.g. after renaming a project).
The metadata database has its own owner record (:mod:`dataflow.metadata.db`).

Example:
    >>> import tempfile
    >>> from dataflow.config import load_settings
    >>> from dataflow.storage import open_store
    >>> s = load_settings(tempfile.mkdtemp(), env={})
    >>> claim_warehouse(s, open_store(s))
    'dataflow'
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import socket
from typing import TYPE_CHECKING

from dataflow.errors import ConfigError, ImmutableError, StorageError

if TYPE_CHECKING:
    from dataflow.config import Settings
    from dataflow.storage import ObjectStore

log = logging.getLogger("dataflow.metadata.ownership")

#: The marker's key under the warehouse root.
MARKER_KEY = "_dataflow/project.json"


def claim_warehouse(settings: Settings, store: ObjectStore) -> str:
    """Record this project as the warehouse's owner, or refuse one another project owns.

    Returns:
        The owner's name (this project's, once claimed).

    Raises:
        ConfigError: another project owns the warehouse and ``metadata.adopt`` is not set.
        StorageError: the marker cannot be read or written.
    """
    project = settings.name
    owner = _read_owner(store)
    if owner == project:
        return project
    marker = json.dumps(
        {
            "project": project,
            "claimed_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "host": socket.gethostname(),
        },
        indent=2,
    ).encode()
    if owner is None:
        try:
            store.put_bytes(MARKER_KEY, marker)
            return project
        except ImmutableError:
            owner = _read_owner(store)  # another process claimed it first: check who
            if owner == project:
                return project
    if not settings.metadata.adopt:
        raise ConfigError(
            f"the warehouse {settings.warehouse_uri} belongs to project {owner!r}, not "
            f"{project!r} — give this project its own warehouse, or set metadata.adopt: true "
            "(env DATAFLOW__METADATA__ADOPT=true) to take it over"
        )
    log.warning(
        "project %r takes over the warehouse %s from project %r (metadata.adopt)",
        project,
        settings.warehouse_uri,
        owner,
    )
    store.put_bytes(MARKER_KEY, marker, overwrite=True)
    return project


def check_state(settings: Settings, store: ObjectStore) -> None:
    """Everything a run checks before it fetches or writes: owners and table locations.

    The metadata database's owner was checked when it was opened. Here: the warehouse's owner,
    and (SQL catalogs) that every table of the catalog lives in this warehouse — after ``mv`` or
    ``cp -a`` of a project they do not (:func:`dataflow.catalog.iceberg.check_locations`).
    """
    from dataflow.catalog.iceberg import open_catalog
    from dataflow.config import CatalogType

    claim_warehouse(settings, store)
    if settings.catalog.type == CatalogType.SQL:
        open_catalog(settings)


def _read_owner(store: ObjectStore) -> str | None:
    if not store.exists(MARKER_KEY):
        return None
    try:
        data = json.loads(store.get_bytes(MARKER_KEY))
    except ValueError:
        raise StorageError(
            f"{MARKER_KEY} in the warehouse is not JSON — delete it and run again"
        ) from None
    owner = data.get("project") if isinstance(data, dict) else None
    return str(owner) if owner is not None else None


__all__ = ["MARKER_KEY", "check_state", "claim_warehouse"]
