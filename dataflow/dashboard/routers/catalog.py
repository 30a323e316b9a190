"""``/api/catalog``: databases, tables, and a table's versions, partitions, snapshots, samples.

Tables are described as the Glue Data Catalog describes them (:mod:`dataflow.catalog.tables`);
an unknown table answers 404. Sample rows are read through the query layer's read-only
:class:`~dataflow.query.QuerySession` — no execution is recorded in the query history.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from dataflow.catalog.tables import DataCatalog
from dataflow.dashboard.deps import DbDep, SettingsDep

MAX_NAME = 255
"""The longest database or table name (Glue's limit)."""


def check_names(request: Request) -> None:
    """400 for a database or table name no catalog can hold: empty, blank, padded with spaces,
    longer than 255 characters, or with a control character (they once reached the catalog and
    answered 500)."""
    given = dict(request.path_params)
    if "database" in request.query_params:
        given["database"] = request.query_params["database"]
    for kind in ("database", "table"):
        name = given.get(kind)
        if name is None:
            continue
        if (
            not name.strip()
            or name != name.strip()
            or len(name) > MAX_NAME
            or any(unicodedata.category(char) in ("Cc", "Cf", "Cs") for char in name)
        ):
            shown = name[:40] + ("…" if len(name) > 40 else "")
            raise HTTPException(
                status_code=400,
                detail=f"{kind} {shown!r} is not a {kind} name: give 1-{MAX_NAME} characters "
                "without control characters or surrounding spaces (see /api/catalog/tables)",
            )


router = APIRouter(prefix="/api/catalog", tags=["catalog"], dependencies=[Depends(check_names)])

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
    return _ids_as_text(catalog.show(database, table).as_dict())


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
    """Snapshots of an Iceberg table, oldest first (ids as strings, see :func:`_ids_as_text`)."""
    return [_ids_as_text(snapshot) for snapshot in catalog.snapshots(database, table)]


@router.get("/tables/{database}/{table}/sample", summary="Sample rows", responses=_NOT_FOUND)
def sample(
    database: str,
    table: str,
    catalog: CatalogDep,
    settings: SettingsDep,
    db: DbDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> dict[str, Any]:
    """The first ``limit`` rows of a table (current snapshot), with column names and types.

    Read with the query layer's read-only session, not as an execution: browsing the catalog
    leaves no entries in the query history.
    """
    from dataflow.query import QuerySession

    found = catalog.show(database, table)  # 404 for an unknown table
    name = f"{_quoted(found.database)}.{_quoted(found.name)}"
    with QuerySession(settings, db) as session:
        result = session.execute(f"SELECT * FROM {name} LIMIT {limit}", max_rows=limit)
    return {
        "database": found.database,
        "table": found.name,
        "columns": [
            {"name": key, "type": kind}
            for key, kind in zip(result.json_keys(), result.types, strict=True)
        ],
        "rows": result.to_json_rows(),
        "limit": limit,
    }


_ID_FIELDS = ("snapshot_id", "parent_id", "current_snapshot_id")


def _ids_as_text(item: dict[str, Any]) -> dict[str, Any]:
    """Snapshot ids as strings: 64-bit ids lose digits in JavaScript's numbers (as the query
    API's ``Snapshots`` already gives them).

    Example:
        >>> _ids_as_text({"snapshot_id": 8707752063369904728, "parent_id": None})
        {'snapshot_id': '8707752063369904728', 'parent_id': None}
    """
    return {
        key: str(value) if key in _ID_FIELDS and isinstance(value, int) else value
        for key, value in item.items()
    }


def _quoted(identifier: str) -> str:
    """A DuckDB quoted identifier (the names come from the catalog, quoted all the same)."""
    return '"' + identifier.replace('"', '""') + '"'


__all__ = ["get_catalog", "router"]
