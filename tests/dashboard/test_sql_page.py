"""The SQL editor page in a real browser: run, grid, CSV download, errors, cost, saved queries."""

from __future__ import annotations

import csv
import io
import uuid
from pathlib import Path
from typing import Any

import pytest

from dataflow.config import Settings
from dataflow.query import QuerySession
from tests.dashboard.conftest import expect_no_errors

DAILY_SQL = (
    "SELECT symbol, ts, close FROM market.time_series "
    "WHERE interval = '1day' AND symbol = 'AAPL' ORDER BY ts"
)
# Chromium logs every 4xx answer of fetch() as a console error: expected for a bad query.
BAD_QUERY_CONSOLE = "status of 400"


@pytest.fixture(scope="module")
def daily_count(web_settings: Settings) -> int:
    """The oracle: how many rows DAILY_SQL returns, straight from a QuerySession."""
    with QuerySession(web_settings) as session:
        count = session.execute(DAILY_SQL, dialect="athena").row_count
    assert count > 10
    return count


def open_editor(page: Any, live_server: str) -> None:
    page.goto(live_server + "/sql")
    page.wait_for_selector("#sql-page[data-ready='true']")


def run_sql(page: Any, sql: str) -> None:
    page.fill("#sql-editor", sql)
    page.click("#sql-run")


def test_run_shows_the_grid_statistics_and_history(
    page: Any, live_server: str, daily_count: int
) -> None:
    open_editor(page, live_server)
    run_sql(page, DAILY_SQL)

    page.wait_for_selector("#sql-grid")
    assert page.locator("#sql-grid tbody tr").count() == daily_count
    assert page.locator("#sql-grid thead th").all_inner_texts() == ["symbol", "ts", "close"]
    stats = page.locator("#sql-stats")
    assert "SUCCEEDED" in stats.inner_text()
    assert page.locator("#sql-stats [data-stat='rows']").inner_text() == f"{daily_count} rows"
    assert "scanned" in page.locator("#sql-stats [data-stat='bytes']").inner_text()
    # The run is the newest entry of the history panel.
    first = page.locator("#sql-history li").first
    first.wait_for()
    page.wait_for_function(
        "sql => document.querySelector('#sql-history li').title === sql", arg=DAILY_SQL
    )
    expect_no_errors(page)


def test_ctrl_enter_runs_and_the_csv_download_has_the_rows(
    page: Any, live_server: str, daily_count: int
) -> None:
    open_editor(page, live_server)
    page.fill("#sql-editor", DAILY_SQL)
    page.press("#sql-editor", "Control+Enter")
    page.wait_for_selector("#sql-grid")
    query_id = page.locator("#sql-stats span[title='query id']").inner_text()

    with page.expect_download() as info:
        page.click("#sql-csv")
    download = info.value
    assert download.suggested_filename == f"{query_id}.csv"
    rows = list(csv.reader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
    assert rows[0] == ["symbol", "ts", "close"]
    assert len(rows) - 1 == daily_count
    assert {row[0] for row in rows[1:]} == {"AAPL"}
    expect_no_errors(page)


def test_a_bad_query_shows_the_athena_error(page: Any, live_server: str) -> None:
    open_editor(page, live_server)
    run_sql(page, "SELECT FROM market.time_series")

    error = page.wait_for_selector("#sql-error .message.error")
    assert error.inner_text().startswith("SYNTAX_ERROR: line 1:")
    assert "Traceback" not in page.content()
    assert "FAILED" in page.locator("#sql-stats").inner_text()
    assert page.locator("#sql-grid").count() == 0
    assert page.locator("#sql-csv").is_hidden()
    expect_no_errors(page, allowed=(BAD_QUERY_CONSOLE,))


def test_estimate_cost_shows_the_dry_run(page: Any, live_server: str) -> None:
    open_editor(page, live_server)
    page.fill("#sql-editor", "SELECT * FROM market.time_series")
    page.click("#sql-estimate")

    cost = page.wait_for_selector("#sql-cost")
    # A small warehouse: Athena's 10 MB minimum, 10 MiB at $5 per TiB.
    assert cost.inner_text() == f"${10 * 2**20 / 2**40 * 5:.6f}"
    body = page.locator("#sql-estimate-body").inner_text()
    assert "market.time_series" in body
    assert "10 MB minimum" in body
    assert page.locator("#sql-grid").count() == 0  # nothing was run
    expect_no_errors(page)


def test_markup_in_values_is_shown_as_text(page: Any, live_server: str) -> None:
    payload = "<img src=x onerror=alert(1)>"
    open_editor(page, live_server)
    run_sql(page, f"SELECT '{payload}' AS v, NULL AS nothing")

    cell = page.wait_for_selector("#sql-grid tbody td")
    assert cell.inner_text() == payload
    assert page.locator("#sql-results img").count() == 0
    assert page.locator("#sql-grid tbody td").nth(1).inner_text() == "NULL"
    expect_no_errors(page)


def test_saved_query_round_trip(page: Any, live_server: str) -> None:
    name = f"page_test_{uuid.uuid4().hex[:8]}"
    sql = "SELECT count(*) AS n FROM market.quotes"
    open_editor(page, live_server)
    page.fill("#sql-editor", sql)
    page.fill("#sql-save-name", name)
    page.click("#sql-save")
    saved = page.wait_for_selector(f"#sql-saved button[data-name='{name}']")
    assert "Saved" in page.locator("#messages").inner_text()

    # A new visit lists it; a click loads its SQL into the editor.
    open_editor(page, live_server)
    page.fill("#sql-editor", "")
    page.click(f"#sql-saved button[data-name='{name}']")
    assert page.input_value("#sql-editor") == sql
    assert saved is not None
    expect_no_errors(page)


def test_history_click_loads_sql_and_results(page: Any, live_server: str) -> None:
    open_editor(page, live_server)
    marker = uuid.uuid4().hex[:8]
    sql = f"SELECT '{marker}' AS marker"
    run_sql(page, sql)
    page.wait_for_selector("#sql-grid")
    page.wait_for_selector(f'#sql-history li[title="{sql}"]')

    open_editor(page, live_server)
    page.click(f'#sql-history li[title="{sql}"]')
    page.wait_for_selector("#sql-grid")
    assert page.input_value("#sql-editor") == sql
    assert page.locator("#sql-grid tbody td").first.inner_text() == marker
    expect_no_errors(page)


def test_a_table_click_inserts_its_name(page: Any, live_server: str) -> None:
    open_editor(page, live_server)
    page.fill("#sql-editor", "SELECT * FROM ")
    page.locator("#sql-editor").press("End")
    page.click("#sql-tables li[data-table='market.quotes'] > button.sql-link")
    assert page.input_value("#sql-editor") == "SELECT * FROM market.quotes"
    expect_no_errors(page)


def test_stop_cancels_a_running_query(page: Any, live_server: str) -> None:
    open_editor(page, live_server)
    assert page.locator("#sql-stop").is_hidden()
    page.select_option("#sql-dialect", "duckdb")
    run_sql(
        page,
        "SELECT count(*) FROM range(1000000000) a, range(1000000) b WHERE a.range + b.range = -1",
    )
    page.wait_for_selector("#sql-stop:not([hidden])")
    page.wait_for_timeout(500)  # the query is inside DuckDB
    page.click("#sql-stop")
    page.wait_for_function(
        "() => document.querySelector('#sql-stats').innerText.includes('CANCELLED')",
        timeout=10_000,
    )
    assert "Query was cancelled by the user" in page.locator("#sql-error").inner_text()
    assert page.locator("#sql-stop").is_hidden()
    assert not page.locator("#sql-run").is_disabled()
    expect_no_errors(page, allowed=(BAD_QUERY_CONSOLE,))
