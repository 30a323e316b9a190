"""The Catalog page in a real browser: the tables, one table's detail, a linkable view."""

from __future__ import annotations

import json
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from dataflow.cli.catalog import register
from dataflow.config import Settings
from dataflow.query import QuerySession
from tests.dashboard.conftest import expect_no_errors


@pytest.fixture(scope="module")
def cli_tables(web_settings: Settings) -> list[dict[str, Any]]:
    """The oracle: what `dataflow catalog tables --format json` lists."""
    cli = typer.Typer()

    @cli.callback()
    def main() -> None:
        """The test's CLI: the catalog commands only."""

    register(cli)
    result = CliRunner().invoke(
        cli,
        ["catalog", "tables", "--format", "json", "--project", str(web_settings.project_dir)],
    )
    assert result.exit_code == 0, result.output
    tables: list[dict[str, Any]] = json.loads(result.stdout)
    assert tables
    return tables


def open_catalog(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("#catalog-page[data-ready='true']")


def test_lists_the_tables_of_the_catalog(
    page: Any, live_server: str, cli_tables: list[dict[str, Any]]
) -> None:
    open_catalog(page, live_server + "/catalog")

    listed = page.locator("#catalog-tables tbody a[data-table]").all_inner_texts()
    assert listed == [f"{t['database']}.{t['name']}" for t in cli_tables]
    rows = page.locator("#catalog-tables tbody tr")
    by_name = {t["name"]: t for t in cli_tables if t["database"] == "market"}
    first = rows.first.locator("td").all_inner_texts()
    expected = cli_tables[0]
    assert first[1] == expected["type"]
    assert first[2] == f"{expected['records']:,}"
    # The side tree has every database with its tables.
    for database in {t["database"] for t in cli_tables}:
        assert page.locator(f"#catalog-tree a.db[href='/catalog?database={database}']").count() == 1
    assert "time_series" in by_name
    expect_no_errors(page)


def test_a_database_link_lists_only_its_tables(
    page: Any, live_server: str, cli_tables: list[dict[str, Any]]
) -> None:
    open_catalog(page, live_server + "/catalog")
    page.click("#catalog-tree a.db[href='/catalog?database=raw']")
    page.wait_for_selector("#catalog-page[data-ready='true']")
    assert page.url.endswith("/catalog?database=raw")
    listed = page.locator("#catalog-tables tbody a[data-table]").all_inner_texts()
    assert listed == [f"raw.{t['name']}" for t in cli_tables if t["database"] == "raw"]
    expect_no_errors(page)


def test_time_series_shows_columns_snapshots_and_sample_rows(
    page: Any, live_server: str, web_settings: Settings
) -> None:
    with QuerySession(web_settings) as session:
        result = session.execute("SELECT * FROM market.time_series LIMIT 1")
    open_catalog(page, live_server + "/catalog")
    page.click("#catalog-tables a[data-table='market.time_series']")
    page.wait_for_selector("#catalog-summary")
    assert page.url.endswith("/catalog?table=market.time_series")
    assert page.locator("#catalog-summary .catalog-title").inner_text() == "market.time_series"

    names = page.locator("#catalog-columns tbody tr td:nth-child(2)").all_inner_texts()
    assert names == result.columns
    types = page.locator("#catalog-columns tbody tr td:nth-child(3)").all_inner_texts()
    assert types[names.index("ts")] == "timestamp"

    snapshot = page.wait_for_selector("#catalog-snapshots-grid tbody tr td")
    assert snapshot.inner_text().isdigit()  # a 64-bit id, every digit (sent as a string)

    sample = page.wait_for_selector("#catalog-sample-grid")
    assert sample.get_attribute("data-rows") == "20"
    assert page.locator("#catalog-sample-grid tbody tr").count() == 20
    headers = page.locator("#catalog-sample-grid thead th").all_inner_texts()
    assert headers == result.columns
    # More rows on demand.
    page.select_option("#catalog-sample-limit", "50")
    page.wait_for_selector("#catalog-sample-grid[data-rows='50']")

    page.wait_for_selector("#catalog-versions-grid")
    page.wait_for_selector("#catalog-partitions-grid")
    assert "table_type" in page.locator("#catalog-view").inner_text()
    expect_no_errors(page)


def test_a_table_view_is_a_link_and_external_tables_show_partitions(
    page: Any, live_server: str, cli_tables: list[dict[str, Any]]
) -> None:
    external = next(t for t in cli_tables if t["type"] == "external")
    name = f"{external['database']}.{external['name']}"
    open_catalog(page, f"{live_server}/catalog?table={name}")

    page.wait_for_selector("#catalog-summary")
    assert page.locator("#catalog-summary .catalog-title").inner_text() == name
    assert page.locator("#catalog-tree a.current").inner_text() == external["name"]
    partitions = page.wait_for_selector("#catalog-partitions-grid")
    assert partitions.is_visible()
    page.wait_for_selector("#catalog-sample-grid")
    assert page.locator("#catalog-snapshots").count() == 0  # external: no snapshots
    expect_no_errors(page)


def test_an_unknown_table_is_a_message(page: Any, live_server: str) -> None:
    open_catalog(page, live_server + "/catalog?table=market.no_such_table")
    error = page.wait_for_selector("#catalog-view .message.error")
    assert "no table market.no_such_table" in error.inner_text()
    expect_no_errors(page, allowed=("status of 404",))
