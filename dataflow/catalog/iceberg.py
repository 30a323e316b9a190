"""Iceberg catalog access: open the configured catalog, create and load clean tables.

The default catalog is pyiceberg's SQL catalog inside the metadata database (SQLite in the
warehouse), named ``dataflow``, with table data under ``<warehouse>/iceberg``. The catalog type
and URL are configuration: ``sql`` with any SQLAlchemy URL (Postgres when shared), ``rest`` (an
Iceberg REST catalog) or ``glue`` (AWS Glue Data Catalog) — see ``catalog:`` in dataflow.yaml.

Partition specs are written as text, one field per comma: ``interval, month(ts)``,
``bucket(16, symbol)``, ``truncate(4, code)``; transforms follow the Iceberg spec
(https://iceberg.apache.org/spec/#partition-transforms).

Example:
    >>> parse_partition("interval, month(ts)")
    [('identity', 'interval', None), ('month', 'ts', None)]
"""

from __future__ import annotations

import contextlib
import re
import weakref
from typing import TYPE_CHECKING, Any

from dataflow.errors import ConfigError, DataflowError, StorageError

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.catalog import Catalog
    from pyiceberg.partitioning import PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.table import Table

    from dataflow.config import Settings

CATALOG_NAME = "dataflow"
DEFAULT_NAMESPACE = "market"
CATALOG_TYPES = ("sql", "rest", "glue")
TRANSFORMS = ("identity", "year", "month", "day", "hour", "bucket", "truncate", "void")

_TOP_LEVEL_COMMA = re.compile(r",(?![^(]*\))")
_FIELD = re.compile(
    r"^(?:(?P<fn>[a-z]+)\(\s*(?:(?P<n>\d+)\s*,\s*)?(?P<col>\w+)\s*\)|(?P<bare>\w+))$"
)


def warehouse_location(settings: Settings) -> str:
    """Where table data goes: ``file://<warehouse>/iceberg`` or ``s3://…/iceberg``.

    Example:
        >>> from dataflow.config import load_settings
        >>> warehouse_location(load_settings("/p", overrides={"warehouse": "/wh"}, env={}))
        'file:///wh/iceberg'
    """
    root = settings.warehouse_uri
    if settings.warehouse_is_remote:
        return f"{root}/iceberg"
    return f"file://{root}/iceberg"


def _io_properties(settings: Settings) -> dict[str, str]:
    s3 = settings.storage.s3
    props: dict[str, str] = {}
    if s3.endpoint_url:
        props["s3.endpoint"] = s3.endpoint_url
    if s3.region:
        props["s3.region"] = s3.region
    if s3.access_key_id is not None:
        props["s3.access-key-id"] = s3.access_key_id.get_secret_value()
    if s3.secret_access_key is not None:
        props["s3.secret-access-key"] = s3.secret_access_key.get_secret_value()
    return props


def open_catalog(settings: Settings, *, check: bool = True) -> Catalog:
    """Open the project's Iceberg catalog.

    Args:
        settings: the project.
        check: refuse a SQL catalog whose tables live outside the warehouse (a moved or copied
            project, :func:`check_locations`); only ``dataflow catalog relocate`` opens it without.

    Raises:
        ConfigError: an unknown catalog type.
        StorageError: the catalog cannot be reached (the message never contains credentials).

    Example:
        >>> catalog = open_catalog(settings)  # doctest: +SKIP
        >>> catalog.list_namespaces()  # doctest: +SKIP
        [('market',)]
    """
    config = settings.catalog
    url = config.url.get_secret_value() if config.url is not None else None
    props: dict[str, str] = {"warehouse": warehouse_location(settings)}
    props.update(_io_properties(settings))
    props.update(config.properties)
    try:
        if config.type == "sql":
            from pyiceberg.catalog.sql import SqlCatalog

            if not settings.warehouse_is_remote:
                settings.state_dir.mkdir(parents=True, exist_ok=True)
            uri = _project_catalog_url(settings, url)
            catalog = SqlCatalog(CATALOG_NAME, uri=uri, **props)
            # The catalog owns a connection pool; close it when the catalog goes away, so no
            # database connection outlives its user (psycopg warns about such connections).
            weakref.finalize(catalog, catalog.engine.dispose)
            if check:
                check_locations(settings, catalog)
            return catalog
        from pyiceberg.catalog import load_catalog

        if url:
            props["uri"] = url
        return load_catalog(CATALOG_NAME, type=str(config.type), **props)
    except DataflowError:
        raise
    except Exception as exc:  # pyiceberg/SQLAlchemy/boto errors: translate at this boundary
        raise StorageError(
            f"cannot open the {config.type.value} Iceberg catalog ({type(exc).__name__}) — check "
            "catalog.url and the warehouse"
        ) from exc


def _project_catalog_url(settings: Settings, url: str | None) -> str:
    """The SQLAlchemy URL of the project's SQL catalog: its tables sit next to the metadata.

    The default (the metadata database) is opened through :func:`open_metadata` once per process,
    so its schema exists, its migrations ran (an older database's tables moved into the
    project's PostgreSQL schema) and its owner is this project before pyiceberg touches it. An
    explicit ``catalog.url`` on PostgreSQL gets the project's schema as well.
    """
    from dataflow.metadata.db import MetadataDB, open_metadata, project_url

    if url is None:
        key = settings.metadata_url
        known = _OPENED.get(key)
        if known is None:
            db = open_metadata(key)
            known = _OPENED[key] = db.connect_url()
            db.dispose()
        return known
    db = MetadataDB(project_url(_sqlalchemy_url(url), settings.name))
    try:
        if db.schema is not None:
            with db.begin() as conn:
                conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{db.schema}"')
        return db.connect_url()
    finally:
        db.dispose()


#: Metadata URLs already opened (migrated, owner checked) in this process -> catalog URL.
_OPENED: dict[str, str] = {}


def check_locations(settings: Settings, catalog: Catalog) -> None:
    """Refuse a SQL catalog whose tables live outside this project's warehouse.

    The catalog records absolute locations. After ``mv`` of a project they point to a folder
    that is gone; after ``cp -a`` they point into the original, which a run would write to. Both
    are found here, before anything is fetched or written.

    Raises:
        ConfigError: a table's metadata is outside the warehouse (one line: what and the fix).
    """
    outside = tables_outside(settings, catalog)
    if not outside:
        return
    table, location = outside[0]
    elsewhere = old_warehouse(location)
    here = settings.warehouse_uri
    if location_exists(location):
        what = (
            f"the catalog's tables (e.g. {table}) are in {elsewhere}, not in this warehouse "
            f"{here}: this project is a copy, and a run would write into the original"
        )
    else:
        what = (
            f"the catalog's tables (e.g. {table}) are in {elsewhere}, which is gone: this "
            f"project was moved to {here}"
        )
    raise ConfigError(
        f"{what} — move it back, or run `dataflow catalog relocate` to rebuild its "
        f"{len(outside)} table(s) here from the raw zone"
    )


def tables_outside(settings: Settings, catalog: Catalog) -> list[tuple[str, str]]:
    """``(namespace.table, metadata location)`` of each SQL-catalog table outside the warehouse.

    Example:
        >>> tables_outside(settings, open_catalog(settings, check=False))  # doctest: +SKIP
        [('market.time_series', 'file:///old/warehouse/iceberg/market.db/time_series/...')]
    """
    import sqlalchemy as sa

    engine = getattr(catalog, "engine", None)
    if engine is None:
        return []
    # catalog.properties may set another warehouse for the tables: that one is home then.
    home = _uri(str(catalog.properties.get("warehouse") or warehouse_location(settings))) + "/"
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT table_namespace, table_name, metadata_location FROM iceberg_tables "
                "WHERE catalog_name = :name AND metadata_location IS NOT NULL"
            ),
            {"name": CATALOG_NAME},
        ).all()
    found = [(f"{ns}.{name}", _uri(str(location))) for ns, name, location in rows]
    return [(table, location) for table, location in found if not location.startswith(home)]


def _uri(location: str) -> str:
    """One spelling of a local location: Spark (Hadoop) writes ``file:/x``, pyiceberg ``file:///x``.

    Example:
        >>> _uri("file:/wh/iceberg"), _uri("file:///wh/iceberg"), _uri("/wh"), _uri("s3://b/k")
        ('file:///wh/iceberg', 'file:///wh/iceberg', 'file:///wh', 's3://b/k')
    """
    if location.startswith("file:") and not location.startswith("file://"):
        return "file://" + location.removeprefix("file:")
    if location.startswith("/"):
        return "file://" + location
    return location


def old_warehouse(location: str) -> str:
    """The warehouse root a table location was made under (``…/iceberg/…`` cut off).

    Example:
        >>> old_warehouse("file:///old/wh/iceberg/market.db/t/metadata/v1.json")
        '/old/wh'
    """
    root = location.split("/iceberg/", 1)[0] if "/iceberg/" in location else location
    return root.removeprefix("file://")


def location_exists(location: str) -> bool:
    """True when a local location still exists (remote ones: assumed to, never guessed).

    Example:
        >>> location_exists("file:///no/such/place"), location_exists("s3://b/k")
        (False, True)
    """
    from pathlib import Path

    if location.startswith("file://"):
        return Path(location.removeprefix("file://")).exists()
    if "://" not in location:
        return Path(location).exists()
    return True


def _sqlalchemy_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 here, as in the metadata database (not psycopg2)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def ensure_namespace(catalog: Catalog, namespace: str) -> None:
    """Create ``namespace`` unless it exists."""
    from pyiceberg.exceptions import NamespaceAlreadyExistsError

    with contextlib.suppress(NamespaceAlreadyExistsError):
        catalog.create_namespace(namespace)


def load_table(catalog: Catalog, namespace: str, name: str) -> Table | None:
    """The table ``namespace.name``, or ``None`` when it does not exist.

    Example:
        >>> load_table(catalog, "market", "time_series")  # doctest: +SKIP
        time_series(...)
    """
    from pyiceberg.exceptions import NoSuchTableError

    try:
        return catalog.load_table((namespace, name))
    except NoSuchTableError:
        return None


def parse_partition(text: str | None) -> list[tuple[str, str, int | None]]:
    """``(transform, column, argument)`` for each field of a partition spec written as text.

    Raises:
        ConfigError: a field is not ``col`` or ``fn(col)`` / ``fn(N, col)`` with a known fn.

    Example:
        >>> parse_partition("bucket(16, symbol)")
        [('bucket', 'symbol', 16)]
    """
    fields: list[tuple[str, str, int | None]] = []
    for raw_part in _TOP_LEVEL_COMMA.split(text or ""):
        part = raw_part.strip()
        if not part or part.lower() == "none":
            continue
        match = _FIELD.match(part)
        if match is None:
            raise ConfigError(f"partition field {part!r}: write col, fn(col) or fn(N, col)")
        if match["bare"]:
            fields.append(("identity", match["bare"], None))
            continue
        fn, col, arg = match["fn"], match["col"], match["n"]
        if fn not in TRANSFORMS:
            raise ConfigError(f"partition transform {fn!r}: use one of {', '.join(TRANSFORMS)}")
        if fn in {"bucket", "truncate"} and arg is None:
            raise ConfigError(f"partition field {part!r}: {fn} needs a width, e.g. {fn}(16, {col})")
        fields.append((fn, col, int(arg) if arg is not None else None))
    return fields


def build_partition_spec(schema: Schema, text: str | None) -> PartitionSpec:
    """A pyiceberg ``PartitionSpec`` for ``schema`` from the text form.

    Raises:
        ConfigError: a partition column is not in the schema.
    """
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.transforms import (
        BucketTransform,
        DayTransform,
        HourTransform,
        IdentityTransform,
        MonthTransform,
        Transform,
        TruncateTransform,
        VoidTransform,
        YearTransform,
    )

    fields = []
    for number, (fn, col, arg) in enumerate(parse_partition(text)):
        try:
            source = schema.find_field(col)
        except ValueError:
            raise ConfigError(f"partition column {col!r} is not a column of the table") from None
        transform: Transform[Any, Any]
        if fn == "bucket":
            transform = BucketTransform(num_buckets=arg or 1)
        elif fn == "truncate":
            transform = TruncateTransform(width=arg or 1)
        else:
            simple: dict[str, Transform[Any, Any]] = {
                "identity": IdentityTransform(),
                "year": YearTransform(),
                "month": MonthTransform(),
                "day": DayTransform(),
                "hour": HourTransform(),
                "void": VoidTransform(),
            }
            transform = simple[fn]
        name = col if fn == "identity" else f"{col}_{fn}"
        fields.append(
            PartitionField(
                source_id=source.field_id, field_id=1000 + number, transform=transform, name=name
            )
        )
    return PartitionSpec(*fields)


def create_table(
    catalog: Catalog,
    namespace: str,
    name: str,
    schema: pa.Schema,
    *,
    partition: str | None = None,
    properties: dict[str, str] | None = None,
) -> Table:
    """Create ``namespace.name`` with the Arrow ``schema`` and a partition spec given as text.

    Example:
        >>> create_table(catalog, "market", "eod", rows.schema,  # doctest: +SKIP
        ...              partition="year(date)")
    """
    from pyiceberg.io.pyarrow import _ConvertToIcebergWithoutIDs, visit_pyarrow
    from pyiceberg.schema import assign_fresh_schema_ids

    ensure_namespace(catalog, namespace)
    iceberg_schema: Schema = assign_fresh_schema_ids(
        visit_pyarrow(schema, _ConvertToIcebergWithoutIDs())
    )
    spec = build_partition_spec(iceberg_schema, partition)
    return catalog.create_table(
        (namespace, name),
        schema=iceberg_schema,
        partition_spec=spec,
        properties=properties or {},
    )


__all__ = [
    "CATALOG_NAME",
    "CATALOG_TYPES",
    "DEFAULT_NAMESPACE",
    "build_partition_spec",
    "check_locations",
    "create_table",
    "ensure_namespace",
    "load_table",
    "location_exists",
    "old_warehouse",
    "open_catalog",
    "parse_partition",
    "tables_outside",
    "warehouse_location",
]
