"""The Data quality page in a real browser: outcomes, a failing rule with its message,
quarantine counts, history charts and rulesets — on a project whose own ruleset fails, and on
``web_settings`` where every rule passes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from dataflow.catalog.iceberg import load_table, open_catalog
from dataflow.config import Settings
from dataflow.dashboard.live import LiveServer
from dataflow.metadata import open_metadata
from dataflow.metadata.schema import dq_rule_results
from dataflow.pipeline import RunResult
from tests.dashboard.conftest import expect_no_errors
from tests.dashboard.test_quality_api import FAILING_RULESET, make_failing_project


@pytest.fixture(scope="module")
def failing(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, RunResult]:
    return make_failing_project(tmp_path_factory.mktemp("dq-page") / "project")


@pytest.fixture(scope="module")
def failing_url(failing: tuple[Settings, RunResult]) -> Iterator[str]:
    from dataflow.dashboard import create_app

    with LiveServer(create_app(failing[0])) as server:
        yield server.url


def _open(page: Any, url: str) -> None:
    page.goto(url + "/quality")
    page.wait_for_selector("body[data-loaded='quality']")


def test_failing_rule_quarantine_history_and_rulesets(
    page: Any, failing_url: str, failing: tuple[Settings, RunResult]
) -> None:
    settings, run = failing
    db = open_metadata(settings.metadata_url)
    try:
        with db.read() as conn:
            message = conn.execute(
                sa.select(dq_rule_results.c.message).where(dq_rule_results.c.result == "FAIL")
            ).scalar_one()
    finally:
        db.dispose()
    quarantine = load_table(open_catalog(settings), "market", "time_series__quarantine")
    assert quarantine is not None
    quarantined = quarantine.scan().to_arrow().num_rows

    _open(page, failing_url)

    outcome = page.locator("#outcomes-body tr[data-table='time_series']")
    assert outcome.get_attribute("data-result") == "FAIL"
    assert "66.7%" in outcome.inner_text()
    assert "quarantine" in outcome.inner_text()

    rule = page.locator("#failing-body tr[data-rule='Rule_1']")
    assert 'ColumnValues "symbol" not in ["MSFT"]' in rule.inner_text()
    assert message in rule.inner_text()
    assert page.locator("#failing-body tr[data-rule]").count() == 1

    counts = page.locator("#quarantine-body tr[data-table='time_series']")
    assert counts.get_attribute("data-rows") == str(quarantined)
    per_run = counts.locator(f"[data-run='{run.run.run_id}']")
    assert per_run.inner_text().endswith(f"{quarantined:,} rows")

    score = page.locator("#score-chart")
    assert (score.get_attribute("data-points"), score.get_attribute("data-table")) == (
        "1",
        "market.time_series",
    )
    metric = page.locator("#metric-chart")
    assert metric.get_attribute("data-metric") == "Dataset.*.RowCount"
    assert metric.get_attribute("data-points") == "1"
    page.select_option("#history-metric", "Column.symbol.ColumnValues.Compliance")
    page.wait_for_selector("#metric-chart[data-metric='Column.symbol.ColumnValues.Compliance']")
    assert metric.get_attribute("data-points") == "1"
    assert "Column.symbol.ColumnValues.Compliance" in page.locator("#metric-title").inner_text()

    own = page.locator("#rulesets-body tr[data-table='time_series']")
    assert (own.get_attribute("data-source"), own.get_attribute("data-policy")) == (
        "project",
        "quarantine",
    )
    own.locator("summary").click()
    assert own.locator("pre.dqdl").inner_text() == FAILING_RULESET
    builtin = page.locator("#rulesets-body tr[data-table='quotes']")
    assert (builtin.get_attribute("data-source"), builtin.get_attribute("data-policy")) == (
        "built-in",
        "warn",
    )
    expect_no_errors(page)


def test_every_rule_passing_and_no_quarantine(page: Any, live_server: str) -> None:
    _open(page, live_server)
    results = page.locator("#outcomes-body tr[data-table]")
    assert results.count() == 11
    assert set(results.evaluate_all("rows => rows.map(r => r.dataset.result)")) == {"PASS"}
    assert "Every rule passed" in page.locator("#failing-body").inner_text()
    assert "No quarantined rows" in page.locator("#quarantine-body").inner_text()
    assert page.locator("#score-chart").get_attribute("data-points") == "1"
    expect_no_errors(page)
