"""Schedule expressions against the table in fixtures/cron_cases.yaml (EventBridge semantics)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml

from dataflow.errors import ConfigError
from dataflow.schedule import next_fire_times, parse_expression
from dataflow.schedule.expressions import local_time, zone

CASES = yaml.safe_load((Path(__file__).parent / "fixtures" / "cron_cases.yaml").read_text())


def _time(text: str | None) -> dt.datetime | None:
    return None if text is None else dt.datetime.fromisoformat(text)


@pytest.mark.parametrize("case", CASES["valid"], ids=[c["id"] for c in CASES["valid"]])
def test_next_fire_times(case: dict[str, Any]) -> None:
    after = _time(case["after"])
    assert after is not None
    got = next_fire_times(
        case["expr"],
        tz=case.get("tz", "UTC"),
        after=after,
        count=case["count"],
        start_date=_time(case.get("start_date")),
        end_date=_time(case.get("end_date")),
    )
    assert [t.isoformat() for t in got] == case["expected"]
    # Aware, in the schedule's zone, strictly after `after`, ascending.
    assert all(getattr(t.tzinfo, "key", None) == case.get("tz", "UTC") for t in got)
    assert all(t > after for t in got)
    assert got == sorted(got)


@pytest.mark.parametrize("case", CASES["invalid"], ids=[c["expr"] for c in CASES["invalid"]])
def test_invalid_expressions(case: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        parse_expression(case["expr"])
    assert str(info.value) == case["error"]
    assert "\n" not in str(info.value)
    assert info.value.exit_code == 2


def test_the_table_covers_every_operator_and_special_character() -> None:
    fields = [c["expr"] for c in CASES["valid"] if c["expr"].startswith("cron(")]
    inner = " ".join(e[5:-1] for e in fields)
    for char in [",", "-", "*", "?", "/", "L", "W", "#", "LW"]:
        assert char in inner, char
    assert any(c.get("tz", "UTC") == "America/New_York" for c in CASES["valid"])


def test_unknown_time_zone() -> None:
    with pytest.raises(ConfigError, match="unknown time zone 'Mars/Olympus'"):
        next_fire_times("rate(1 hour)", tz="Mars/Olympus", after=dt.datetime.now(dt.UTC))


def test_naive_after_is_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        next_fire_times("rate(1 hour)", after=dt.datetime(2024, 1, 1))


def test_naive_start_and_end_dates_are_utc() -> None:
    got = next_fire_times(
        "rate(1 hour)",
        tz="Asia/Tokyo",
        after=dt.datetime(2023, 1, 1, tzinfo=dt.UTC),
        start_date=dt.datetime(2024, 1, 1),
        end_date=dt.datetime(2024, 1, 1, 1),
        count=5,
    )
    assert [t.isoformat() for t in got] == [
        "2024-01-01T09:00:00+09:00",
        "2024-01-01T10:00:00+09:00",
    ]


def test_every_minute_for_a_whole_fall_back_day_is_monotonic_and_unique() -> None:
    start = dt.datetime(2024, 11, 3, 4, tzinfo=dt.UTC)  # 00:00 EDT
    got = next_fire_times("cron(* * * * ? *)", tz="America/New_York", after=start, count=200)
    instants = [t.astimezone(dt.UTC) for t in got]
    assert instants == sorted(set(instants))
    walls = [t.replace(tzinfo=None) for t in got]
    assert len(walls) == len(set(walls)), "a repeated wall-clock minute fired twice"
    # 01:00-01:59 fires once (EDT), then the clock shows 01:xx again (EST) with no fire.
    assert got[0].isoformat() == "2024-11-03T00:01:00-04:00"
    assert got[59].isoformat() == "2024-11-03T01:00:00-04:00"
    assert got[118].isoformat() == "2024-11-03T01:59:00-04:00"
    assert got[119].isoformat() == "2024-11-03T02:00:00-05:00"


def test_local_time_gap_and_overlap() -> None:
    ny = zone("America/New_York")
    assert local_time(dt.datetime(2024, 3, 10, 2, 0), ny) is None
    assert local_time(dt.datetime(2024, 3, 10, 3, 0), ny) is not None
    repeated = local_time(dt.datetime(2024, 11, 3, 1, 0), ny)
    assert repeated is not None
    assert repeated.utcoffset() == dt.timedelta(hours=-4)


def test_count_zero_and_parsed_expression() -> None:
    expr = parse_expression("cron(0 0 * * ? *)")
    after = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    assert next_fire_times(expr, after=after, count=0) == []
    assert len(next_fire_times(expr, after=after, count=3)) == 3
