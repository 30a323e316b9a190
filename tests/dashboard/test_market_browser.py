"""The Market dashboard in a real browser: every visual draws, controls redraw with new data."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.dashboard.conftest import expect_no_errors

VISUALS = 8


def wait_ready(page: Any, generation: int) -> None:
    page.wait_for_selector(
        f'#dashboard[data-state="ready"][data-generation="{generation}"]', timeout=30_000
    )


def kpi(page: Any, name: str) -> str:
    text = page.locator(f'[data-visual="{name}"] .kpi .value').text_content()
    assert isinstance(text, str)
    return text


def test_market_loads_with_every_visual_ready(page: Any, live_server: str) -> None:
    page.goto(live_server + "/")
    assert page.url.endswith("/dashboards/market")
    wait_ready(page, 1)
    cards = page.locator("[data-visual]")
    assert cards.count() == VISUALS
    assert page.locator('[data-visual][data-state="ready"]').count() == VISUALS
    for name in ("candles", "performance", "fx", "top_movers", "last_price"):
        rows = page.locator(f'[data-visual="{name}"]').get_attribute("data-rows")
        assert int(rows or 0) > 0, name
    # Charts are drawn (ECharts canvases), tables and KPIs are HTML.
    assert page.locator('[data-visual="candles"] canvas').count() >= 1
    assert page.locator('[data-visual="top_movers"] table.data tbody tr').count() > 5
    assert kpi(page, "last_price")
    # Every visual carries the freshness and DQ status of what it reads.
    badges = page.locator('[data-visual="candles"] [data-freshness]')
    assert badges.first.get_attribute("data-freshness") == "fresh"
    quality = page.locator('[data-visual="candles"] [data-quality]')
    assert quality.count() == 1
    assert quality.get_attribute("data-quality") in {"passed", "failed"}
    assert (quality.text_content() or "").startswith("DQ ")
    assert page.locator("header nav a.active").get_attribute("href") == "/dashboards/market"
    expect_no_errors(page)


def test_changing_the_symbol_redraws_with_its_data(page: Any, live_server: str) -> None:
    page.goto(live_server + "/dashboards/market")
    wait_ready(page, 1)
    price = kpi(page, "last_price")
    candles = page.locator('[data-visual="candles"]')
    rows = candles.get_attribute("data-rows")
    option = page.evaluate(
        "() => echarts.getInstanceByDom(document.querySelector("
        "'[data-visual=candles] .chart')).getOption().series[0].data[0]"
    )
    page.select_option('select[data-param="symbol"]', "NVDA")
    wait_ready(page, 2)
    assert kpi(page, "last_price") != price
    changed = page.evaluate(
        "() => echarts.getInstanceByDom(document.querySelector("
        "'[data-visual=candles] .chart')).getOption().series[0].data[0]"
    )
    assert changed != option  # other candles, not the same chart again
    assert candles.get_attribute("data-rows") == rows  # same days, other prices

    # A shorter period: fewer candles.
    end = dt.date.fromisoformat(page.input_value('input[data-param="period_to"]'))
    page.fill('input[data-param="period_from"]', (end - dt.timedelta(days=60)).isoformat())
    page.dispatch_event('input[data-param="period_from"]', "change")
    wait_ready(page, 3)
    fewer = candles.get_attribute("data-rows")
    assert fewer is not None
    assert rows is not None
    assert 0 < int(fewer) < int(rows)
    expect_no_errors(page)


def test_the_multi_select_changes_the_compared_symbols(page: Any, live_server: str) -> None:
    page.goto(live_server + "/dashboards/market")
    wait_ready(page, 1)
    page.select_option('select[data-param="compare"]', ["AMZN", "META"])
    wait_ready(page, 2)
    names = page.evaluate(
        "() => echarts.getInstanceByDom(document.querySelector("
        "'[data-visual=performance] .chart')).getOption().series.map(s => s.name)"
    )
    assert sorted(names) == ["AMZN", "META"]
    expect_no_errors(page)


def test_the_dashboard_list(page: Any, live_server: str) -> None:
    page.goto(live_server + "/dashboards")
    entry = page.locator('[data-dashboard="market"] a')
    assert entry.text_content() == "Market"
    entry.click()
    wait_ready(page, 1)
    expect_no_errors(page)
