"""The crawler: look at the files under a path, infer their schema, register an external table.

The Glue crawler's behaviour (``reference/aws-semantics.md`` sections 2 and 3), for one S3
target and the ``CombineCompatibleSchemas`` grouping (one table per path, schemas merged):

1. list the objects under the path (hidden ``_*``/``.*`` ones are not data);
2. discover the partition folders (:func:`~dataflow.catalog.partitions.discover`);
3. infer each file's schema, reusing what the last crawl recorded for objects whose size and
   time did not change, and merge them (widening types, unioning struct fields);
4. compare with the registered table and apply the :class:`UpdateBehavior` (columns) and
   :class:`DeleteBehavior` (vanished partitions or table) policies; new tables and partitions
   are always created, whatever the policies;
5. with :attr:`RecrawlPolicy.CRAWL_NEW_FOLDERS_ONLY`, only partition folders not yet registered
   are read, and both policies are forced to ``LOG`` (Glue's incremental crawls do that).

All catalog writes of one crawl are one transaction. :func:`crawl_raw_zone` crawls the raw zone
into ``raw.<endpoint>`` tables, partitioned by ``ingest_date``.

Example:
    >>> import tempfile
    >>> from dataflow.metadata import open_metadata
    >>> from dataflow.storage import LocalStore
    >>> store = LocalStore(tempfile.mkdtemp())
    >>> store.put_bytes("sales/year=2024/a.json", b'{"id": 1, "amount": 2.5}\\n')
    >>> catalog = ExternalCatalog(open_metadata("sqlite://"))
    >>> r = crawl(store, "sales", catalog=catalog, database="shop", table="sales")
    >>> r.created, [c.name for c in r.columns_added], r.partitions_added, r.version
    (True, ['id', 'amount'], [['2024']], 1)
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from dataflow.catalog.external import ExternalCatalog, ExternalTable, FileState, Partition
from dataflow.catalog.infer import (
    FORMATS,
    Column,
    InferredSchema,
    finalize_type,
    infer_file,
    merge_schemas,
)
from dataflow.catalog.partitions import discover, is_hidden, normalize_root, partition_folder
from dataflow.catalog.policies import (
    ColumnChange,
    CrawlResult,
    DeleteBehavior,
    RecrawlPolicy,
    UpdateBehavior,
    parse_policy,
)
from dataflow.errors import ConfigError
from dataflow.metadata.schema import utcnow

if TYPE_CHECKING:
    from dataflow.storage.objectstore import ObjectInfo, ObjectStore

CRAWLER_NAME = "dataflow"
"""Written as ``UPDATED_BY_CRAWLER`` in the tables' parameters."""

DEPRECATED_PARAMETER = "DEPRECATED_BY_CRAWLER"
"""Parameter set (to the time) on tables and partitions deprecated by a crawl."""

_NAME = re.compile(r"[a-z0-9_]{1,255}")


def check_table_name(kind: str, value: str) -> str:
    """A database or table name, lowercased (Hive convention); letters, digits and ``_``.

    Raises:
        ConfigError: the name has other characters.

    Example:
        >>> check_table_name("table", "Time_Series")
        'time_series'
    """
    lowered = value.strip().lower()
    if not _NAME.fullmatch(lowered):
        raise ConfigError(
            f"{kind} name {value!r}: use letters, digits and '_' (e.g. raw.time_series)"
        )
    return lowered


def crawl(
    store: ObjectStore,
    prefix: str,
    *,
    catalog: ExternalCatalog,
    database: str,
    table: str,
    fmt: str = "auto",
    update_behavior: UpdateBehavior | str = UpdateBehavior.UPDATE_IN_DATABASE,
    delete_behavior: DeleteBehavior | str = DeleteBehavior.DEPRECATE_IN_DATABASE,
    recrawl: RecrawlPolicy | str = RecrawlPolicy.CRAWL_EVERYTHING,
    sample_files: int | None = None,
    now: dt.datetime | None = None,
) -> CrawlResult:
    """Crawl the files under ``prefix`` of ``store`` into the external table ``database.table``.

    Args:
        store: where the files are.
        prefix: the table's root in the store (``""`` for the whole store).
        catalog: the registry to update.
        database: e.g. ``raw``; table: e.g. ``quote`` (both lowercased).
        fmt: ``auto``, ``json``, ``csv`` or ``parquet``.
        update_behavior: see :class:`UpdateBehavior`.
        delete_behavior: see :class:`DeleteBehavior`.
        recrawl: see :class:`RecrawlPolicy`.
        sample_files: read at most this many files per partition folder (Glue's SampleSize);
            the record count of the others is estimated from their size.
        now: the crawl's time (default: now).

    Raises:
        ConfigError: bad names or options, or nothing to crawl for a table not yet registered.

    Example:
        >>> import tempfile
        >>> from dataflow.metadata import open_metadata
        >>> from dataflow.storage import LocalStore
        >>> store = LocalStore(tempfile.mkdtemp())
        >>> store.put_bytes("d/a.csv", b"x,y\\n1,a\\n2,b\\n")
        >>> cat = ExternalCatalog(open_metadata("sqlite://"))
        >>> crawl(store, "d", catalog=cat, database="db", table="t").records
        2
        >>> cat.get("db", "t").parameters["skip.header.line.count"]
        '1'
    """
    root = normalize_root(prefix)
    objects = [info for info in store.list(root) if not is_hidden(info.key[len(root) :])]
    return _Crawl(
        store,
        root,
        objects,
        catalog=catalog,
        database=check_table_name("database", database),
        table=check_table_name("table", table),
        fmt=fmt,
        update=parse_policy(UpdateBehavior, update_behavior, "--update-behavior"),
        delete=parse_policy(DeleteBehavior, delete_behavior, "--delete-behavior"),
        recrawl=parse_policy(RecrawlPolicy, recrawl, "--recrawl"),
        sample_files=sample_files,
        now=now or utcnow(),
    ).run()


def crawl_raw_zone(
    store: ObjectStore,
    catalog: ExternalCatalog,
    *,
    source: str = "twelvedata",
    endpoints: Sequence[str] | None = None,
    update_behavior: UpdateBehavior | str = UpdateBehavior.UPDATE_IN_DATABASE,
    delete_behavior: DeleteBehavior | str = DeleteBehavior.DEPRECATE_IN_DATABASE,
    recrawl: RecrawlPolicy | str = RecrawlPolicy.CRAWL_EVERYTHING,
    now: dt.datetime | None = None,
) -> list[CrawlResult]:
    """Crawl ``raw/<source>/<endpoint>/`` into the tables ``raw.<endpoint>``.

    Columns describe the envelopes (``request``, ``status_code``, ``received_at``,
    ``payload``, ...), merged over every endpoint's responses (error bodies included); the
    partition key is ``ingest_date``. The store is listed once; unchanged files are not read.

    Args:
        endpoints: only these (default: every endpoint folder found). An endpoint with
            neither files nor a table is skipped.

    Example:
        >>> import tempfile
        >>> from dataflow.metadata import open_metadata
        >>> from dataflow.storage import LocalStore
        >>> cat = ExternalCatalog(open_metadata("sqlite://"))
        >>> crawl_raw_zone(LocalStore(tempfile.mkdtemp()), cat)
        []
    """
    from dataflow.storage.raw import RAW_PREFIX, check_name

    base = f"{RAW_PREFIX}/{check_name('source', source)}/"
    by_endpoint: dict[str, list[ObjectInfo]] = {}
    for info in store.list(base):
        relative = info.key[len(base) :]
        if "/" in relative and not is_hidden(relative):
            by_endpoint.setdefault(relative.split("/", 1)[0], []).append(info)
    results: list[CrawlResult] = []
    for endpoint in endpoints if endpoints is not None else sorted(by_endpoint):
        table = check_table_name("table", re.sub(r"[-.]", "_", endpoint))
        objects = by_endpoint.get(endpoint, [])
        if not objects and catalog.find("raw", table) is None:
            continue
        results.append(
            _Crawl(
                store,
                f"{base}{endpoint}/",
                objects,
                catalog=catalog,
                database="raw",
                table=table,
                fmt="json",
                update=parse_policy(UpdateBehavior, update_behavior, "update_behavior"),
                delete=parse_policy(DeleteBehavior, delete_behavior, "delete_behavior"),
                recrawl=parse_policy(RecrawlPolicy, recrawl, "recrawl"),
                sample_files=None,
                now=now or utcnow(),
            ).run()
        )
    return results


def _location(store: ObjectStore, root: str) -> str:
    return (store.url_for(root.rstrip("/")) if root else store.uri.rstrip("/")) + "/"


def _schema_json(schema: InferredSchema, fmt: str) -> dict[str, Any]:
    data = asdict(schema)
    data["fmt"] = fmt
    return data


def _schema_from_json(data: dict[str, Any]) -> InferredSchema:
    return InferredSchema(
        classification=data["classification"],
        columns=[Column(c["name"], c["type"], c.get("comment")) for c in data["columns"]],
        records=int(data["records"]),
        compression=data["compression"],
        delimiter=data.get("delimiter"),
        has_header=data.get("has_header"),
    )


def _majority(values: Sequence[str]) -> str:
    return Counter(values).most_common(1)[0][0]


class _Crawl:
    """One crawl of one table: the steps of :func:`crawl`, sharing their state."""

    def __init__(
        self,
        store: ObjectStore,
        root: str,
        objects: Sequence[ObjectInfo],
        *,
        catalog: ExternalCatalog,
        database: str,
        table: str,
        fmt: str,
        update: UpdateBehavior,
        delete: DeleteBehavior,
        recrawl: RecrawlPolicy,
        sample_files: int | None,
        now: dt.datetime,
    ) -> None:
        if fmt not in FORMATS:
            raise ConfigError(f"format {fmt!r} is not known — use one of {', '.join(FORMATS)}")
        if sample_files is not None and sample_files < 1:
            raise ConfigError(f"sample files {sample_files} must be at least 1")
        self.store, self.root, self.catalog = store, root, catalog
        self.objects = {info.key: info for info in objects}
        self.database, self.table, self.fmt = database, table, fmt
        self.sample_files, self.now = sample_files, now
        self.existing = catalog.find(database, table)
        # Glue: an incremental crawl of an existing table never updates or deletes anything.
        self.incremental = recrawl is RecrawlPolicy.CRAWL_NEW_FOLDERS_ONLY and bool(self.existing)
        self.update = UpdateBehavior.LOG if self.incremental else update
        self.delete = DeleteBehavior.LOG if self.incremental else delete
        self.result = CrawlResult(table=f"{database}.{table}")
        self.location = _location(store, root)

    def run(self) -> CrawlResult:
        if not self.objects:
            return self._vanished()
        names, groups = discover(list(self.objects), self.root)
        cached = self.catalog.file_states(self.database, self.table) if self.existing else {}
        known = (
            {tuple(p.values): p for p in self.catalog.partitions(self.database, self.table)}
            if self.existing
            else {}
        )
        schemas, fresh = self._infer(names, groups, known, cached)
        classification = self._classification(schemas)
        schemas = {k: s for k, s in schemas.items() if s.classification == classification}
        with self.catalog.transaction():
            if schemas:
                self._apply_table(names, schemas, cached, classification)
            elif self.existing is None:
                reason = self.result.skipped[0] if self.result.skipped else "no data files"
                raise ConfigError(
                    f"nothing to crawl at {self.location}: no file could be classified "
                    f"({reason}) — check the path or pass the format"
                )
            self._apply_partitions(names, groups, schemas, known)
            gone = [key for key in cached if key not in self.objects]
            self.catalog.put_files(self.database, self.table, fresh, remove=gone, now=self.now)
            self.catalog.touch(self.database, self.table, now=self.now)
        return self.result

    # --- reading the files -----------------------------------------------------------------------

    def _infer(
        self,
        names: list[str],
        groups: dict[tuple[str, ...], list[str]],
        known: dict[tuple[str, ...], Partition],
        cached: dict[str, FileState],
    ) -> tuple[dict[str, InferredSchema], list[FileState]]:
        schemas: dict[str, InferredSchema] = {}
        fresh: list[FileState] = []
        for values, members in groups.items():
            if self.incremental and (not names or values in known):
                continue
            for key in members if self.sample_files is None else members[: self.sample_files]:
                info = self.objects[key]
                state = cached.get(key)
                unchanged = (
                    state is not None
                    and state.size == info.size
                    and state.modified == info.modified
                    and state.schema.get("fmt") == self.fmt
                )
                if state is not None and unchanged:
                    data = state.schema
                else:
                    data = self._read(key)
                    fresh.append(FileState(key, info.size, info.modified, data))
                if "error" in data:
                    self.result.skipped.append(f"{key}: {data['error']}")
                else:
                    schemas[key] = _schema_from_json(data)
        return schemas, fresh

    def _read(self, key: str) -> dict[str, Any]:
        self.result.files_read += 1
        try:
            schema = infer_file(self.store.get_bytes(key), name=key, fmt=self.fmt, finalize=False)
        except ConfigError as exc:
            # Recorded too, so an unreadable file is not read again until it changes.
            return {"error": str(exc).removeprefix(f"{key}: "), "fmt": self.fmt}
        return _schema_json(schema, self.fmt)

    def _classification(self, schemas: dict[str, InferredSchema]) -> str:
        if self.fmt != "auto":
            return self.fmt
        if self.incremental and self.existing is not None:
            chosen = self.existing.classification
        elif schemas:
            chosen = _majority([s.classification for s in schemas.values()])
        else:
            return "unknown"
        for key, schema in schemas.items():
            if schema.classification != chosen:
                self.result.skipped.append(
                    f"{key}: classified {schema.classification}, the table is {chosen}"
                )
        return chosen

    # --- the table -------------------------------------------------------------------------------

    def _columns(self, names: list[str], schemas: dict[str, InferredSchema]) -> list[Column]:
        merged: list[Column] = []
        for key in sorted(schemas):
            merged = merge_schemas(merged, schemas[key].columns)
        out = []
        for column in merged:
            if column.name in names:
                self.result.logged_only.append(
                    f"column {column.name} is also a partition key: the partition key is kept"
                )
                continue
            out.append(Column(column.name, finalize_type(column.type), column.comment))
        return out

    def _parameters(
        self,
        classification: str,
        schemas: dict[str, InferredSchema],
        cached: dict[str, FileState],
    ) -> dict[str, str]:
        sizes = {key: info.size for key, info in self.objects.items()}
        counted = {key: schema.records for key, schema in schemas.items()}
        for key, state in cached.items():
            if key in sizes and key not in counted and state.size == sizes[key]:
                counted[key] = int(state.schema.get("records", 0))
        counted_bytes = sum(sizes[key] for key in counted)
        per_byte = sum(counted.values()) / counted_bytes if counted_bytes else 0.0
        records = sum(counted.get(key, round(size * per_byte)) for key, size in sizes.items())
        total = sum(sizes.values())
        self.result.files, self.result.records, self.result.bytes = len(sizes), records, total
        params = {
            "classification": classification,
            "compressionType": _majority([s.compression for s in schemas.values()]),
            "typeOfData": "file",
            "recordCount": str(records),
            "averageRecordSize": str(total // records if records else 0),
            "objectCount": str(len(sizes)),
            "sizeKey": str(total),
            "UPDATED_BY_CRAWLER": CRAWLER_NAME,
            "CrawlerSchemaSerializerVersion": "1.0",
            "CrawlerSchemaDeserializerVersion": "1.0",
        }
        csvs = [s for s in schemas.values() if s.classification == "csv"]
        if csvs:
            params["delimiter"] = _majority([s.delimiter or "," for s in csvs])
            params["columnsOrdered"] = "true"
            params["areColumnsQuoted"] = "false"
            if _majority(["1" if s.has_header else "0" for s in csvs]) == "1":
                params["skip.header.line.count"] = "1"
        return params

    def _apply_table(
        self,
        names: list[str],
        schemas: dict[str, InferredSchema],
        cached: dict[str, FileState],
        classification: str,
    ) -> None:
        columns = self._columns(names, schemas)
        keys = [Column(name, "string") for name in names]
        params = self._parameters(classification, schemas, cached)
        existing = self.existing
        if existing is None:
            stored = self.catalog.put_table(
                self.database,
                self.table,
                location=self.location,
                classification=classification,
                columns=columns,
                partition_keys=keys,
                parameters=params,
                now=self.now,
            )
            self.result.created, self.result.columns_added = True, columns
            self.result.version = stored.version
            return
        target, added, changed, removed = self._diff(existing, columns)
        keys_changed = [k.name for k in existing.partition_keys] != names
        self.result.version = existing.version
        if self.update is UpdateBehavior.LOG:
            self._log_schema(added, changed, removed, keys_changed, names)
            return
        stored = self.catalog.put_table(
            self.database,
            self.table,
            location=self.location,
            classification=classification,
            columns=target,
            partition_keys=keys,
            parameters=params,
            now=self.now,
        )
        self.result.columns_added, self.result.columns_changed = added, changed
        self.result.columns_removed, self.result.version = removed, stored.version

    def _diff(
        self, existing: ExternalTable, columns: list[Column]
    ) -> tuple[list[Column], list[Column], list[ColumnChange], list[Column]]:
        old = {c.name: c for c in existing.columns}
        if self.incremental:
            # Only new folders were read: they can add or widen columns, never remove one.
            target = merge_schemas(existing.columns, columns)
        else:
            new = {c.name: c for c in columns}
            kept = [new[c.name] for c in existing.columns if c.name in new]
            target = kept + [c for c in columns if c.name not in old]
        added = [c for c in target if c.name not in old]
        changed = [
            ColumnChange(c.name, old[c.name].type, c.type)
            for c in target
            if c.name in old and old[c.name].type != c.type
        ]
        names = {c.name for c in target}
        removed = [c for c in existing.columns if c.name not in names]
        return target, added, changed, removed

    def _log_schema(
        self,
        added: list[Column],
        changed: list[ColumnChange],
        removed: list[Column],
        keys_changed: bool,
        names: list[str],
    ) -> None:
        why = "(not applied: update behavior LOG)"
        log = self.result.logged_only
        log += [f"column added {c.name} {c.type} {why}" for c in added]
        log += [f"column changed {c.name} {c.old_type} -> {c.new_type} {why}" for c in changed]
        log += [f"column removed {c.name} {c.type} {why}" for c in removed]
        if keys_changed:
            log.append(f"partition keys changed to {names or 'none'} {why}")
        if self.existing is not None and self.existing.deprecated:
            log.append(f"the table is deprecated but has data again {why}")

    def _vanished(self) -> CrawlResult:
        existing = self.existing
        if existing is None:
            raise ConfigError(
                f"nothing to crawl at {self.location}: no data files there — check the path "
                "(names starting with '_' or '.' are not data)"
            )
        result = self.result
        result.version = existing.version
        with self.catalog.transaction():
            if self.delete is DeleteBehavior.DELETE_FROM_DATABASE:
                known = self.catalog.partitions(self.database, self.table)
                result.partitions_removed = [p.values for p in known]
                result.deleted = self.catalog.delete_table(self.database, self.table)
                return result
            if self.delete is DeleteBehavior.LOG or existing.deprecated:
                if not existing.deprecated:
                    result.logged_only.append(
                        "the table has no data files any more (not deprecated: delete behavior LOG)"
                    )
            else:
                stored = self.catalog.put_table(
                    self.database,
                    self.table,
                    location=existing.location,
                    classification=existing.classification,
                    columns=existing.columns,
                    partition_keys=existing.partition_keys,
                    parameters={**existing.parameters, DEPRECATED_PARAMETER: self.now.isoformat()},
                    deprecated=True,
                    now=self.now,
                )
                result.deprecated, result.version = True, stored.version
            gone = list(self.catalog.file_states(self.database, self.table))
            self.catalog.put_files(self.database, self.table, [], remove=gone, now=self.now)
            self.catalog.touch(self.database, self.table, now=self.now)
        return result

    # --- partitions ------------------------------------------------------------------------------

    def _apply_partitions(
        self,
        names: list[str],
        groups: dict[tuple[str, ...], list[str]],
        schemas: dict[str, InferredSchema],
        known: dict[tuple[str, ...], Partition],
    ) -> None:
        stored = self.catalog.find(self.database, self.table)
        if stored is None or [k.name for k in stored.partition_keys] != names:
            if names:
                self.result.logged_only.append(
                    f"{len(groups)} partition(s) not registered: the table's partition keys "
                    "differ from the folders' (update behavior LOG)"
                )
            return
        if not names:
            return
        # The keys changed under UPDATE_IN_DATABASE: the old partitions cannot be kept.
        stale = [values for values in known if len(values) != len(names)]
        if stale:
            self.catalog.delete_partitions(self.database, self.table, stale)
            self.result.partitions_removed += [list(v) for v in stale]
            known = {v: p for v, p in known.items() if len(v) == len(names)}
        current = {
            values: self._partition(values, keys, schemas) for values, keys in groups.items()
        }
        puts: list[Partition] = []
        for values, partition in current.items():
            old = known.get(values)
            if old is None or DEPRECATED_PARAMETER in old.parameters:
                # New partitions are always created, whatever the policies (Glue).
                self.result.partitions_added.append(list(values))
                puts.append(partition)
            elif self.update is UpdateBehavior.UPDATE_IN_DATABASE and (
                old.parameters != partition.parameters or old.location != partition.location
            ):
                puts.append(partition)
        self.catalog.put_partitions(self.database, self.table, puts, now=self.now)
        self._vanished_partitions([v for v in known if v not in current], known)

    def _partition(
        self, values: tuple[str, ...], keys: list[str], schemas: dict[str, InferredSchema]
    ) -> Partition:
        depth = len(values)
        folder = partition_folder(self.root, depth, keys[0])
        size = sum(self.objects[key].size for key in keys)
        seen = [schemas[key] for key in keys if key in schemas]
        params = {
            "typeOfData": "file",
            "objectCount": str(len(keys)),
            "sizeKey": str(size),
        }
        if seen:
            records = sum(s.records for s in seen)
            params["classification"] = seen[0].classification
            params["compressionType"] = _majority([s.compression for s in seen])
            if len(seen) == len(keys):
                params["recordCount"] = str(records)
                params["averageRecordSize"] = str(size // records if records else 0)
        return Partition(
            values=list(values),
            location=self.store.url_for(folder.rstrip("/")) + "/",
            parameters=params,
        )

    def _vanished_partitions(
        self, gone: list[tuple[str, ...]], known: dict[tuple[str, ...], Partition]
    ) -> None:
        if not gone:
            return
        if self.delete is DeleteBehavior.DELETE_FROM_DATABASE:
            self.catalog.delete_partitions(self.database, self.table, gone)
            self.result.partitions_removed += [list(v) for v in gone]
        elif self.delete is DeleteBehavior.DEPRECATE_IN_DATABASE:
            fresh = [v for v in gone if DEPRECATED_PARAMETER not in known[v].parameters]
            marked = [
                Partition(
                    values=list(v),
                    location=known[v].location,
                    parameters={**known[v].parameters, DEPRECATED_PARAMETER: self.now.isoformat()},
                )
                for v in fresh
            ]
            self.catalog.put_partitions(self.database, self.table, marked, now=self.now)
            self.result.partitions_deprecated += [list(v) for v in fresh]
        else:
            self.result.logged_only += [
                f"partition {list(v)} has no data files any more (not removed: delete behavior LOG)"
                for v in gone
                if DEPRECATED_PARAMETER not in known[v].parameters
            ]


__all__ = [
    "CRAWLER_NAME",
    "DEPRECATED_PARAMETER",
    "ColumnChange",
    "CrawlResult",
    "DeleteBehavior",
    "RecrawlPolicy",
    "UpdateBehavior",
    "check_table_name",
    "crawl",
    "crawl_raw_zone",
]
