"""Static HTML snapshots: self-contained, safe, and drawn from disk in a browser, offline."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from dataflow.config import Settings
from dataflow.dashboard.export import export_html, script_json
from dataflow.dashboard.spec import parse_dashboard
from tests.dashboard.conftest import expect_no_errors

EVIL = "</script><script>document.title='pwned'</script><b>x</b>"

GALLERY = f"""
title: Every visual type
description: "One visual of each type, and a value that tries to close the script: {EVIL}"
parameters:
  - {{name: symbol, control: dropdown, options: [AAPL, MSFT], default: MSFT}}
sheets:
  - name: charts
    visuals:
      - name: line
        type: line
        x: day
        y: close
        series: symbol
        sql: |
          SELECT symbol, ts::DATE::VARCHAR AS day, close FROM market.time_series
          WHERE interval = '1day' AND symbol IN ('AAPL', 'MSFT') ORDER BY ts
      - name: area
        type: area
        stack: true
        x: day
        y: [open, close]
        sql: |
          SELECT ts::DATE::VARCHAR AS day, open, close FROM market.time_series
          WHERE interval = '1day' AND symbol = $symbol ORDER BY ts
      - name: bar
        type: bar
        horizontal: true
        x: symbol
        y: n
        sql: SELECT symbol, count(*) AS n FROM market.time_series GROUP BY 1 ORDER BY 1
      - name: candles
        type: candlestick
        x: day
        open: open
        high: high
        low: low
        close: close
        sql: |
          SELECT ts::DATE::VARCHAR AS day, open, high, low, close FROM market.time_series
          WHERE interval = '1day' AND symbol = $symbol ORDER BY ts
      - name: scatter
        type: scatter
        x: open
        y: close
        series: symbol
        size: volume
        sql: |
          SELECT symbol, open, close, volume FROM market.time_series
          WHERE interval = '1day' AND symbol IN ('AAPL', 'MSFT')
      - name: heatmap
        type: heatmap
        x: month
        y: symbol
        value: mean
        sql: |
          SELECT strftime(ts, '%Y-%m') AS month, symbol, avg(close) AS mean
          FROM market.time_series WHERE interval = '1day' AND symbol IN ('AAPL', 'MSFT')
          GROUP BY ALL ORDER BY ALL
      - name: pie
        type: pie
        label: symbol
        value: n
        sql: SELECT symbol, count(*) AS n FROM market.time_series GROUP BY 1
      - name: evil
        type: table
        sql: SELECT '{EVIL.replace("'", "''")}' AS text, 1 AS n
      - name: kpi
        type: kpi
        value: n
        delta: d
        sql: SELECT count(*) AS n, -1.25 AS d FROM market.time_series WHERE symbol = $symbol
"""


@pytest.fixture(scope="module")
def gallery_file(web_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    board = parse_dashboard(GALLERY, name="gallery")
    out = tmp_path_factory.mktemp("export") / "gallery.html"
    out.write_text(export_html(web_settings, board), encoding="utf-8")
    return out


def snapshot_of(page: str) -> Any:
    match = re.search(
        r'<script type="application/json" id="dashboard-snapshot">(.*?)</script>', page, re.S
    )
    assert match is not None
    return json.loads(match.group(1))


def test_the_snapshot_is_self_contained_and_escaped(gallery_file: Path) -> None:
    page = gallery_file.read_text(encoding="utf-8")
    assert "default-src 'none'" in page  # no request of any kind
    assert not re.search(r"""(src|href)=["'](https?:|//|/static)""", page)
    assert EVIL not in page  # the value cannot end the script block early
    assert page.count("</script>") == 4  # the data, ECharts, app.js, dashboard.js
    snapshot = snapshot_of(page)
    assert snapshot["spec"]["name"] == "gallery"
    assert snapshot["data"]["params"] == {"symbol": "MSFT"}
    visuals = {v["name"]: v for v in snapshot["data"]["visuals"]}
    assert visuals["evil"]["rows"] == [[EVIL, 1]]
    assert all(v["error"] is None for v in visuals.values()), visuals


def test_script_json_round_trips() -> None:
    data = {"a": "</script>&<!--", "b": [1.5, None]}
    text = script_json(data)
    assert "<" not in text
    assert ">" not in text
    assert "&" not in text
    assert json.loads(text) == data


def test_the_snapshot_renders_from_disk_offline(page: Any, gallery_file: Path) -> None:
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(gallery_file.as_uri())
    page.wait_for_selector('#dashboard[data-state="ready"]', timeout=30_000)
    assert page.locator("[data-visual]").count() == 9
    assert page.locator('[data-visual][data-state="ready"]').count() == 9
    for kind in ("line", "area", "bar", "candles", "scatter", "heatmap", "pie"):
        assert page.locator(f'[data-visual="{kind}"] canvas').count() >= 1, kind
    assert page.locator('[data-visual="evil"] td').first.text_content() == EVIL
    assert page.title().startswith("Every visual type")  # the script in the data never ran
    assert page.locator('[data-visual="kpi"] .delta').text_content() == "▼ −1.25%"
    assert page.locator('select[data-param="symbol"]').is_disabled()
    assert page.locator('[data-visual="line"] [data-freshness]').count() >= 1
    assert requests == [gallery_file.as_uri()]
    expect_no_errors(page)


def test_the_market_export_renders_offline(
    page: Any, web_settings: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "market.html"
    out.write_text(export_html(web_settings, "market", {"symbol": "NVDA"}), encoding="utf-8")
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(out.as_uri())
    page.wait_for_selector('#dashboard[data-state="ready"]', timeout=30_000)
    assert page.locator('[data-visual][data-state="ready"]').count() == 8
    assert page.locator('select[data-param="symbol"]').input_value() == "NVDA"
    assert requests == [out.as_uri()]
    expect_no_errors(page)
