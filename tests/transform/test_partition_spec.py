"""time_series' partition spec: new tables get ``interval, year(ts)``; old ones keep theirs."""

from __future__ import annotations

import datetime as dt
from importlib import resources

from pyiceberg.expressions import And, EqualTo, GreaterThanOrEqual

from dataflow.catalog.iceberg import open_catalog
from dataflow.config import Settings
from dataflow.storage import ObjectStore

from .conftest import land, read_table, transform

T0 = dt.datetime(2024, 7, 1, 12, tzinfo=dt.UTC)
PARAMS = {"symbol": "AAPL", "interval": "1day", "timezone": "UTC"}


def bars(close: str, days: list[str]) -> dict:
    return {
        "meta": {"symbol": "AAPL", "interval": "1day", "exchange_timezone": "America/New_York"},
        "values": [
            {"datetime": day, "open": "1", "high": "2", "low": "0.5", "close": close}
            for day in days
        ],
    }


def spec_fields(settings: Settings) -> list[tuple[str, str]]:
    table = open_catalog(settings).load_table(("market", "time_series"))
    return [(f.name, str(f.transform)) for f in table.spec().fields]


def partitions(settings: Settings) -> set[tuple]:
    table = open_catalog(settings).load_table(("market", "time_series"))
    return {tuple(task.file.partition) for task in table.scan().plan_files()}


def test_a_new_table_is_partitioned_by_interval_and_year(
    tf_settings: Settings, tf_store: ObjectStore
) -> None:
    land(tf_store, "time_series", [bars("1", ["2023-12-29", "2024-01-02"])], received_at=T0,
         run_id="r1", params=PARAMS)  # fmt: skip
    transform(tf_settings, ["time_series"])
    assert spec_fields(tf_settings) == [("interval", "identity"), ("ts_year", "year")]
    assert partitions(tf_settings) == {("1day", 53), ("1day", 54)}  # years since 1970


def test_a_table_created_with_month_partitions_keeps_its_spec(
    tf_settings: Settings, tf_store: ObjectStore
) -> None:
    # The table is created by the earlier model, whose header said `interval, month(ts)`.
    builtin = (resources.files("dataflow.transform") / "models" / "time_series.sql").read_text()
    old = builtin.replace("-- partition: interval, year(ts)", "-- partition: interval, month(ts)")
    assert old != builtin
    override = tf_settings.project_dir / "models" / "time_series.sql"
    override.parent.mkdir(parents=True, exist_ok=True)
    override.write_text(old)
    land(tf_store, "time_series", [bars("1", ["2024-04-30", "2024-05-01"])], received_at=T0,
         run_id="r1", params=PARAMS)  # fmt: skip
    transform(tf_settings, ["time_series"])
    assert spec_fields(tf_settings) == [("interval", "identity"), ("ts_month", "month")]

    # The current model (year) transforms into it: rows are written by the table's own spec,
    # and the upsert still replaces the bar it must.
    override.unlink()
    newer = land(
        tf_store, "time_series", [bars("2", ["2024-05-01", "2024-06-03"])],
        received_at=T0 + dt.timedelta(hours=1), run_id="r2", params=PARAMS,
    )  # fmt: skip
    result = transform(tf_settings, ["time_series"])
    assert result.status == "succeeded"
    assert result.results["transform"].details["tables"]["time_series"]["replaced"] == 1
    assert spec_fields(tf_settings) == [("interval", "identity"), ("ts_month", "month")]
    months = (2024 - 1970) * 12
    assert partitions(tf_settings) == {("1day", months + 3), ("1day", months + 4),
                                       ("1day", months + 5)}  # fmt: skip
    rows = {
        r["ts"].date(): (r["close"], r["_raw_key"]) for r in read_table(tf_settings, "time_series")
    }
    assert rows[dt.date(2024, 5, 1)] == (2.0, newer)
    assert rows[dt.date(2024, 4, 30)][0] == 1.0
    assert len(rows) == 3
    # Partition pruning on the month spec still works.
    table = open_catalog(tf_settings).load_table(("market", "time_series"))
    june = And(EqualTo("interval", "1day"), GreaterThanOrEqual("ts", "2024-06-01T00:00:00+00:00"))
    assert len(list(table.scan(row_filter=june).plan_files())) == 1
