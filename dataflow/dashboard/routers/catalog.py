"""``/api/catalog``: databases, tables, and a table's versions, partitions and snapshots.

Tables are described as the Glue Data Catalog describes them (:mod:`dataflow.catalog.tables`);
an unknown table answers 404.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from dataflow.catalog.tables import DataCatalog
from dataflow.dashboard.deps import DbDep, SettingsDep

router = APIRouter(prefix="/api/catalog", tags=["catalog"])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such table"}}


def get_catalog(settings: SettingsDep, db: DbDep) -> DataCatalog:
    """The project's Data Catalog."""
    return DataCatalog(settings, db)


CatalogDep = Annotated[DataCatalog, Depends(get_catalog)]


@router.get("/databases", summary="Databases")
def databases(catalog: CatalogDep) -> list[str]:
    """Every database: Iceberg namespaces and the databases of external tables."""
    return catalog.databases()


@router.get("/tables", summary="Tables")
def tables(catalog: CatalogDep, database: str | None = None) -> list[dict[str, Any]]:
    """Every table (of one database if given), sorted by database and name."""
    return [t.as_dict() for t in catalog.tables(database)]


@router.get("/tables/{database}/{table}", summary="One table", responses=_NOT_FOUND)
def show(database: str, table: str, catalog: CatalogDep) -> dict[str, Any]:
    """Columns, partition keys, location, parameters; partitions (external) or snapshots."""
    return catalog.show(database, table).as_dict()


@router.get("/tables/{database}/{table}/versions", summary="Schema versions", responses=_NOT_FOUND)
def versions(database: str, table: str, catalog: CatalogDep) -> list[dict[str, Any]]:
    """Schema versions, oldest first."""
    return catalog.versions(database, table)


@router.get("/tables/{database}/{table}/partitions", summary="Partitions", responses=_NOT_FOUND)
def partitions(database: str, table: str, catalog: CatalogDep) -> list[dict[str, Any]]:
    """Partition values with their location (external) or records, files and bytes (Iceberg)."""
    return catalog.partitions(database, table)


@router.get(
    "/tables/{database}/{table}/snapshots",
    summary="Snapshots",
    responses={**_NOT_FOUND, 400: {"description": "An external table (no snapshots)"}},
)
def snapshots(database: str, table: str, catalog: CatalogDep) -> list[dict[str, Any]]:
    """Snapshots of an Iceberg table, oldest first."""
    return catalog.snapshots(database, table)


__all__ = ["get_catalog", "router"]
