"""The registry of external tables: definitions, versions, partitions, crawled files.

An *external table* describes files in place (the raw zone, a folder, a bucket), as a Glue Data
Catalog table of type ``EXTERNAL_TABLE`` does (``reference/aws-semantics.md`` section 3): columns
with Hive types, partition keys (strings), location, classification and Glue-style parameters.
It lives in the metadata database next to run history.

Versions: every change of a table's *definition* (columns, partition keys, location,
classification, format parameters, deprecation) archives it as a new numbered version with its
time, as ``UpdateTable`` does. Statistics (``recordCount``, ``sizeKey``, ``objectCount``,
``averageRecordSize``) are refreshed in place: a recrawl that only counts more rows is not a
new version.

Example:
    >>> from dataflow.metadata import open_metadata
    >>> cat = ExternalCatalog(open_metadata("sqlite://"))
    >>> t = cat.put_table("raw", "quote", location="/wh/raw/twelvedata/quote/",
    ...     classification="json", columns=[Column("symbol", "string")],
    ...     partition_keys=[Column("ingest_date", "string")], parameters={"recordCount": "3"})
    >>> t.version, cat.databases(), [v["version"] for v in cat.versions("raw", "quote")]
    (1, ['raw'], [1])
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from dataflow.catalog.infer import Column
from dataflow.errors import NoSuchTableError
from dataflow.metadata.db import MetadataDB
from dataflow.metadata.schema import (
    external_files,
    external_partitions,
    external_table_versions,
    external_tables,
    utcnow,
)

TABLE_TYPE = "external"
"""The catalog's ``type`` of these tables (Iceberg tables are ``iceberg``)."""

STATISTICS = frozenset({"recordCount", "sizeKey", "objectCount", "averageRecordSize"})
"""Parameters that are statistics: refreshed in place, they never make a new version."""


@dataclass
class ExternalTable:
    """One external table, as the catalog holds it now.

    ``version`` is the number of the current definition (1 when created); ``updated_at`` the
    last change of anything, ``last_crawled_at`` the last crawl that looked at it.
    """

    database: str
    name: str
    location: str
    classification: str
    columns: list[Column]
    partition_keys: list[Column]
    parameters: dict[str, str]
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int
    deprecated: bool
    last_crawled_at: dt.datetime | None = None

    @property
    def table_type(self) -> str:
        """``external`` (the catalog lists Iceberg tables as ``iceberg``)."""
        return TABLE_TYPE

    @property
    def full_name(self) -> str:
        """``database.name``."""
        return f"{self.database}.{self.name}"


@dataclass
class Partition:
    """One partition: its values (ordered like the partition keys), folder and parameters."""

    values: list[str]
    location: str
    parameters: dict[str, str] = field(default_factory=dict)
    created_at: dt.datetime | None = None


@dataclass
class FileState:
    """What the crawler saw of one object: size and time (to detect a change) and its schema."""

    key: str
    size: int
    modified: dt.datetime | None
    schema: dict[str, Any]


def _columns_json(columns: Sequence[Column]) -> list[dict[str, Any]]:
    return [
        {"name": c.name, "type": c.type, **({"comment": c.comment} if c.comment else {})}
        for c in columns
    ]


def _columns(data: Sequence[Mapping[str, Any]]) -> list[Column]:
    return [Column(d["name"], d["type"], d.get("comment")) for d in data]


def _definition(row: Mapping[Any, Any]) -> tuple[Any, ...]:
    params = {k: v for k, v in dict(row["parameters"]).items() if k not in STATISTICS}
    return (
        row["location"],
        row["classification"],
        list(row["columns"]),
        list(row["partition_keys"]),
        params,
        bool(row["deprecated"]),
    )


def _values_key(values: Sequence[str]) -> str:
    return json.dumps(list(values), separators=(",", ":"))


class ExternalCatalog:
    """External tables in the metadata database.

    Each method runs in its own transaction, unless called inside :meth:`transaction`, which
    makes a group of writes atomic (one crawl commits all of its changes, or none).

    Args:
        db: an open (migrated) metadata database.
    """

    def __init__(self, db: MetadataDB) -> None:
        self.db = db
        self._conn: sa.Connection | None = None

    @contextmanager
    def transaction(self) -> Iterator[ExternalCatalog]:
        """Run the calls made inside the block in one write transaction (not thread-safe).

        Example:
            >>> from dataflow.metadata import open_metadata
            >>> cat = ExternalCatalog(open_metadata("sqlite://"))
            >>> with cat.transaction():
            ...     _ = cat.put_table("db", "t", location="/d/", classification="csv",
            ...                       columns=[], partition_keys=[], parameters={})
            >>> [t.name for t in cat.tables("db")]
            ['t']
        """
        if self._conn is not None:
            yield self
            return
        with self.db.begin() as conn:
            self._conn = conn
            try:
                yield self
            finally:
                self._conn = None

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        if self._conn is not None:
            yield self._conn
        else:
            with self.db.begin() as conn:
                yield conn

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        if self._conn is not None:
            yield self._conn
        else:
            with self.db.read() as conn:
                yield conn

    # --- reading ---------------------------------------------------------------------------------

    def databases(self) -> list[str]:
        """The databases holding at least one external table, sorted."""
        query = sa.select(external_tables.c.database).distinct().order_by("database")
        with self._read() as conn:
            return [row[0] for row in conn.execute(query)]

    def tables(self, database: str | None = None) -> list[ExternalTable]:
        """The external tables (of one database), sorted by database and name.

        Example:
            >>> from dataflow.metadata import open_metadata
            >>> ExternalCatalog(open_metadata("sqlite://")).tables("raw")
            []
        """
        query = sa.select(external_tables).order_by(
            external_tables.c.database, external_tables.c.name
        )
        if database is not None:
            query = query.where(external_tables.c.database == database.lower())
        with self._read() as conn:
            return [self._table(row._mapping) for row in conn.execute(query)]

    def find(self, database: str, name: str) -> ExternalTable | None:
        """The table, or None when there is none of that name."""
        query = sa.select(external_tables).where(*self._match(external_tables, database, name))
        with self._read() as conn:
            row = conn.execute(query).first()
        return None if row is None else self._table(row._mapping)

    def get(self, database: str, name: str) -> ExternalTable:
        """The table ``database.name``.

        Raises:
            ConfigError: there is no such table.

        Example:
            >>> from dataflow.metadata import open_metadata
            >>> ExternalCatalog(open_metadata("sqlite://")).get("raw", "nope")
            Traceback (most recent call last):
            ...
            dataflow.errors.NoSuchTableError: no table raw.nope — see `dataflow catalog tables`
        """
        table = self.find(database, name)
        if table is None:
            raise NoSuchTableError(
                f"no table {database.lower()}.{name.lower()} — see `dataflow catalog tables`"
            )
        return table

    def partitions(self, database: str, name: str) -> list[Partition]:
        """The partitions of a table, sorted by values (empty for an unpartitioned table)."""
        query = sa.select(external_partitions).where(
            *self._match(external_partitions, database, name)
        )
        with self._read() as conn:
            rows = [row._mapping for row in conn.execute(query)]
        found = [
            Partition(
                values=list(row["values"]),
                location=row["location"],
                parameters=dict(row["parameters"]),
                created_at=row["created_at"],
            )
            for row in rows
        ]
        return sorted(found, key=lambda p: p.values)

    def versions(self, database: str, name: str) -> list[dict[str, Any]]:
        """Every archived definition of a table, oldest first (the last one is current).

        Each item: ``version``, ``columns`` and ``partition_keys`` (lists of Column),
        ``location``, ``classification``, ``parameters``, ``deprecated``, ``archived_at``.
        """
        table = external_table_versions
        query = (
            sa.select(table).where(*self._match(table, database, name)).order_by(table.c.version)
        )
        with self._read() as conn:
            rows = [row._mapping for row in conn.execute(query)]
        return [
            {
                "version": row["version"],
                "columns": _columns(row["columns"]),
                "partition_keys": _columns(row["partition_keys"]),
                "location": row["location"],
                "classification": row["classification"],
                "parameters": dict(row["parameters"]),
                "deprecated": bool(row["deprecated"]),
                "archived_at": row["archived_at"],
            }
            for row in rows
        ]

    def file_states(self, database: str, name: str) -> dict[str, FileState]:
        """What the crawler recorded of each object of a table, by key."""
        query = sa.select(external_files).where(*self._match(external_files, database, name))
        with self._read() as conn:
            rows = [row._mapping for row in conn.execute(query)]
        return {
            row["key"]: FileState(row["key"], row["size"], row["modified"], dict(row["schema"]))
            for row in rows
        }

    # --- writing (the crawler's side) ------------------------------------------------------------

    def put_table(
        self,
        database: str,
        name: str,
        *,
        location: str,
        classification: str,
        columns: Sequence[Column],
        partition_keys: Sequence[Column],
        parameters: Mapping[str, str],
        deprecated: bool = False,
        now: dt.datetime | None = None,
    ) -> ExternalTable:
        """Create or update a table; archive a new version when its definition changed.

        Returns:
            The table as stored now (``version`` tells whether a version was added).
        """
        now = now or utcnow()
        values: dict[str, Any] = {
            "location": location,
            "classification": classification,
            "columns": _columns_json(columns),
            "partition_keys": _columns_json(partition_keys),
            "parameters": {str(k): str(v) for k, v in parameters.items()},
            "deprecated": deprecated,
        }
        match = self._match(external_tables, database, name)
        with self._write() as conn:
            row = conn.execute(sa.select(external_tables).where(*match)).first()
            if row is None:
                version = 1
                conn.execute(
                    external_tables.insert().values(
                        database=database.lower(),
                        name=name.lower(),
                        version=version,
                        created_at=now,
                        updated_at=now,
                        **values,
                    )
                )
            else:
                old = row._mapping
                version = old["version"]
                if _definition(old) != _definition(values):
                    version += 1
                elif old["parameters"] == values["parameters"]:
                    return self._table(old)
                conn.execute(
                    external_tables.update()
                    .where(*match)
                    .values(version=version, updated_at=now, **values)
                )
            if row is None or version != row._mapping["version"]:
                conn.execute(
                    external_table_versions.insert().values(
                        database=database.lower(),
                        name=name.lower(),
                        version=version,
                        archived_at=now,
                        **values,
                    )
                )
            stored = conn.execute(sa.select(external_tables).where(*match)).one()
        return self._table(stored._mapping)

    def touch(self, database: str, name: str, *, now: dt.datetime | None = None) -> None:
        """Record that a crawl looked at the table now (``last_crawled_at``), changing nothing."""
        match = self._match(external_tables, database, name)
        with self._write() as conn:
            conn.execute(
                external_tables.update().where(*match).values(last_crawled_at=now or utcnow())
            )

    def put_partitions(
        self,
        database: str,
        name: str,
        partitions: Sequence[Partition],
        *,
        now: dt.datetime | None = None,
    ) -> None:
        """Add partitions, or replace the location and parameters of existing ones."""
        now = now or utcnow()
        match = self._match(external_partitions, database, name)
        with self._write() as conn:
            existing = {
                row[0]
                for row in conn.execute(sa.select(external_partitions.c.values_key).where(*match))
            }
            for partition in partitions:
                key = _values_key(partition.values)
                values = {"location": partition.location, "parameters": dict(partition.parameters)}
                if key in existing:
                    conn.execute(
                        external_partitions.update()
                        .where(*match, external_partitions.c.values_key == key)
                        .values(updated_at=now, **values)
                    )
                else:
                    conn.execute(
                        external_partitions.insert().values(
                            database=database.lower(),
                            name=name.lower(),
                            values_key=key,
                            values=list(partition.values),
                            created_at=partition.created_at or now,
                            updated_at=now,
                            **values,
                        )
                    )

    def delete_partitions(self, database: str, name: str, values: Sequence[Sequence[str]]) -> None:
        """Remove partitions by their values (unknown ones are ignored)."""
        keys = [_values_key(v) for v in values]
        if not keys:
            return
        match = self._match(external_partitions, database, name)
        with self._write() as conn:
            conn.execute(
                external_partitions.delete().where(
                    *match, external_partitions.c.values_key.in_(keys)
                )
            )

    def put_files(
        self,
        database: str,
        name: str,
        files: Sequence[FileState],
        *,
        remove: Sequence[str] = (),
        now: dt.datetime | None = None,
    ) -> None:
        """Record the crawled objects' sizes, times and schemas; forget the ``remove`` keys."""
        now = now or utcnow()
        match = self._match(external_files, database, name)
        with self._write() as conn:
            gone = [*remove, *(f.key for f in files)]
            for start in range(0, len(gone), 500):  # bounded IN lists
                conn.execute(
                    external_files.delete().where(
                        *match, external_files.c.key.in_(gone[start : start + 500])
                    )
                )
            if files:
                conn.execute(
                    external_files.insert(),
                    [
                        {
                            "database": database.lower(),
                            "name": name.lower(),
                            "key": f.key,
                            "size": f.size,
                            "modified": f.modified,
                            "schema": f.schema,
                            "crawled_at": now,
                        }
                        for f in files
                    ],
                )

    def delete_table(self, database: str, name: str) -> bool:
        """Delete a table with its versions, partitions and file records; False if absent."""
        with self._write() as conn:
            for child in (external_files, external_partitions, external_table_versions):
                conn.execute(child.delete().where(*self._match(child, database, name)))
            result = conn.execute(
                external_tables.delete().where(*self._match(external_tables, database, name))
            )
        return bool(result.rowcount)

    # --- internals -------------------------------------------------------------------------------

    @staticmethod
    def _match(table: sa.Table, database: str, name: str) -> list[sa.ColumnElement[bool]]:
        return [table.c.database == database.lower(), table.c.name == name.lower()]

    @staticmethod
    def _table(row: Mapping[Any, Any]) -> ExternalTable:
        return ExternalTable(
            database=row["database"],
            name=row["name"],
            location=row["location"],
            classification=row["classification"],
            columns=_columns(row["columns"]),
            partition_keys=_columns(row["partition_keys"]),
            parameters=dict(row["parameters"]),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            version=row["version"],
            deprecated=bool(row["deprecated"]),
            last_crawled_at=row["last_crawled_at"],
        )


__all__ = ["STATISTICS", "TABLE_TYPE", "ExternalCatalog", "ExternalTable", "FileState", "Partition"]
