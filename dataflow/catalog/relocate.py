"""``dataflow catalog relocate``: make a moved or copied project whole again.

Iceberg metadata records absolute locations (each metadata file, manifest list and manifest
names the files below it), so a table cannot follow its folder. Relocating therefore forgets
the catalog entries that still point to the old place — only the catalog rows: pyiceberg's SQL
catalog never deletes files on ``drop_table``, so the original (for a copy) is never touched —
and the next run rebuilds those tables in this warehouse from the raw zone, which is complete
and travelled with the project (architecture decision 3). Watermarks stay, so nothing is
fetched again. Crawled external tables under the old warehouse are pointed at the new one.

A copy whose catalog is shared (PostgreSQL) with an original that still exists is refused:
forgetting the entries would take the tables away from the original. Such a copy needs its own
``name`` (so its own schema) first.

Example:
    >>> relocate(settings)  # doctest: +SKIP
    Relocation(tables=['market.time_series'], old='/old/warehouse', new='/new/warehouse', ...)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from dataflow.errors import ConfigError

if TYPE_CHECKING:
    from dataflow.config import Settings


@dataclass
class Relocation:
    """What :func:`relocate` changed."""

    tables: list[str] = field(default_factory=list)
    """Iceberg tables forgotten here; the next run rebuilds them from raw."""
    old: str | None = None
    """The warehouse the tables were made in."""
    new: str = ""
    """This project's warehouse."""
    external: int = 0
    """Crawled external tables (and their versions and partitions) pointed at ``new``."""


def relocate(settings: Settings) -> Relocation:
    """Forget the catalog's tables outside this warehouse and re-point external tables.

    Raises:
        ConfigError: not a SQL catalog; or the catalog is shared with an original that exists.
        LockTimeoutError: a run of the project is under way.
    """
    from dataflow.config import CatalogType

    if settings.catalog.type != CatalogType.SQL:
        raise ConfigError(
            f"catalog relocate works on the sql catalog; catalog.type is "
            f"{settings.catalog.type.value} — move the tables with that catalog's own tools"
        )
    from dataflow.metadata.locks import project_lock

    # No run of this project may be writing while its tables are forgotten.
    with project_lock(settings, timeout=0) as lock:
        lock.acquire("catalog-relocate")
        return _relocate(settings)


def _relocate(settings: Settings) -> Relocation:
    from dataflow.catalog.iceberg import (
        location_exists,
        old_warehouse,
        open_catalog,
        tables_outside,
    )
    from dataflow.metadata import open_metadata
    from dataflow.metadata.schema import external_partitions, external_table_versions
    from dataflow.metadata.schema import external_tables as external

    result = Relocation(new=settings.warehouse_uri)
    catalog = open_catalog(settings, check=False)
    outside = tables_outside(settings, catalog)
    if outside:
        result.old = old_warehouse(outside[0][1])
        travelled = settings.catalog.url is None and _is_file_under(
            settings.metadata_url, settings.state_dir
        )
        still_there = [table for table, location in outside if location_exists(location)]
        if still_there and not travelled:
            raise ConfigError(
                f"the catalog is shared with the project whose warehouse is {result.old}, and "
                f"its tables (e.g. {still_there[0]}) are still there: relocating would take them "
                "from it — give this copy its own name (and so its own schema) or metadata.url"
            )
        for table, _location in outside:
            namespace, name = table.split(".", 1)
            catalog.drop_table((namespace, name))  # the catalog row only, never a file
            result.tables.append(table)
    if result.old is None:
        result.old = _old_external_root(settings)
    if result.old and result.old != result.new:
        db = open_metadata(settings.metadata_url)
        try:
            with db.begin() as conn:
                for rows in (external, external_table_versions, external_partitions):
                    location = rows.c.location
                    changed = conn.execute(
                        sa.update(rows)
                        .where(location.startswith(result.old + "/", autoescape=True))
                        .values(location=result.new + sa.func.substr(location, len(result.old) + 1))
                    )
                    if rows is external:
                        result.external = changed.rowcount
        finally:
            db.dispose()
    return result


def _is_file_under(url: str, folder: Path) -> bool:
    """True when ``url`` is a SQLite file inside ``folder`` (it moves with the project)."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return False
    return Path(parsed.database).resolve().is_relative_to(folder.resolve())


def _old_external_root(settings: Settings) -> str | None:
    """The old warehouse as the crawled raw tables remember it (when no Iceberg table does)."""
    from dataflow.metadata import open_metadata
    from dataflow.metadata.schema import external_tables

    db = open_metadata(settings.metadata_url)
    try:
        with db.read() as conn:
            locations = conn.execute(sa.select(external_tables.c.location)).scalars().all()
    finally:
        db.dispose()
    marker = "/raw/"
    for location in locations:
        root = str(location).split(marker, 1)[0] if marker in str(location) else None
        if root and root != settings.warehouse_uri:
            return root
    return None


__all__ = ["Relocation", "relocate"]
