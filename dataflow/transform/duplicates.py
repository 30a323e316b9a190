"""Rows of one batch that share a key: which one is kept, and what happens to the others.

A model's output may hold one key several times (docs/transform-rules.md, "Duplicate keys"):

1. **The repeated hour of a daylight-saving change.** A model may return ``_fold_<column>``
   next to a key column: the other instant a local time that occurs twice stands for (NULL
   otherwise). When one payload holds such a key more than once, the copy that comes first in
   the payload's time order takes the ``_fold_`` value, so both bars are kept.
2. **The same key twice in one payload.** Identical rows collapse into one (counted as
   ``duplicates``). Different rows (real: the EUR/USD daily sample repeats 2022-06-03 with
   two bars) keep the one that comes **first in time order** — the API lists newest first
   (``order=desc``, its default), so the one listed *last*; with ``order=asc`` the one listed
   first — and every other one is quarantined with a reason naming the row kept.
3. **The same key in several payloads of a batch.** The newest response wins (``_received_at``,
   then raw file and line, as the upsert does across batches); the others are ``superseded``
   (a bar fetched again, still open the first time), or ``duplicates`` when identical.

Only the keys that repeat are read back (one GROUP BY finds them), so a batch without any
costs one aggregate.

Example:
    >>> record_index("AAPL:values[12]"), record_index("")
    (12, 0)
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from dataflow.transform.models import ERROR_COLUMN, LINEAGE_COLUMNS

if TYPE_CHECKING:
    from dataflow.engines.base import Engine

FOLD_PREFIX = "_fold_"
"""Prefix of the columns holding a key column's other instant (see rule 1)."""
POSITION = "_df_dup_pos"
_INDEX = re.compile(r"\[(\d+)\]$")


@dataclass
class Resolution:
    """What :func:`resolve_duplicates` did to a batch."""

    rows: pa.Table
    rejected: pa.Table | None = None
    duplicates: int = 0
    superseded: int = 0
    unfolded: int = 0


def record_index(path: str | None) -> int:
    """The index of a record in its list, from its ``_record_path`` (0 for a snapshot)."""
    found = _INDEX.search(path or "")
    return int(found.group(1)) if found else 0


def drop_fold_columns(rows: pa.Table) -> pa.Table:
    """``rows`` without the ``_fold_*`` helper columns."""
    extra = [name for name in rows.column_names if name.startswith(FOLD_PREFIX)]
    return rows.drop_columns(extra) if extra else rows


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def resolve_duplicates(
    engine: Engine, rows: pa.Table, keys: Sequence[str], *, bodies: str | None = None
) -> Resolution:
    """Apply the rules of the module docstring to the good rows of a batch.

    ``bodies`` names the registered bodies of the batch (their ``params`` give each payload's
    ``order``); without it a payload is taken as newest first. Returns the rows to commit
    (``_fold_*`` columns dropped), the rows to quarantine (with ``_error``) and the counts.
    """
    if rows.num_rows < 2 or not keys:
        return Resolution(drop_fold_columns(rows))
    key_list = ", ".join(_q(k) for k in keys)
    engine.register("_df_dups_in", rows)
    try:
        repeated = engine.sql(
            f"SELECT count(*) AS n FROM (SELECT 1 FROM _df_dups_in GROUP BY {key_list} "
            "HAVING count(*) > 1)"
        ).column("n")[0]
        if not repeated.as_py():
            return Resolution(drop_fold_columns(rows))
        engine.unregister("_df_dups_in")
        engine.register(
            "_df_dups_in", rows.append_column(POSITION, pa.array(range(rows.num_rows), pa.int64()))
        )
        order = "NULL"
        join = ""
        if bodies is not None:
            order = "o._order"
            join = (
                f"LEFT JOIN (SELECT DISTINCT _raw_key, _raw_line, lower(params ->> 'order') AS "
                f"_order FROM {bodies}) o ON o._raw_key = d._raw_key AND o._raw_line = d._raw_line"
            )
        hits = engine.sql(
            f"SELECT d.*, {order} AS _df_order FROM _df_dups_in d "
            f"SEMI JOIN (SELECT {key_list} FROM _df_dups_in GROUP BY {key_list} "
            f"HAVING count(*) > 1) k USING ({key_list}) {join}"
        )
    finally:
        engine.unregister("_df_dups_in")
    return _resolve(rows, hits.to_pylist(), list(keys))


def _payload_rank(row: dict[str, Any]) -> int:
    """Sort key putting a payload's rows in time order (first = earliest)."""
    index = record_index(row.get("_record_path"))
    return index if row.get("_df_order") == "asc" else -index


def _values(row: dict[str, Any]) -> tuple[Any, ...]:
    skip = {*LINEAGE_COLUMNS, ERROR_COLUMN, POSITION, "_df_order"}
    return tuple(
        (name, value)
        for name, value in row.items()
        if name not in skip and not name.startswith(FOLD_PREFIX)
    )


def _newest(row: dict[str, Any]) -> tuple[Any, ...]:
    received = row.get("_received_at")
    return (received is not None, received, row.get("_raw_key") or "", row.get("_raw_line") or 0)


def _resolve(rows: pa.Table, hits: list[dict[str, Any]], keys: list[str]) -> Resolution:
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in hits:
        groups[tuple(row[k] for k in keys)].append(row)
    drop: set[int] = set()
    refold: dict[int, dict[str, Any]] = {}
    rejected: dict[int, str] = {}
    out = Resolution(rows)
    folds = [k for k in keys if FOLD_PREFIX + k in rows.column_names]
    for members in groups.values():
        payloads: dict[tuple[Any, Any], list[dict[str, Any]]] = defaultdict(list)
        for row in members:
            payloads[(row.get("_raw_key"), row.get("_raw_line"))].append(row)
        survivors: list[dict[str, Any]] = []
        for listed in payloads.values():
            copies = sorted(listed, key=_payload_rank)
            # Rule 1: a repeated local hour; the first copy in time is the earlier instant.
            if folds and len(copies) > 1:
                first = copies[0]
                moved = {k: first.get(FOLD_PREFIX + k) for k in folds}
                if all(value is not None for value in moved.values()):
                    refold[first[POSITION]] = moved
                    out.unfolded += 1
                    copies = copies[1:]
            kept = copies[0]
            survivors.append(kept)
            for other in copies[1:]:
                drop.add(other[POSITION])
                if _values(other) == _values(kept):
                    out.duplicates += 1
                else:
                    rejected[other[POSITION]] = (
                        "duplicate key (" + ", ".join(f"{k}={kept[k]}" for k in keys) + ") in "
                        f"one payload with different values; kept {kept['_record_path']} "
                        "(the first in time order)"
                    )
        # Rule 3: across payloads the newest response wins.
        survivors.sort(key=_newest)
        winner = survivors[-1]
        for other in survivors[:-1]:
            drop.add(other[POSITION])
            if _values(other) == _values(winner):
                out.duplicates += 1
            else:
                out.superseded += 1
    return _apply(rows, drop, refold, rejected, out)


def _apply(
    rows: pa.Table,
    drop: set[int],
    refold: dict[int, dict[str, Any]],
    rejected: dict[int, str],
    out: Resolution,
) -> Resolution:
    positions = pa.array(range(rows.num_rows), pa.int64())
    changed = drop | set(refold)
    keep = pc.invert(pc.is_in(positions, pa.array(sorted(changed), pa.int64())))
    parts = [rows.filter(keep)]
    if refold:
        order = sorted(refold)
        moved = rows.take(pa.array(order, pa.int64()))
        for name in refold[order[0]]:
            index = moved.column_names.index(name)
            values = pa.array([refold[p][name] for p in order], moved.schema.field(name).type)
            moved = moved.set_column(index, moved.schema.field(name), values)
        parts.append(moved)
    out.rows = drop_fold_columns(pa.concat_tables(parts))
    if rejected:
        order = sorted(rejected)
        bad = drop_fold_columns(rows.take(pa.array(order, pa.int64())))
        reasons = pa.array([rejected[p] for p in order], pa.string())
        if ERROR_COLUMN in bad.column_names:
            bad = bad.drop_columns([ERROR_COLUMN])
        out.rejected = bad.append_column(ERROR_COLUMN, reasons)
    return out


__all__ = [
    "FOLD_PREFIX",
    "Resolution",
    "drop_fold_columns",
    "record_index",
    "resolve_duplicates",
]
