"""Dashboards as code: the YAML schema, where dashboards come from, and parameter binding."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from dataflow.config import load_settings
from dataflow.dashboard import params as P
from dataflow.dashboard.spec import (
    Dashboard,
    Parameter,
    dashboard_files,
    load_dashboard,
    parse_dashboard,
)
from dataflow.errors import ConfigError

TODAY = dt.date(2024, 5, 10)

GOOD = """
title: Prices
description: Closing prices.
parameters:
  - {name: symbol, control: dropdown, options: [AAPL, MSFT]}
  - {name: symbols, control: multi-select, options: [AAPL, MSFT, NVDA], default: [AAPL]}
  - {name: period, control: date-range, default: ["-30d", "today"]}
  - {name: note, control: text}
  - {name: n, control: dropdown, type: integer, options: [5, 10], default: 10}
sheets:
  - name: main
    title: Main
    visuals:
      - name: close
        type: line
        sql: SELECT ts AS day, close FROM market.time_series WHERE symbol = $symbol
        x: day
        y: close
      - name: candles
        type: candlestick
        sql: SELECT * FROM market.time_series WHERE ts >= $period_from
        x: ts
        open: open
        high: high
        low: low
        close: close
        volume: volume
        lines: [ma20]
      - {name: share, type: pie, sql: "SELECT 'a' AS k, 1 AS v", label: k, value: v}
      - {name: grid, type: heatmap, sql: "SELECT 1 AS a, 2 AS b, 3 AS c", x: a, y: b, value: c}
      - {name: dots, type: scatter, sql: "SELECT 1 AS a, 2 AS b", x: a, y: b}
      - {name: bars, type: bar, sql: "SELECT 1 AS a, 2 AS b", x: a, y: [b], stack: true}
      - {name: areas, type: area, sql: "SELECT 1 AS a, 2 AS b", x: a, y: b}
      - {name: rows, type: table, sql: "SELECT 1 AS a", columns: [a]}
      - {name: last, type: kpi, sql: "SELECT 1 AS a", value: a, format: number}
"""


def board() -> Dashboard:
    return parse_dashboard(GOOD, name="prices")


def test_a_good_dashboard_parses_with_every_visual_type() -> None:
    parsed = board()
    assert [v.type for v in parsed.visuals()] == [  # type: ignore[attr-defined]
        "line", "candlestick", "pie", "heatmap", "scatter", "bar", "area", "table", "kpi",
    ]  # fmt: skip
    assert parsed.visual("candles").fields()["lines[0]"] == "ma20"
    assert parsed.visuals()[0].dialect == "duckdb"
    assert parsed.parameter("period").bindings() == ["period_from", "period_to"]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("y: close", "y: close\n        colour: red"),
            "sheets.main.visuals.close.colour: unknown key",
        ),
        (("        x: day\n", ""), "sheets.main.visuals.close.x: required"),
        (("type: line", "type: donut"), "sheets.main.visuals.close: unknown visual type"),
        (("name: candles", "name: close"), "visual name 'close' is used twice"),
        (("control: text", "control: slider"), "parameters.note.control"),
        (
            ("options: [5, 10]", "options: [5, 10], options_sql: SELECT 1"),
            "parameters.n: give either options",
        ),
        (("title: Prices", "title: [Prices"), "not valid YAML (line 3)"),
        (("sheets:", "pages:\nsheets:"), "pages: unknown key"),
    ],
)
def test_schema_errors_name_the_key_path(change: tuple[str, str], expected: str) -> None:
    text = GOOD.replace(*change)
    with pytest.raises(ConfigError, match=None) as caught:
        parse_dashboard(text, name="prices", source="dashboards/prices.yaml")
    message = str(caught.value)
    assert message.startswith("dashboards/prices.yaml: ")
    assert expected in message
    assert "\n" not in message


def test_the_name_is_the_file_stem() -> None:
    with pytest.raises(ConfigError, match="differs from the file name"):
        parse_dashboard("name: other\n" + GOOD, name="prices")


def test_a_project_file_replaces_the_builtin_one(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, env={})
    assert list(dashboard_files(settings)) == ["market"]
    assert load_dashboard(settings, "market").title == "Market"
    (tmp_path / "dashboards").mkdir()
    (tmp_path / "dashboards" / "market.yaml").write_text(GOOD.replace("Prices", "My market"))
    (tmp_path / "dashboards" / "prices.yaml").write_text(GOOD)
    assert list(dashboard_files(settings)) == ["market", "prices"]
    assert load_dashboard(settings, "market").title == "My market"
    with pytest.raises(ConfigError, match=r"no dashboard 'nope' \(known: market, prices\)"):
        load_dashboard(settings, "nope")


def test_defaults_resolve_with_relative_dates() -> None:
    values = P.resolve(board(), None, today=TODAY)
    assert values == {
        "symbol": "AAPL",
        "symbols": ["AAPL"],
        "period": (dt.date(2024, 4, 10), TODAY),
        "note": "",
        "n": 10,
    }
    bound = P.bindings(board(), values)
    assert bound["period_from"] == dt.date(2024, 4, 10)
    assert bound["period_to"] == TODAY
    assert "period" not in bound


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (
            {"symbl": "AAPL"},
            "has no parameter 'symbl' (parameters: n, note, period, symbol, symbols)",
        ),
        ({"symbol": "TSLA"}, "parameter symbol: 'TSLA' is not one of the options (AAPL, MSFT)"),
        ({"symbol": ["AAPL"]}, "parameter symbol: expected one value"),
        ({"symbols": ["AAPL", "X"]}, "parameter symbols: 'X' is not one of the options"),
        ({"n": "ten"}, "parameter n: expected a integer"),
        ({"n": True}, "parameter n: expected a integer"),
        ({"period": ["2024-05-01"]}, "parameter period: a date range is [from, to]"),
        ({"period": ["2024-05-09", "2024-05-01"]}, "the range starts (2024-05-09) after it ends"),
        ({"period": ["yesterday", "today"]}, "parameter period: expected a date"),
        ({"note": "x" * 1001}, "parameter note: at most 1000 characters"),
    ],
)
def test_bad_values_fail_in_one_line(given: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        P.resolve(board(), given, today=TODAY)
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


def test_values_arrive_as_strings_from_the_command_line() -> None:
    values = P.resolve(
        board(),
        {"n": "5", "symbols": "AAPL,NVDA", "period": "2024-01-01..-1m"},
        today=TODAY,
    )
    assert values["n"] == 5
    assert values["symbols"] == ["AAPL", "NVDA"]
    assert values["period"] == (dt.date(2024, 1, 1), dt.date(2024, 4, 10))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("today", TODAY),
        ("-7d", dt.date(2024, 5, 3)),
        ("-2w", dt.date(2024, 4, 26)),
        ("-3m", dt.date(2024, 2, 10)),
        ("-1y", dt.date(2023, 5, 10)),
        ("+1d", dt.date(2024, 5, 11)),
        ("2023-12-31", dt.date(2023, 12, 31)),
    ],
)
def test_relative_dates(text: str, expected: dt.date) -> None:
    assert P.relative_date(text, today=TODAY) == expected


def test_only_declared_parameters_may_appear_in_sql() -> None:
    bound = {"symbol": "AAPL", "period_from": TODAY}
    sql = "SELECT 1 FROM t WHERE a = $symbol AND b >= $period_from AND c = $symbol"
    assert P.used_bindings(sql, "duckdb", bound) == {"symbol": "AAPL", "period_from": TODAY}
    assert P.used_bindings("SELECT 1", "duckdb", bound) is None
    with pytest.raises(ConfigError, match=r"\$other is not a parameter .*known: \$period_from"):
        P.used_bindings("SELECT $other", "duckdb", bound)
    with pytest.raises(ConfigError, match="use named parameters"):
        P.used_bindings("SELECT ?", "duckdb", bound)


def test_athena_sql_keeps_its_named_parameters() -> None:
    sql = "SELECT date_add('day', -1, current_date) AS d WHERE 'x' = $symbol"
    assert P.placeholders(sql, "athena") == ["symbol"]


def test_date_range_is_always_typed_date() -> None:
    param = Parameter(name="p", control="date-range", type="string")
    assert param.type == "date"
    with pytest.raises(ValueError, match="takes no options"):
        Parameter(name="p", control="text", options=["a"])
