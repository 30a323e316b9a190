"""One Data Catalog over both kinds of table: Iceberg clean tables and crawled external tables.

Every table is described the way the Glue Data Catalog describes it — columns and types in Hive
type names, partition keys, location, classification, and ``parameters`` such as ``recordCount``,
``sizeKey``, ``objectCount``, ``averageRecordSize`` and ``compressionType`` — with its schema
versions, and for Iceberg tables its snapshots.

Example:
    >>> from dataflow.config import load_settings            # doctest: +SKIP
    >>> catalog = DataCatalog(load_settings("demo"), db)      # doctest: +SKIP
    >>> [t.full_name for t in catalog.tables("market")][:2]   # doctest: +SKIP
    ['market.cryptocurrencies', 'market.eod']
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from dataflow.catalog.external import ExternalCatalog
from dataflow.errors import CatalogError, NoSuchTableError

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

    from dataflow.config import Settings
    from dataflow.metadata import MetadataDB

ICEBERG = "iceberg"
EXTERNAL = "external"


@dataclass
class TableInfo:
    """A table as the catalog lists it."""

    database: str
    name: str
    type: str
    location: str
    classification: str
    columns: list[dict[str, str]]
    partition_keys: list[dict[str, str]]
    parameters: dict[str, str]
    updated_at: dt.datetime | None
    description: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def full_name(self) -> str:
        """``database.name``."""
        return f"{self.database}.{self.name}"

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        data = asdict(self)
        data.pop("extra")
        data.update(self.extra)
        return data


class DataCatalog:
    """Iceberg tables (from the configured Iceberg catalog) and external tables (crawled)."""

    def __init__(self, settings: Settings, db: MetadataDB) -> None:
        self.settings = settings
        self.external = ExternalCatalog(db)
        self._iceberg: Catalog | None = None

    @property
    def iceberg(self) -> Catalog:
        """The pyiceberg catalog, opened on first use."""
        if self._iceberg is None:
            from dataflow.catalog.iceberg import open_catalog

            self._iceberg = open_catalog(self.settings)
        return self._iceberg

    # --- listing ---------------------------------------------------------------------------

    def databases(self) -> list[str]:
        """Every database: Iceberg namespaces and the databases of external tables."""
        names = {".".join(ns) for ns in self.iceberg.list_namespaces()}
        names.update(self.external.databases())
        return sorted(names)

    def tables(self, database: str | None = None) -> list[TableInfo]:
        """Every table, optionally of one database, sorted by database and name."""
        found: list[TableInfo] = []
        namespaces = (
            [database] if database else [".".join(n) for n in self.iceberg.list_namespaces()]
        )
        for namespace in namespaces:
            if database and not self._has_namespace(namespace):
                continue
            for identifier in self.iceberg.list_tables(namespace):
                found.append(self._iceberg_info(self.iceberg.load_table(identifier)))
        found.extend(self._external_info(t) for t in self.external.tables(database))
        return sorted(found, key=lambda t: (t.database, t.name))

    def show(self, database: str, name: str) -> TableInfo:
        """One table, with its partitions (external) or snapshot count (Iceberg)."""
        table = self._find_iceberg(database, name)
        if table is not None:
            info = self._iceberg_info(table)
            info.extra["snapshots"] = len(table.metadata.snapshots)
            current = table.current_snapshot()
            info.extra["current_snapshot_id"] = current.snapshot_id if current else None
            return info
        external = self.external.get(database, name)
        info = self._external_info(external)
        info.extra["partitions"] = self.partitions(database, name)
        return info

    def versions(self, database: str, name: str) -> list[dict[str, Any]]:
        """Schema versions, oldest first: version, columns, and when each came into use."""
        table = self._find_iceberg(database, name)
        if table is None:
            versions = self.external.versions(database, name)
            return [_external_version(v) for v in versions]
        first_use: dict[int, int] = {}
        for snapshot in sorted(table.metadata.snapshots, key=lambda s: s.timestamp_ms):
            if snapshot.schema_id is not None:
                first_use.setdefault(snapshot.schema_id, snapshot.timestamp_ms)
        created = table.metadata.last_updated_ms
        result = []
        for schema in table.metadata.schemas:
            since = first_use.get(schema.schema_id)
            result.append(
                {
                    "version": schema.schema_id,
                    "columns": _iceberg_columns(schema),
                    "archived_at": _from_ms(since) if since is not None else _from_ms(created),
                    "current": schema.schema_id == table.metadata.current_schema_id,
                }
            )
        return result

    def partitions(self, database: str, name: str) -> list[dict[str, Any]]:
        """Partitions: values and location (external); values, records and files (Iceberg)."""
        table = self._find_iceberg(database, name)
        if table is None:
            return [
                {
                    "values": p.values,
                    "location": p.location,
                    "parameters": p.parameters,
                }
                for p in self.external.partitions(database, name)
            ]
        if table.current_snapshot() is None:
            return []
        transforms = {f.name: str(f.transform).split("[")[0] for f in table.spec().fields}
        rows = table.inspect.partitions().to_pylist()
        rows.sort(
            key=lambda row: [(v is None, str(v)) for v in (row.get("partition") or {}).values()]
        )
        return [
            {
                "values": {
                    k: _partition_value(transforms.get(k, "identity"), v)
                    for k, v in (row.get("partition") or {}).items()
                },
                "records": row["record_count"],
                "files": row["file_count"],
                "bytes": row["total_data_file_size_in_bytes"],
            }
            for row in rows
        ]

    def snapshots(self, database: str, name: str) -> list[dict[str, Any]]:
        """Snapshots of an Iceberg table, oldest first (external tables have none)."""
        table = self._find_iceberg(database, name)
        if table is None:
            self.external.get(database, name)  # NoSuchTableError when it is not there either
            raise CatalogError(
                f"{database}.{name} is an external table: it has no snapshots — see "
                f"`dataflow catalog versions {database}.{name}`"
            )
        result = []
        for snapshot in sorted(table.metadata.snapshots, key=lambda s: s.timestamp_ms):
            summary = snapshot.summary
            props = dict(summary.additional_properties) if summary else {}
            result.append(
                {
                    "snapshot_id": snapshot.snapshot_id,
                    "parent_id": snapshot.parent_snapshot_id,
                    "committed_at": _from_ms(snapshot.timestamp_ms),
                    "operation": str(summary.operation.value) if summary else None,
                    "added_records": _int(props.get("added-records")),
                    "total_records": _int(props.get("total-records")),
                    "run_id": props.get("dataflow.run_id"),
                }
            )
        return result

    # --- helpers ---------------------------------------------------------------------------

    def _has_namespace(self, namespace: str) -> bool:
        return (namespace,) in {tuple(n) for n in self.iceberg.list_namespaces()}

    def _find_iceberg(self, database: str, name: str) -> Table | None:
        from pyiceberg.exceptions import NoSuchNamespaceError
        from pyiceberg.exceptions import NoSuchTableError as IcebergMissing

        try:
            return self.iceberg.load_table((database.lower(), name.lower()))
        except (IcebergMissing, NoSuchNamespaceError):
            return None

    def _iceberg_info(self, table: Table) -> TableInfo:
        namespace, name = table.name()[-2], table.name()[-1]
        snapshot = table.current_snapshot()
        props = (
            dict(snapshot.summary.additional_properties) if snapshot and snapshot.summary else {}
        )
        records = _int(props.get("total-records")) or 0
        size = _int(props.get("total-files-size")) or 0
        files = _int(props.get("total-data-files")) or 0
        parameters = {
            "table_type": "ICEBERG",
            "classification": "parquet",
            "recordCount": str(records),
            "sizeKey": str(size),
            "objectCount": str(files),
            "averageRecordSize": str(round(size / records)) if records else "0",
            "compressionType": table.properties.get("write.parquet.compression-codec", "zstd"),
            "metadata_location": table.metadata_location,
        }
        if props.get("dataflow.run_id"):
            parameters["lastRun"] = props["dataflow.run_id"]
        spec = table.spec()
        schema = table.schema()
        partition_keys = [
            {
                "name": f.name,
                "type": str(f.transform),
                "source": schema.find_column_name(f.source_id) or "",
            }
            for f in spec.fields
        ]
        updated = _from_ms(table.metadata.last_updated_ms)
        return TableInfo(
            database=namespace,
            name=name,
            type=ICEBERG,
            location=table.location(),
            classification="parquet",
            columns=_iceberg_columns(schema),
            partition_keys=partition_keys,
            parameters=parameters,
            updated_at=updated,
            description=table.properties.get("comment"),
        )

    @staticmethod
    def _external_info(table: Any) -> TableInfo:
        return TableInfo(
            database=table.database,
            name=table.name,
            type=EXTERNAL,
            location=table.location,
            classification=table.classification,
            columns=[{"name": c.name, "type": c.type} for c in table.columns],
            partition_keys=[{"name": c.name, "type": c.type} for c in table.partition_keys],
            parameters=dict(table.parameters),
            updated_at=table.updated_at,
            extra={
                "version": table.version,
                "deprecated": table.deprecated,
                "last_crawled_at": getattr(table, "last_crawled_at", None),
            },
        )


def split_table_name(text: str, default_database: str = "market") -> tuple[str, str]:
    """``db.table`` (or ``table`` in the default database) as a pair.

    Example:
        >>> split_table_name("raw.quote"), split_table_name("time_series")
        (('raw', 'quote'), ('market', 'time_series'))
    """
    parts = text.strip().split(".")
    if len(parts) == 1 and parts[0]:
        return default_database, parts[0].lower()
    if len(parts) == 2 and all(parts):
        return parts[0].lower(), parts[1].lower()
    raise NoSuchTableError(f"{text!r} is not a table name — write DATABASE.TABLE, e.g. raw.quote")


def _iceberg_columns(schema: Any) -> list[dict[str, str]]:
    return [
        {"name": f.name, "type": _hive_type(f.field_type), **({"comment": f.doc} if f.doc else {})}
        for f in schema.fields
    ]


def _hive_type(iceberg_type: Any) -> str:
    """An Iceberg type in the Hive/Glue type names the catalog uses everywhere."""
    from pyiceberg import types as t

    simple = {
        t.StringType: "string",
        t.LongType: "bigint",
        t.IntegerType: "int",
        t.DoubleType: "double",
        t.FloatType: "float",
        t.BooleanType: "boolean",
        t.DateType: "date",
        t.TimestampType: "timestamp",
        t.TimestamptzType: "timestamp",
        t.BinaryType: "binary",
    }
    for kind, name in simple.items():
        if isinstance(iceberg_type, kind):
            return name
    if isinstance(iceberg_type, t.DecimalType):
        return f"decimal({iceberg_type.precision},{iceberg_type.scale})"
    if isinstance(iceberg_type, t.ListType):
        return f"array<{_hive_type(iceberg_type.element_type)}>"
    if isinstance(iceberg_type, t.MapType):
        return f"map<{_hive_type(iceberg_type.key_type)},{_hive_type(iceberg_type.value_type)}>"
    if isinstance(iceberg_type, t.StructType):
        inner = ",".join(f"{f.name}:{_hive_type(f.field_type)}" for f in iceberg_type.fields)
        return f"struct<{inner}>"
    return str(iceberg_type)


def _external_version(version: dict[str, Any]) -> dict[str, Any]:
    def plain(columns: list[Any]) -> list[dict[str, str]]:
        return [{"name": c.name, "type": c.type} for c in columns]

    return {
        **version,
        "columns": plain(version.get("columns") or []),
        "partition_keys": plain(version.get("partition_keys") or []),
    }


def _partition_value(transform: str, value: Any) -> Any:
    """A partition value as people read it: ``month(ts)`` 671 is ``2025-12``."""
    if value is None:
        return None
    epoch = dt.date(1970, 1, 1)
    if transform == "month":
        return f"{1970 + value // 12:04d}-{value % 12 + 1:02d}"
    if transform == "year":
        return f"{1970 + value:04d}"
    if transform == "day":
        day = value if isinstance(value, dt.date) else epoch + dt.timedelta(days=value)
        return day.isoformat()
    if transform == "hour":
        stamp = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(hours=value)
        return stamp.strftime("%Y-%m-%d-%H")
    return value.isoformat() if isinstance(value, dt.date | dt.datetime) else value


def _from_ms(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def _int(text: str | None) -> int | None:
    return int(text) if text not in (None, "") else None
