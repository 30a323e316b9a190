"""Ingest watermarks: how far each (source, endpoint, symbol, interval) has been fetched.

A watermark is the newest data time safely in the raw zone for one key. The ingest stage
advances it only after the raw write is durable, in one transaction per batch, and a watermark
never moves backwards: a late or replayed batch with older data leaves it where it is.
``--full-refresh`` resets them.

Example:
    >>> import datetime as dt
    >>> from dataflow.metadata import open_metadata
    >>> store = WatermarkStore(open_metadata("sqlite://"))
    >>> key = WatermarkKey("twelvedata", "time_series", "AAPL", "1day")
    >>> store.advance({key: dt.datetime(2024, 5, 2, tzinfo=dt.UTC)}, run_id="r1")
    >>> store.advance({key: dt.datetime(2024, 5, 1, tzinfo=dt.UTC)}, run_id="r2")
    >>> store.get(key).isoformat()
    '2024-05-02T00:00:00+00:00'
"""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from dataflow.metadata.db import MetadataDB
from dataflow.metadata.schema import utc, utcnow, watermarks

_KEY_COLUMNS = ("source", "endpoint", "symbol", "interval")


@dataclass(frozen=True, order=True)
class WatermarkKey:
    """What a watermark is kept for; ``""`` where a part does not apply (e.g. no interval)."""

    source: str
    endpoint: str
    symbol: str = ""
    interval: str = ""


class WatermarkStore:
    """Reads and advances watermarks in the metadata database.

    Args:
        db: an open (migrated) :class:`~dataflow.metadata.MetadataDB`.
    """

    def __init__(self, db: MetadataDB) -> None:
        self.db = db

    def get(self, key: WatermarkKey) -> dt.datetime | None:
        """The watermark of one key, or ``None`` if it has none yet.

        Example:
            >>> from dataflow.metadata import open_metadata
            >>> WatermarkStore(open_metadata("sqlite://")).get(WatermarkKey("td", "quote", "AAPL"))
        """
        return self.get_many([key]).get(key)

    def get_many(self, keys: Iterable[WatermarkKey]) -> dict[WatermarkKey, dt.datetime]:
        """Watermarks of many keys at once; keys without one are left out.

        Example:
            >>> from dataflow.metadata import open_metadata
            >>> WatermarkStore(open_metadata("sqlite://")).get_many([WatermarkKey("td", "eod")])
            {}
        """
        wanted = set(keys)
        if not wanted:
            return {}
        # Narrow by source and endpoint in SQL (few distinct values), then match exactly here.
        query = sa.select(watermarks).where(
            watermarks.c.source.in_({k.source for k in wanted}),
            watermarks.c.endpoint.in_({k.endpoint for k in wanted}),
        )
        with self.db.read() as conn:
            rows = conn.execute(query).mappings().all()
        found: dict[WatermarkKey, dt.datetime] = {}
        for row in rows:
            key = _key(row)
            if key in wanted:
                found[key] = row["value"]
        return found

    def advance(self, items: Mapping[WatermarkKey, dt.datetime], *, run_id: str) -> None:
        """Move watermarks forward, all in one transaction; an older value changes nothing.

        Call only after the data up to these times is durable in the raw zone.

        Example:
            >>> import datetime as dt
            >>> from dataflow.metadata import open_metadata
            >>> store = WatermarkStore(open_metadata("sqlite://"))
            >>> key = WatermarkKey("td", "eod", "MSFT")
            >>> store.advance({key: dt.datetime(2024, 1, 1, tzinfo=dt.UTC)}, run_id="r1")
            >>> store.get(key).year
            2024
        """
        if not items:
            return
        now = utcnow()
        rows = [
            {
                "source": key.source,
                "endpoint": key.endpoint,
                "symbol": key.symbol,
                "interval": key.interval,
                "value": utc(value, what=f"watermark of {key}"),
                "run_id": run_id,
                "updated_at": now,
            }
            for key, value in sorted(items.items())
        ]
        with self.db.begin() as conn:
            dialect = conn.dialect.name
            if dialect in {"sqlite", "postgresql"}:
                _upsert(conn, rows, dialect)
            else:
                _advance_portable(conn, rows)

    def reset(self, *, source: str, endpoint: str | None = None) -> int:
        """Forget the watermarks of a source (or one endpoint of it); return how many.

        Example:
            >>> from dataflow.metadata import open_metadata
            >>> WatermarkStore(open_metadata("sqlite://")).reset(source="td")
            0
        """
        query = watermarks.delete().where(watermarks.c.source == source)
        if endpoint is not None:
            query = query.where(watermarks.c.endpoint == endpoint)
        with self.db.begin() as conn:
            return int(conn.execute(query).rowcount)

    def list(
        self, source: str | None = None
    ) -> builtins.list[tuple[WatermarkKey, dt.datetime, str]]:
        """Every watermark as ``(key, value, run id that last advanced it)``, sorted by key.

        Example:
            >>> from dataflow.metadata import open_metadata
            >>> WatermarkStore(open_metadata("sqlite://")).list()
            []
        """
        query = sa.select(watermarks).order_by(*(watermarks.c[name] for name in _KEY_COLUMNS))
        if source is not None:
            query = query.where(watermarks.c.source == source)
        with self.db.read() as conn:
            rows = conn.execute(query).mappings().all()
        return [(_key(row), row["value"], row["run_id"]) for row in rows]


def _key(row: sa.RowMapping) -> WatermarkKey:
    return WatermarkKey(row["source"], row["endpoint"], row["symbol"], row["interval"])


def _upsert(conn: sa.Connection, rows: builtins.list[dict[str, Any]], dialect: str) -> None:
    """INSERT … ON CONFLICT DO UPDATE … WHERE old < new: atomic, race-free max(old, new)."""
    insert = sqlite.insert(watermarks) if dialect == "sqlite" else postgresql.insert(watermarks)
    excluded = insert.excluded
    statement = insert.on_conflict_do_update(
        index_elements=[watermarks.c[name] for name in _KEY_COLUMNS],
        set_={
            "value": excluded.value,
            "run_id": excluded.run_id,
            "updated_at": excluded.updated_at,
        },
        where=watermarks.c.value < excluded.value,
    )
    conn.execute(statement, rows)


def _advance_portable(conn: sa.Connection, rows: builtins.list[dict[str, Any]]) -> None:
    """Other databases: conditional UPDATE, then INSERT for keys that have no row yet."""
    for row in rows:
        match = [watermarks.c[name] == row[name] for name in _KEY_COLUMNS]
        exists = conn.execute(sa.select(watermarks.c.value).where(*match).with_for_update()).first()
        if exists is None:
            conn.execute(watermarks.insert().values(**row))
        else:
            conn.execute(
                watermarks.update()
                .where(*match, watermarks.c.value < row["value"])
                .values(value=row["value"], run_id=row["run_id"], updated_at=row["updated_at"])
            )


__all__ = ["WatermarkKey", "WatermarkStore"]
