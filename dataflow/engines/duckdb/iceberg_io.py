"""Writing Iceberg data files for the DuckDB engine: one Parquet file per partition, no commit.

:func:`write_data_files` writes a batch as Parquet data files and returns pyiceberg ``DataFile``
entries for the caller's snapshot producer (fast-append or overwrite), so the files land in the
caller's commit, beside its snapshot properties (the transform bookmark).

It does what pyiceberg 0.12's ``write_file`` does, file for file (same Arrow schema with field
ids, same ``ParquetWriter`` settings, same footer statistics), minus its per-row and per-file
Python costs, which dominated a transform's write:

* pyiceberg splits a batch by filtering it once per partition (O(partitions x rows)); here each
  row gets a partition *id* column-wise in Arrow (the dictionary indices of each partition
  field, combined), and each partition is written from zero-copy slices of the batch: the
  runs of its rows, concatenated in batch order (a ``take`` into partition order cost more than
  the Parquet encoding on batches whose partitions are scattered, e.g. daily bars of many
  series, and needed a bounded copy);
* the files are written in pyiceberg's writer pool (pyarrow releases the GIL), and the schema
  conversion and the statistics plan are computed once per batch, not once per file;
* given a time column (the upsert passes its key's, e.g. ``ts``), a partition of more than a few
  thousand rows is sorted by it and cut into files of one time range each, the newest rows in a
  small file of their own, so that an upsert of the newest rows rewrites that file only.

Example:
    >>> with table.transaction() as txn:  # doctest: +SKIP
    ...     append_rows(txn, rows, {"dataflow.run_id": "r1"})
    12
"""

from __future__ import annotations

import functools
import itertools
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from dataflow.engines.duckdb.attempts import mark
from dataflow.engines.duckdb.pruning import is_text

MIN_RUN_ROWS = 4096
"""Below this many rows per run on average, a partition's runs are copied into one chunk."""

MAX_FILE_ROWS_PROPERTY = "dataflow.write.max-file-rows"
"""Table property: the most rows a clustered data file holds (see :func:`write_data_files`)."""
MAX_FILE_ROWS = 50_000
"""Default of :data:`MAX_FILE_ROWS_PROPERTY`."""
NEWEST_FILE_ROWS_PROPERTY = "dataflow.write.newest-file-rows"
"""Table property: the rows of a clustered partition's newest file (:func:`write_data_files`)."""
NEWEST_FILE_ROWS = 2_000
"""Default of :data:`NEWEST_FILE_ROWS_PROPERTY`."""

_COMPATIBLE: set[tuple[str, int, pa.Schema]] = set()
"""(table uuid, schema id, Arrow schema) already checked by pyiceberg as writable."""

if TYPE_CHECKING:
    from pyiceberg.manifest import DataFile
    from pyiceberg.partitioning import PartitionKey
    from pyiceberg.table import Table, Transaction
    from pyiceberg.table.metadata import TableMetadata


def transaction(table: Table) -> Transaction:
    """``table.transaction()`` whose ``table_metadata`` is computed once per staged state.

    pyiceberg recomputes a transaction's metadata (the table's, with the staged updates
    applied, then deep-copied: ~1-2 ms on a table of a few snapshots, more as the metadata
    grows) every time it is read, and its snapshot producers read it ~20 times per commit.
    The value only depends on the table's metadata object and the staged updates (both
    replaced, never changed in place, when the transaction stages or retries), so it is kept
    while both are the same objects. The metadata is a frozen model, shared read-only.

    Example:
        >>> txn = transaction(table)  # doctest: +SKIP
        >>> txn.table_metadata is txn.table_metadata  # doctest: +SKIP
        True
    """
    return _transaction_class()(table)


@functools.cache
def _transaction_class() -> type[Transaction]:
    from pyiceberg.table import Transaction

    class _Transaction(Transaction):
        _memo: tuple[object, object, TableMetadata] | None = None

        @property
        def table_metadata(self) -> TableMetadata:
            base, updates, memo = self._table.metadata, self._updates, self._memo
            if memo is not None and memo[0] is base and memo[1] is updates:
                return memo[2]
            found = super().table_metadata
            self._memo = (base, updates, found)
            return found

    return _Transaction


def cast_to(rows: pa.Table, table: Table) -> pa.Table:
    """``rows`` with the table's columns, in its order and Arrow types (missing ones NULL)."""
    target = table.schema().as_arrow()
    columns = []
    fields = []
    for field in target:
        if field.name not in rows.column_names:
            columns.append(pa.nulls(rows.num_rows, field.type))
            fields.append(field)
            continue
        column = rows.column(field.name)
        if is_text(column.type) and is_text(field.type):
            # string vs large_string: Iceberg accepts both; a cast would copy every offset.
            fields.append(field.with_type(column.type))
        else:
            column = column.cast(field.type)
            fields.append(field)
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=pa.schema(fields, metadata=target.metadata))


def cluster_column(table: Table, keys: Sequence[str]) -> str | None:
    """The key column data files are clustered by: the first one holding times, if any.

    Example:
        >>> cluster_column(table, ["symbol", "interval", "ts"])  # doctest: +SKIP
        'ts'
    """
    from pyiceberg.types import DateType, TimestampType, TimestamptzType

    schema = table.schema()
    for key in keys:
        if key in schema.column_names:
            kind = schema.find_field(key).field_type
            if isinstance(kind, DateType | TimestampType | TimestamptzType):
                return key
    return None


def append_rows(
    txn: Transaction,
    rows: pa.Table,
    snapshot_properties: Mapping[str, str],
    *,
    branch: str | None = "main",
    cluster_by: str | None = None,
) -> int:
    """``txn.append(rows)`` without pyiceberg's filter-per-partition; returns the files written.

    The files are written by :func:`write_data_files` (one per partition, or per time range of
    a partition when ``cluster_by`` is given) and added in one fast-append snapshot carrying
    ``snapshot_properties``, on ``branch`` (None: a staged snapshot on no branch).

    Example:
        >>> with table.transaction() as txn:  # doctest: +SKIP
        ...     append_rows(txn, rows, {"dataflow.run_id": "r1"})
        12
    """
    props = dict(snapshot_properties)
    producer = txn.update_snapshot(snapshot_properties=props, branch=branch).fast_append()
    written = 0
    with producer as append:
        for data_file in write_data_files(txn, rows, append.commit_uuid, cluster_by=cluster_by):
            append.append_data_file(data_file)
            written += 1
    return written


def write_data_files(
    txn: Transaction,
    rows: pa.Table,
    commit_uuid: uuid.UUID,
    *,
    cluster_by: str | None = None,
) -> list[DataFile]:
    """Write ``rows`` as Parquet data files of ``txn``'s table, one per partition; no commit.

    The files follow the table's *current* partition spec (whatever spec it was created with).
    A partition larger than the table's ``write.target-file-size-bytes`` (in Arrow bytes, as
    pyiceberg measures it) is split into several files. With ``cluster_by`` (a column of
    times), a partition of more than ``dataflow.write.newest-file-rows`` rows (default
    :data:`NEWEST_FILE_ROWS`) is sorted by that column and cut into files each holding one time
    range: its newest rows in a small file of their own, the rest in files of at most
    ``dataflow.write.max-file-rows`` rows (default :data:`MAX_FILE_ROWS`). The newest rows are
    the likeliest to be revised (a bar still open when fetched); an upsert of them then finds
    (by the files' column bounds) and rewrites that small file only, not the partition's whole
    history. The rows must have the table's columns (:func:`cast_to`).

    Example:
        >>> with txn.update_snapshot().fast_append() as append:  # doctest: +SKIP
        ...     for data_file in write_data_files(txn, rows, append.commit_uuid):
        ...         append.append_data_file(data_file)
    """
    from pyiceberg.io.pyarrow import (
        _check_pyarrow_schema_compatible,
        bin_pack_arrow_table,
        compute_statistics_plan,
        parquet_path_to_id_mapping,
    )
    from pyiceberg.table import TableProperties
    from pyiceberg.utils.concurrent import ExecutorFactory
    from pyiceberg.utils.properties import property_as_int

    meta = txn.table_metadata
    schema = meta.schema()
    checked = (str(meta.table_uuid), meta.current_schema_id, rows.schema)
    if checked not in _COMPATIBLE:
        # ~20 ms of Python per call (a fixed cost of every commit, large in a small one): a
        # table's schema version and an Arrow schema found compatible once stay compatible,
        # and rows in the table's own Arrow schema (what cast_to makes) need no check.
        if not _is_own_schema(schema.as_arrow(), rows.schema):
            _check_pyarrow_schema_compatible(schema, provided_schema=rows.schema)
        if len(_COMPATIBLE) >= 64:
            _COMPATIBLE.clear()
        _COMPATIBLE.add(checked)
    if not rows.num_rows:
        return []
    # The attempt is recognisable until it commits (see dataflow.engines.duckdb.attempts).
    mark(txn, commit_uuid)
    target: int = property_as_int(  # type: ignore[assignment]  # has a default
        meta.properties,
        TableProperties.WRITE_TARGET_FILE_SIZE_BYTES,
        TableProperties.WRITE_TARGET_FILE_SIZE_BYTES_DEFAULT,
    )
    max_rows: int = property_as_int(  # type: ignore[assignment]  # has a default
        meta.properties, MAX_FILE_ROWS_PROPERTY, MAX_FILE_ROWS
    )
    newest_rows: int = property_as_int(  # type: ignore[assignment]  # has a default
        meta.properties, NEWEST_FILE_ROWS_PROPERTY, NEWEST_FILE_ROWS
    )
    rows = _file_rows(meta, rows)
    keys: dict[int, PartitionKey | None] = {0: None}
    # Each file's rows: the (start, end) spans of the batch it is made of, in batch order.
    parts: list[tuple[int, list[tuple[int, int]]]] = [(0, [(0, rows.num_rows)])]
    if not meta.spec().is_unpartitioned():
        ids, found = _partition_keys(meta, rows)
        keys = dict(found)
        parts = _partition_spans(_runs(ids))
    plan = compute_statistics_plan(meta.schema(), meta.properties)
    mapping = parquet_path_to_id_mapping(meta.schema())
    counter = itertools.count(0)

    def write(part: tuple[int, list[tuple[int, int]]]) -> list[DataFile]:
        key, spans = part
        # A partition is the concatenation of its runs' slices, in batch order: no reordering.
        # Many short runs (daily bars of many series) are joined into one contiguous copy of
        # just this partition, as Parquet encoding pays per chunk; long runs stay zero-copy.
        data = pa.concat_tables([rows.slice(start, end - start) for start, end in spans])
        if len(spans) > 1 and data.num_rows < MIN_RUN_ROWS * len(spans):
            data = data.combine_chunks()
        pieces = [data]
        if cluster_by is not None and data.num_rows > newest_rows:
            pieces = _clustered(data, cluster_by, max_rows, newest_rows)
        return [
            _write_one(txn, meta, pa.Table.from_batches(batches, schema=piece.schema),
                       keys[key], commit_uuid, next(counter), plan, mapping)
            for piece in pieces
            for batches in bin_pack_arrow_table(piece, target)
        ]  # fmt: skip

    # pyiceberg's writer pool: pyarrow's Parquet writer releases the GIL.
    executor = ExecutorFactory.get_or_create()
    return [f for files in executor.map(write, parts) for f in files]


def _is_own_schema(own: pa.Schema, given: pa.Schema) -> bool:
    """Whether ``given`` is the table's Arrow schema ``own`` (as :func:`cast_to` makes it).

    Same names in the same order, the same flat types (any string width for a string), and no
    NULLs allowed where the table requires a value: pyiceberg's compatibility check could only
    pass. Anything else (nested types, other types, missing columns) says False: the caller
    then runs that check.

    Example:
        >>> own = pa.schema([pa.field("a", pa.large_string()), pa.field("b", pa.int64())])
        >>> _is_own_schema(own, pa.schema([("a", pa.string()), ("b", pa.int64())]))
        True
        >>> _is_own_schema(own, pa.schema([("a", pa.string()), ("b", pa.int32())]))
        False
    """
    if own.names != given.names:
        return False
    for mine, theirs in zip(own, given, strict=True):
        if pa.types.is_nested(mine.type) or pa.types.is_nested(theirs.type):
            return False
        if mine.type != theirs.type and not (_plain_text(mine.type) and _plain_text(theirs.type)):
            return False
        if theirs.nullable and not mine.nullable:
            return False
    return True


def _plain_text(kind: pa.DataType) -> bool:
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


def _clustered(data: pa.Table, column: str, max_rows: int, newest_rows: int) -> list[pa.Table]:
    """``data`` sorted by ``column`` (stable), cut into its newest ``newest_rows`` rows and
    near-equal slices of at most ``max_rows`` of the rest.

    Example:
        >>> t = pa.table({"ts": [3, 1, 2, 7, 5, 6, 4]})
        >>> [p.column("ts").to_pylist() for p in _clustered(t, "ts", 3, 2)]
        [[1, 2, 3], [4, 5], [6, 7]]
    """
    import pyarrow.compute as pc

    order = pc.sort_indices(data, sort_keys=[(column, "ascending")])  # NULLs last
    data = data.take(order)
    rest = data.num_rows - newest_rows
    count = -(-rest // max_rows)
    size = -(-rest // count)
    pieces = [data.slice(start, min(size, rest - start)) for start in range(0, rest, size)]
    return [*pieces, data.slice(rest)]


def _partition_spans(runs: list[tuple[int, int, int]]) -> list[tuple[int, list[tuple[int, int]]]]:
    """(partition id, its runs' (start, end) in batch order) for each partition, by first run.

    Example:
        >>> _partition_spans([(7, 0, 2), (3, 2, 5), (7, 5, 6)])
        [(7, [(0, 2), (5, 6)]), (3, [(2, 5)])]
    """
    spans: dict[int, list[tuple[int, int]]] = {}
    for part, start, end in runs:
        spans.setdefault(part, []).append((start, end))
    return list(spans.items())


def _file_rows(meta: TableMetadata, rows: pa.Table) -> pa.Table:
    """``rows`` in the Arrow schema pyiceberg writes (field ids in the field metadata)."""
    from pyiceberg.io.fileformat import FileFormatFactory
    from pyiceberg.io.pyarrow import _to_requested_schema, pyarrow_to_schema
    from pyiceberg.manifest import FileFormat
    from pyiceberg.table import DOWNCAST_NS_TIMESTAMP_TO_US_ON_WRITE
    from pyiceberg.utils.config import Config

    schema = meta.schema()
    given = pyarrow_to_schema(
        rows.schema, name_mapping=schema.name_mapping, format_version=meta.format_version
    )
    downcast = Config().get_bool(DOWNCAST_NS_TIMESTAMP_TO_US_ON_WRITE) or False

    def convert(batch: pa.RecordBatch) -> pa.RecordBatch:
        return _to_requested_schema(
            requested_schema=schema,
            file_schema=given,
            batch=batch,
            downcast_ns_timestamp_to_us=downcast,
            include_field_ids=True,
            format_model=FileFormatFactory.get(FileFormat.PARQUET),
        )

    chunks = rows.to_batches()
    if not chunks:
        return rows
    first = convert(chunks[0])
    if first.schema.names == rows.schema.names and all(
        first.column(i).type == column.type and not pa.types.is_nested(column.type)
        for i, column in enumerate(chunks[0].columns)
    ):
        # Same columns, types and order, none nested: only the field ids (metadata) changed,
        # the usual case. Relabel every chunk at once, zero-copy, rather than converting each
        # (a batch arrives in hundreds of chunks). Nested fields take the per-chunk path.
        return pa.Table.from_arrays(rows.columns, schema=first.schema)
    return pa.Table.from_batches([first, *(convert(batch) for batch in chunks[1:])])


def _write_one(
    txn: Transaction,
    meta: TableMetadata,
    data: pa.Table,
    key: PartitionKey | None,
    commit_uuid: uuid.UUID,
    task_id: int,
    plan: Any,
    mapping: dict[str, int],
) -> DataFile:
    """One Parquet file as pyiceberg's ``ParquetFormatWriter`` writes it, and its entry."""
    import pyarrow.parquet as pq
    from pyiceberg.io.pyarrow import (
        _get_parquet_writer_kwargs,
        data_file_statistics_from_parquet_metadata,
    )
    from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
    from pyiceberg.table import TableProperties
    from pyiceberg.table.locations import load_location_provider
    from pyiceberg.typedef import Record
    from pyiceberg.utils.properties import property_as_int

    provider = load_location_provider(meta.location, meta.properties)
    name = f"00000-{task_id}-{commit_uuid}-{uuid.uuid4().hex[:8]}.parquet"
    path = provider.new_data_location(data_file_name=name, partition_key=key)
    output = txn._table.io.new_output(path)
    row_group_size = property_as_int(
        meta.properties,
        TableProperties.PARQUET_ROW_GROUP_LIMIT,
        TableProperties.PARQUET_ROW_GROUP_LIMIT_DEFAULT,
    )
    with output.create(overwrite=True) as stream:
        writer = pq.ParquetWriter(
            stream,
            schema=data.schema,
            store_decimal_as_integer=True,
            **_get_parquet_writer_kwargs(meta.properties),
        )
        writer.write(data, row_group_size=row_group_size)
        writer.close()
    statistics = data_file_statistics_from_parquet_metadata(
        parquet_metadata=writer.writer.metadata,
        stats_columns=plan,
        parquet_column_mapping=mapping,
    )
    return DataFile.from_args(
        content=DataFileContent.DATA,
        file_path=path,
        file_format=FileFormat.PARQUET,
        partition=key.partition if key is not None else Record(),
        file_size_in_bytes=len(output),
        sort_order_id=None,
        spec_id=meta.default_spec_id,
        equality_ids=None,
        key_metadata=None,
        **statistics.to_serialized_dict(),
    )


def _runs(ids: pa.Array) -> list[tuple[int, int, int]]:
    """(value, start, end) of each run of equal values in ``ids`` (an int64 array, no nulls)."""
    import pyarrow.compute as pc

    size = len(ids)
    if not size:
        return []
    changed = pc.not_equal(ids.slice(0, size - 1), ids.slice(1))
    cuts = [0, *(int(i) + 1 for i in pc.indices_nonzero(changed).to_pylist()), size]
    values = ids.take(pa.array(cuts[:-1], pa.int64())).to_pylist()
    return [(v, s, e) for v, (s, e) in zip(values, itertools.pairwise(cuts), strict=True)]


def _partition_keys(
    meta: TableMetadata, rows: pa.Table
) -> tuple[pa.Array, dict[int, PartitionKey]]:
    """(each row's partition id, the pyiceberg key of each id that occurs).

    Each partition field's values are dictionary-encoded; the id is the mixed-radix number of
    their indices, so it is computed column-wise in Arrow (no sort, no join) and decodes back.
    """
    import pyarrow.compute as pc
    from pyiceberg.io.pyarrow import _get_field_from_arrow_table
    from pyiceberg.partitioning import PartitionFieldValue, PartitionKey

    schema, spec = meta.schema(), meta.spec()
    dictionaries: list[pa.Array] = []
    ids: Any = None
    for field in spec.fields:
        name = schema.find_column_name(field.source_id)
        source = schema.find_field(field.source_id)
        column = _get_field_from_arrow_table(rows, str(name))
        values = field.transform.pyarrow_transform(source.field_type)(column)
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()  # one dictionary for the whole batch
        encoded = pc.dictionary_encode(values, null_encoding="encode")
        dictionaries.append(encoded.dictionary)
        index = encoded.indices.cast(pa.int64())
        size = len(encoded.dictionary)
        ids = index if ids is None else pc.add(pc.multiply(ids, size), index)
    found: dict[int, PartitionKey] = {}
    for part in pc.unique(ids).to_pylist():
        values, rest = [], part
        for dictionary in reversed(dictionaries):
            rest, index = divmod(rest, len(dictionary))
            values.append(dictionary[index].as_py())
        found[part] = PartitionKey(
            field_values=[
                PartitionFieldValue(field=f, value=v)
                for f, v in zip(spec.fields, reversed(values), strict=True)
            ],
            partition_spec=spec,
            schema=schema,
        )
    return ids, found


__all__ = [
    "MAX_FILE_ROWS",
    "MAX_FILE_ROWS_PROPERTY",
    "NEWEST_FILE_ROWS",
    "NEWEST_FILE_ROWS_PROPERTY",
    "append_rows",
    "cast_to",
    "cluster_column",
    "transaction",
    "write_data_files",
]
