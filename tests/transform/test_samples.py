"""Real Twelve Data payloads (tests/fixtures/twelvedata-samples) through the built-in models."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from dataflow.catalog.iceberg import open_catalog
from dataflow.config import Settings
from dataflow.pipeline import RunOptions, run_pipeline
from dataflow.storage import ObjectStore
from dataflow.transform import TransformStage

from .conftest import SAMPLES, import_sample, read_table, transform

UTC = dt.UTC


def by_ts(rows: list[dict], symbol: str) -> dict[dt.datetime, dict]:
    return {row["ts"]: row for row in rows if row["symbol"] == symbol}


def test_time_series_shapes_parse_to_utc_bars(tf_settings: Settings, tf_store: ObjectStore) -> None:
    intraday = import_sample(tf_store, "time_series__intraday_1min_aapl.json", "time_series")
    import_sample(tf_store, "time_series__daily_ibm_2021_no_mic_code.json", "time_series")
    import_sample(tf_store, "time_series__daily_tsla_keys_sorted.json", "time_series")
    import_sample(tf_store, "time_series__monthly_aapl_variable_decimals.json", "time_series")
    import_sample(tf_store, "time_series__forex_daily_eur_usd.json", "time_series")
    import_sample(tf_store, "time_series__forex_1h_eur_usd_utc.json", "time_series", timezone="UTC")
    import_sample(tf_store, "time_series__batch_1h_spx_aapl.json", "time_series", "SPX,AAPL")
    import_sample(tf_store, "error__400_invalid_interval.json", "time_series", "IBM")

    result = transform(tf_settings, ["time_series"])
    stats = result.results["transform"].details["tables"]["time_series"]
    assert stats["error_envelopes"] == 1
    # The one quarantined row: the EUR/USD daily sample lists 2022-06-03 twice, two bars.
    assert stats["quarantined"] == 1
    rows = read_table(tf_settings, "time_series")

    # Intraday stock bars are New York time (EDT, UTC-4) -> UTC; lineage names file and line.
    aapl_1min = {r["ts"]: r for r in rows if r["symbol"] == "AAPL" and r["interval"] == "1min"}
    bar = aapl_1min[dt.datetime(2023, 8, 24, 15, 9, tzinfo=UTC)]
    assert (bar["open"], bar["close"], bar["volume"]) == (177.9101, 178.00121, 293189)
    assert (bar["exchange"], bar["mic_code"], bar["instrument_type"]) == (
        "NASDAQ", "XNGS", "Common Stock",
    )  # fmt: skip
    assert (bar["_raw_key"], bar["_raw_line"], bar["_record_path"]) == (intraday, 1, "values[0]")
    assert bar["_run_id"].startswith("import-")
    assert bar["_received_at"].tzinfo is not None

    # 2021 payload without mic_code: NULL; daily labels are dates -> 00:00 UTC.
    ibm = [r for r in rows if r["symbol"] == "IBM"]
    assert len(ibm) == 30
    assert {r["mic_code"] for r in ibm} == {None}
    assert dt.datetime(2021, 7, 1, tzinfo=UTC) in {r["ts"] for r in ibm}

    # Alphabetically sorted keys parse the same.
    tsla = by_ts(rows, "TSLA")[dt.datetime(2022, 9, 20, tzinfo=UTC)]
    assert (tsla["open"], tsla["close"], tsla["volume"]) == (306.91501, 308.73001, 231261)

    # Variable decimals ("244", "255.039993") in monthly bars.
    month = {r["ts"]: r for r in rows if r["symbol"] == "AAPL" and r["interval"] == "1month"}
    october = month[dt.datetime(2025, 10, 1, tzinfo=UTC)]
    assert (october["open"], october["low"]) == (255.039993, 244.0)

    # Forex: no volume key -> NULL; base/quote from meta; hourly forex is UTC.
    eur = [r for r in rows if r["symbol"] == "EUR/USD"]
    assert {r["volume"] for r in eur} == {None}
    assert {r["currency_base"] for r in eur} == {"Euro"}
    assert {r["instrument_type"] for r in eur} == {"Physical Currency"}
    hourly = {r["ts"] for r in eur if r["interval"] == "1h"}
    assert dt.datetime(2026, 1, 19, 12, 0, tzinfo=UTC) in hourly

    # Multi-symbol answer keyed by symbol: both symbols, NY time -> UTC.
    spx = by_ts(rows, "SPX")
    assert dt.datetime(2023, 5, 12, 19, 30, tzinfo=UTC) in spx
    assert any(r["symbol"] == "AAPL" and r["interval"] == "1h" for r in rows)


def test_unparseable_values_are_quarantined_with_reason_and_lineage(
    tf_settings: Settings, tf_store: ObjectStore, tmp_path: Path
) -> None:
    body = json.loads((SAMPLES / "time_series__intraday_1min_aapl.json").read_text())
    body["values"][2]["close"] = "N/A"
    bad = tmp_path / "aapl_na.json"
    bad.write_text(json.dumps(body))
    from dataflow.storage import import_responses

    key = import_responses(tf_store, [bad], endpoint="time_series").files[0].key

    result = transform(tf_settings, ["time_series"])
    assert result.results["transform"].details["quarantined"] == 1
    rows = read_table(tf_settings, "time_series")
    assert len(rows) == len(body["values"]) - 1  # the rest of the file is loaded
    (rejected,) = read_table(tf_settings, "quarantine")
    assert rejected["table_name"] == "time_series"
    assert rejected["reason"] == "close is not a number: N/A"
    assert (rejected["_raw_key"], rejected["_raw_line"], rejected["_record_path"]) == (
        key, 1, "values[2]",
    )  # fmt: skip
    assert json.loads(rejected["record"])["close"] == "N/A"
    assert rejected["symbol"] == "AAPL"

    # Running again reads nothing new and quarantines nothing twice.
    transform(tf_settings, ["time_series"])
    assert len(read_table(tf_settings, "quarantine")) == 1


def test_snapshots_fx_and_errors(tf_settings: Settings, tf_store: ObjectStore) -> None:
    import_sample(tf_store, "price__ibm.json", "price", "IBM")
    import_sample(tf_store, "price__batch_aapl_msft.json", "price")
    import_sample(tf_store, "quote__aapl_2022.json", "quote")
    import_sample(tf_store, "quote__ibm_2021_legacy_shape.json", "quote")
    import_sample(tf_store, "quote__batch_two_invalid_symbols.json", "quote")
    import_sample(tf_store, "eod__vxx_cboe.json", "eod")
    import_sample(tf_store, "exchange_rate__usd_jpy.json", "exchange_rate")
    import_sample(tf_store, "currency_conversion__eur_usd_amount_100.json", "currency_conversion")
    import_sample(tf_store, "rsi__aapl_1min.json", "rsi")
    import_sample(tf_store, "macd__aapl_1min.json", "macd")
    import_sample(tf_store, "stocks__aapl_show_plan.json", "stocks")

    result = transform(tf_settings, ["prices", "quotes", "eod", "fx_rates", "indicators", "stocks"])
    tables = result.results["transform"].details["tables"]
    assert tables["quotes"]["symbol_errors"] == 2

    prices = {r["symbol"]: r["price"] for r in read_table(tf_settings, "prices")}
    assert prices == {"IBM": 146.55, "AAPL": 182.0, "MSFT": 327.79999}

    quotes = {r["symbol"]: r for r in read_table(tf_settings, "quotes")}
    assert quotes["AAPL"]["ts"] == dt.datetime.fromtimestamp(1663703999, UTC)
    assert quotes["AAPL"]["is_market_open"] is False
    legacy = quotes["IBM"]  # 2021: no timestamp, mic_code, is_market_open
    assert legacy["ts"] == dt.datetime(2021, 7, 1, tzinfo=UTC)
    assert (legacy["mic_code"], legacy["is_market_open"]) == (None, None)
    assert legacy["fifty_two_week_high"] == 152.84

    (vxx,) = read_table(tf_settings, "eod")
    assert (vxx["symbol"], vxx["date"], vxx["close"]) == ("VXX", dt.date(2021, 11, 5), 20.8675)

    fx = {r["kind"]: r for r in read_table(tf_settings, "fx_rates")}
    assert fx["exchange_rate"]["rate"] == 115.58  # a JSON number, not a string
    assert fx["exchange_rate"]["amount"] is None
    assert (fx["currency_conversion"]["amount"], fx["currency_conversion"]["currency_base"]) == (
        116.844, "EUR",
    )  # fmt: skip

    indicators = read_table(tf_settings, "indicators")
    rsi = [r for r in indicators if r["indicator"] == "rsi"]
    first = next(r for r in rsi if r["ts"] == dt.datetime(2023, 8, 24, 14, 33, tzinfo=UTC))
    assert dict(first["values"]) == {"rsi": 22.89856}
    assert json.loads(first["parameters"]) == {"series_type": "close", "time_period": 14}
    macd = next(r for r in indicators if r["indicator"] == "macd")
    assert set(dict(macd["values"])) == {"macd", "macd_signal", "macd_hist"}

    stocks = read_table(tf_settings, "stocks")
    assert {(r["symbol"], r["exchange"]) for r in stocks} == {
        ("AAPL", "NASDAQ"), ("AAPL", "Euronext"),
    }  # fmt: skip


def test_gated_runs_keep_the_parse_quarantine_off_main_until_published(
    tf_settings: Settings, tf_store: ObjectStore, tmp_path: Path
) -> None:
    """With the gate, quarantined rows (and a full refresh's clearing of them) are written on
    the audit branch and reach readers only through publish, like the table's own rows."""
    from dataflow.quality.stage import PublishStage, QualityStage

    body = json.loads((SAMPLES / "time_series__intraday_1min_aapl.json").read_text())
    body["values"][2]["close"] = "N/A"
    bad = tmp_path / "aapl_na.json"
    bad.write_text(json.dumps(body))
    from dataflow.storage import import_responses

    import_responses(tf_store, [bad], endpoint="time_series")
    gated = TransformStage(tables=["time_series"], branch="audit")

    run_pipeline(tf_settings, RunOptions(), stages=[gated])
    catalog = open_catalog(tf_settings)
    quarantine = catalog.load_table(("market", "quarantine"))
    assert quarantine.current_snapshot() is None  # nothing on main before publish
    assert quarantine.scan(snapshot_id=quarantine.metadata.refs["audit"].snapshot_id).count() == 1

    run_pipeline(tf_settings, RunOptions(), stages=[QualityStage(), PublishStage()])
    assert len(read_table(tf_settings, "quarantine")) == 1

    # A gated full refresh clears and rewrites on the branch; main keeps its row meanwhile.
    refresh = TransformStage(tables=["time_series"], branch="audit", full_refresh=True)
    run_pipeline(tf_settings, RunOptions(full_refresh=True), stages=[refresh])
    assert len(read_table(tf_settings, "quarantine")) == 1
    main_before = open_catalog(tf_settings).load_table(("market", "quarantine"))
    head = main_before.current_snapshot()
    run_pipeline(tf_settings, RunOptions(), stages=[QualityStage(), PublishStage()])
    after = open_catalog(tf_settings).load_table(("market", "quarantine"))
    assert after.current_snapshot() != head  # the refreshed quarantine was published
    assert len(read_table(tf_settings, "quarantine")) == 1
