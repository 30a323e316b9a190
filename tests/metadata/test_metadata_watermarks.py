"""Watermarks: advance in one transaction, never backwards, get_many, reset, list."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataflow.metadata import MetadataDB, WatermarkKey, WatermarkStore, open_metadata

T0 = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
AAPL = WatermarkKey("twelvedata", "time_series", "AAPL", "1day")
MSFT = WatermarkKey("twelvedata", "time_series", "MSFT", "1day")
AAPL_1H = WatermarkKey("twelvedata", "time_series", "AAPL", "1h")
QUOTE = WatermarkKey("twelvedata", "quote", "AAPL", "")
OTHER = WatermarkKey("other", "time_series", "AAPL", "1day")


@pytest.fixture
def md_db(tmp_path: Path) -> Iterator[MetadataDB]:
    db = open_metadata(f"sqlite:///{tmp_path / 'dataflow.db'}")
    yield db
    db.dispose()


@pytest.fixture
def md_marks(md_db: MetadataDB) -> WatermarkStore:
    return WatermarkStore(md_db)


def test_advance_and_get(md_marks: WatermarkStore) -> None:
    assert md_marks.get(AAPL) is None
    md_marks.advance({AAPL: T0, QUOTE: T0 + dt.timedelta(hours=1)}, run_id="r1")
    assert md_marks.get(AAPL) == T0
    assert md_marks.get(AAPL).tzinfo == dt.UTC  # type: ignore[union-attr]
    assert md_marks.get(QUOTE) == T0 + dt.timedelta(hours=1)


def test_never_moves_backwards(md_marks: WatermarkStore) -> None:
    md_marks.advance({AAPL: T0, MSFT: T0}, run_id="r1")
    later = T0 + dt.timedelta(days=1)
    # One batch: AAPL forward, MSFT backward.
    md_marks.advance({AAPL: later, MSFT: T0 - dt.timedelta(days=3)}, run_id="r2")
    assert md_marks.list() == [(AAPL, later, "r2"), (MSFT, T0, "r1")]
    md_marks.advance({AAPL: later}, run_id="r3")  # equal: not an advance
    assert md_marks.list()[0] == (AAPL, later, "r2")


def test_other_time_zones_are_converted_and_naive_refused(md_marks: WatermarkStore) -> None:
    plus2 = dt.timezone(dt.timedelta(hours=2))
    md_marks.advance({AAPL: dt.datetime(2024, 5, 1, 2, tzinfo=plus2)}, run_id="r1")
    assert md_marks.get(AAPL) == T0
    with pytest.raises(ValueError, match="no time zone"):
        md_marks.advance({MSFT: T0, QUOTE: dt.datetime(2024, 6, 1)}, run_id="r2")
    assert md_marks.get(MSFT) is None  # all or nothing


def test_get_many_returns_only_keys_with_a_watermark(md_marks: WatermarkStore) -> None:
    md_marks.advance({AAPL: T0, AAPL_1H: T0, MSFT: T0, OTHER: T0}, run_id="r1")
    missing = WatermarkKey("twelvedata", "time_series", "NVDA", "1day")
    assert md_marks.get_many([AAPL, MSFT, missing]) == {AAPL: T0, MSFT: T0}
    assert md_marks.get_many([]) == {}


def test_reset_by_source_and_endpoint(md_marks: WatermarkStore) -> None:
    md_marks.advance({AAPL: T0, MSFT: T0, QUOTE: T0, OTHER: T0}, run_id="r1")
    assert md_marks.reset(source="twelvedata", endpoint="quote") == 1
    assert md_marks.get(QUOTE) is None
    assert md_marks.reset(source="twelvedata") == 2
    assert [key for key, _, _ in md_marks.list()] == [OTHER]
    md_marks.advance({AAPL: T0 - dt.timedelta(days=30)}, run_id="r2")  # after reset: any value
    assert md_marks.get(AAPL) == T0 - dt.timedelta(days=30)


def test_list_sorted_and_by_source(md_marks: WatermarkStore) -> None:
    md_marks.advance({QUOTE: T0, MSFT: T0, OTHER: T0, AAPL: T0}, run_id="r1")
    assert [key for key, _, _ in md_marks.list()] == [OTHER, QUOTE, AAPL, MSFT]
    assert [key for key, _, _ in md_marks.list("twelvedata")] == [QUOTE, AAPL, MSFT]


def test_many_keys_in_one_batch(md_marks: WatermarkStore) -> None:
    keys = [WatermarkKey("twelvedata", "time_series", f"S{i}", "1day") for i in range(500)]
    md_marks.advance({key: T0 + dt.timedelta(minutes=i) for i, key in enumerate(keys)}, run_id="r1")
    assert md_marks.get_many(keys[:3] + keys[-1:]) == {
        keys[0]: T0,
        keys[1]: T0 + dt.timedelta(minutes=1),
        keys[2]: T0 + dt.timedelta(minutes=2),
        keys[-1]: T0 + dt.timedelta(minutes=499),
    }
