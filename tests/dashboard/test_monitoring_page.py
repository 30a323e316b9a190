"""The Monitoring page in a real browser: a metric chart that draws, alarm states with their
history, and a log search that finds a known message (over ``web_settings``)."""

from __future__ import annotations

import json
from typing import Any

from dataflow.config import Settings
from dataflow.metadata import RunStore, open_metadata
from dataflow.monitor.metrics import Metrics
from tests.dashboard.conftest import expect_no_errors


def _open(page: Any, url: str) -> None:
    page.goto(url + "/monitoring")
    page.wait_for_selector("body[data-loaded='monitoring']")


def test_metric_chart_draws_and_follows_the_selects(
    page: Any, live_server: str, web_settings: Settings
) -> None:
    db = open_metadata(web_settings.metadata_url)
    try:
        listed = Metrics(db).list_metrics("Dataflow/Freshness")
    finally:
        db.dispose()
    _open(page, live_server)
    chart = page.locator("#metric-chart")
    assert chart.get_attribute("data-metric") == "Dataflow/Pipeline/RunDuration"
    assert chart.get_attribute("data-points") == "1"  # one run, one 5-minute period
    assert chart.locator("canvas").count() >= 1

    page.select_option("#metric-namespace", "Dataflow/Freshness")
    page.wait_for_selector("#metric-chart[data-metric='Dataflow/Freshness/LagSeconds']")
    options = page.locator("#metric-dimensions option")
    assert options.count() == len(listed)
    bars = json.dumps(
        {"pipeline": web_settings.name, "table": "time_series"}, separators=(",", ":")
    )
    page.select_option("#metric-dimensions", bars)
    page.select_option("#metric-stat", "Maximum")
    page.wait_for_selector(
        "#metric-chart[data-stat='Maximum'][data-dimensions='pipeline=dataflow, table=time_series']"
    )
    assert chart.get_attribute("data-points") == "1"
    expect_no_errors(page)


def test_alarm_states_and_history(page: Any, live_server: str) -> None:
    _open(page, live_server)
    rows = page.locator("#alarms-body tr[data-alarm]")
    assert rows.count() == 5
    states = dict(
        zip(
            rows.evaluate_all("rows => rows.map(r => r.dataset.alarm)"),
            rows.evaluate_all("rows => rows.map(r => r.dataset.state)"),
            strict=True,
        )
    )
    assert states["dataflow-run-failed"] == "OK"
    assert states["dataflow-slow-run"] == "INSUFFICIENT_DATA"

    page.locator("#alarms-body tr[data-alarm='dataflow-freshness'] button").click()
    page.wait_for_selector("#alarm-history-body[data-alarm='dataflow-freshness']")
    change = page.locator("#alarm-history-body tr[data-type='StateUpdate']")
    assert "INSUFFICIENT_DATA → OK" in change.inner_text()
    assert "Threshold Crossed" in change.inner_text()
    assert page.locator("#alarm-history-title").inner_text() == "History of dataflow-freshness"
    expect_no_errors(page)


def test_log_search_finds_a_known_message(
    page: Any, live_server: str, web_settings: Settings
) -> None:
    db = open_metadata(web_settings.metadata_url)
    try:
        (run,) = RunStore(db).list()
    finally:
        db.dispose()
    records = [
        json.loads(line)
        for path in (web_settings.state_dir / "logs").glob("*/*.jsonl")
        for line in path.read_text(encoding="utf-8").splitlines()
    ]
    _open(page, live_server)
    results = page.locator("#log-results")
    assert results.get_attribute("data-rows") == str(min(100, len(records)))

    page.fill("#log-filter", f"run {run.run_id} started")
    page.click("#log-form button[type='submit']")
    page.wait_for_selector("#log-results[data-rows='1']")
    assert f"run {run.run_id} started: stages ingest" in results.inner_text()

    page.fill("#log-filter", "")
    page.fill("#log-query", 'filter level = "INFO" | stats count(*) as n')
    page.click("#log-form button[type='submit']")
    page.wait_for_selector("#log-results th:text-is('n')")
    expected = sum(r["level"] == "INFO" for r in records)
    assert results.locator("tbody td").inner_text() == f"{expected:,}"

    page.fill("#log-query", "filter level ==")
    page.click("#log-form button[type='submit']")
    page.wait_for_selector("#messages .message.error")
    expect_no_errors(page, allowed=("400 (Bad Request)",))
