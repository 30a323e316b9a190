"""The Pipeline page in a real browser: runs with their stages, freshness per table, the DQ
score trend chart and active alarms — and what it says when there is nothing yet."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dataflow.config import Settings, load_settings
from dataflow.metadata import RunStore, open_metadata
from dataflow.metadata.schema import dq_evaluations
from dataflow.monitor.alarm_store import evaluate_all
from dataflow.monitor.metrics import Metrics
from tests.dashboard.conftest import LiveServer, expect_no_errors

STAGES = ["ingest", "transform", "quality", "publish", "crawl"]


def _open(page: Any, url: str) -> None:
    page.goto(url + "/pipeline")
    page.wait_for_selector("body[data-loaded='pipeline']")


def test_runs_stages_freshness_trend_and_alarms(
    page: Any, live_server: str, web_settings: Settings
) -> None:
    db = open_metadata(web_settings.metadata_url)
    try:
        (run,) = RunStore(db).list()
        with db.read() as conn:
            evaluations = conn.execute(sa.select(sa.func.count()).select_from(dq_evaluations))
            evaluation_count = int(evaluations.scalar_one())
    finally:
        db.dispose()

    _open(page, live_server)

    row = page.locator(f"#runs-body tr[data-run='{run.run_id}']")
    assert row.get_attribute("data-status") == run.status
    assert row.locator("td").nth(2).inner_text() == run.trigger
    chips = row.locator(".stage-chip")
    assert chips.evaluate_all("nodes => nodes.map(n => n.dataset.stage)") == STAGES
    statuses = chips.evaluate_all("nodes => nodes.map(n => n.dataset.status)")
    assert statuses == [s.status for s in run.stages]
    transform = next(s for s in run.stages if s.stage == "transform")
    assert (
        f"{transform.rows:,} rows"
        in row.locator(".stage-chip[data-stage='transform']").inner_text()
    )

    bars = page.locator("#freshness-body tr[data-table='time_series']")
    assert bars.get_attribute("data-status") == "fresh"
    assert "fresh" in bars.inner_text()
    stocks = page.locator("#freshness-body tr[data-table='stocks']")
    assert stocks.get_attribute("data-status") == "unknown"
    assert "no time column" in stocks.inner_text()
    assert "alarm dataflow-freshness" in page.locator("#freshness-note").inner_text()

    chart = page.locator("#dq-trend-chart")
    assert int(chart.get_attribute("data-points") or 0) == evaluation_count > 0
    assert chart.locator("canvas").count() >= 1

    assert "None of the 5 alarm(s) is in ALARM" in page.locator("#alarms-body").inner_text()
    assert page.locator("[data-kpi='stale tables'] .value").inner_text().startswith("0 / ")
    expect_no_errors(page)


@pytest.fixture(scope="module")
def alarming(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A project with no run but a DQ score below 1 (as `dataflow metrics put` records it),
    its alarms evaluated: dataflow-dq-score is in ALARM. Served on its own live server."""
    from dataflow.dashboard import create_app

    settings = load_settings(Path(tmp_path_factory.mktemp("alarming")) / "project", env={})
    db = open_metadata(settings.metadata_url)
    try:
        metrics = Metrics(db, default_dimensions={"pipeline": settings.name})
        metrics.record("Dataflow/Quality", "Score", 0.5, "None", timestamp=dt.datetime.now(dt.UTC))
        evaluate_all(settings, db, include_partial_period=True)
    finally:
        db.dispose()
    with LiveServer(create_app(settings)) as server:
        yield server.url


def test_empty_project_says_what_to_do_and_shows_active_alarms(page: Any, alarming: str) -> None:
    _open(page, alarming)
    assert page.locator("#runs-body").inner_text().strip() == (
        "No runs yet: run dataflow run in the project."
    )
    assert page.locator("#runs-body code").inner_text() == "dataflow run"
    assert "No clean tables yet" in page.locator("#freshness-body").inner_text()
    assert "No DQ evaluations yet" in page.locator("#dq-trend").inner_text()
    assert page.locator("#dq-trend-chart").get_attribute("data-points") == "0"
    alarm = page.locator("#alarms-body tr[data-alarm='dataflow-dq-score']")
    assert "ALARM" in alarm.inner_text()
    assert "was less than the threshold (1.0)" in alarm.inner_text()
    assert page.locator("#alarms-body tr[data-alarm]").count() == 1
    assert page.locator("[data-kpi='alarms in ALARM'] .value").inner_text() == "1"
    expect_no_errors(page)
