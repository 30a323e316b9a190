"""Running dashboards on real pipeline data: binding, caching per snapshot, parallel visuals."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from dataflow.catalog.iceberg import load_table, open_catalog
from dataflow.config import Settings, load_settings
from dataflow.dashboard.spec import load_dashboard, parse_dashboard
from dataflow.dashboard.status import table_statuses
from dataflow.dashboard.visuals import DashboardRunner
from dataflow.errors import ConfigError
from dataflow.metadata import open_metadata
from dataflow.pipeline import RunOptions, run_pipeline
from dataflow.quality.history import HistoryStore
from dataflow.quality.outcomes import EvaluationResult, RuleResult
from dataflow.query import QuerySession

PROBE = """
title: Probe
parameters:
  - {name: symbol, control: text, default: AAPL}
  - {name: symbols, control: multi-select, options: [AAPL, MSFT, EUR/USD], default: [AAPL, MSFT]}
  - {name: period, control: date-range, default: ["-3650d", "today"]}
sheets:
  - name: main
    visuals:
      - name: by_symbol
        type: kpi
        value: n
        sql: SELECT count(*) AS n FROM market.time_series WHERE symbol = $symbol
      - name: by_list
        type: kpi
        value: n
        sql: SELECT count(*) AS n FROM market.time_series WHERE symbol = ANY($symbols)
      - name: by_contains
        type: kpi
        value: n
        sql: SELECT count(*) AS n FROM market.time_series WHERE list_contains($symbols, symbol)
      - name: in_period
        type: bar
        x: symbol
        y: n
        sql: |
          SELECT symbol, count(*) AS n FROM market.time_series
          WHERE ts >= $period_from AND ts < $period_to + INTERVAL 1 DAY GROUP BY 1 ORDER BY 1
      - name: athena
        type: table
        dialect: athena
        sql: SELECT symbol, count(*) AS n FROM market.time_series WHERE symbol = $symbol GROUP BY 1
      - name: broken
        type: table
        sql: SELECT * FROM market.no_such_table
      - name: wrong_field
        type: line
        x: day
        y: price
        sql: SELECT 1 AS day, 2 AS close
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A small project of its own (a test here commits to its tables)."""
    settings = load_settings(tmp_path_factory.mktemp("visuals") / "project", env={})
    outcome: list[Any] = []
    # A thread of its own: the ingest stage runs asyncio.run (see tests/dashboard/conftest.py).
    options = RunOptions(endpoints=["time_series", "exchange_rate"])
    worker = threading.Thread(target=lambda: outcome.append(run_pipeline(settings, options)))
    worker.start()
    worker.join()
    assert outcome, "the pipeline run raised (see the log above)"
    assert outcome[0].status == "succeeded", outcome[0].results
    return settings


@pytest.fixture
def runner(project: Settings) -> Iterator[DashboardRunner]:
    with DashboardRunner(project) as made:
        yield made


def count(settings: Settings, sql: str, params: Any = None) -> int:
    with QuerySession(settings) as session:
        value = session.execute(sql, params=params).rows[0][0]
    assert isinstance(value, int)
    return value


def test_values_are_bound_never_pasted(runner: DashboardRunner, project: Settings) -> None:
    probe = parse_dashboard(PROBE, name="probe")
    aapl = count(project, "SELECT count(*) FROM market.time_series WHERE symbol = 'AAPL'")
    assert aapl > 0
    result = runner.run(probe, {"symbol": "AAPL"})
    assert result.visual("by_symbol").rows == [[aapl]]
    assert result.visual("athena").rows == [["AAPL", aapl]]
    # The classic injection stays one odd symbol that matches nothing.
    injected = runner.run(probe, {"symbol": "AAPL' OR '1'='1"})
    assert injected.visual("by_symbol").rows == [[0]]
    assert injected.visual("athena").rows == []
    assert injected.params["symbol"] == "AAPL' OR '1'='1"


def test_a_multi_select_binds_a_list(runner: DashboardRunner, project: Settings) -> None:
    probe = parse_dashboard(PROBE, name="probe")
    both = count(
        project, "SELECT count(*) FROM market.time_series WHERE symbol IN ('AAPL', 'EUR/USD')"
    )
    result = runner.run(probe, {"symbols": ["AAPL", "EUR/USD"]})
    assert result.visual("by_list").rows == [[both]]
    assert result.visual("by_contains").rows == [[both]]
    assert runner.run(probe, {"symbols": []}).visual("by_list").rows == [[0]]


def test_a_failing_visual_leaves_the_others_alone(runner: DashboardRunner) -> None:
    result = runner.run(parse_dashboard(PROBE, name="probe"))
    broken = result.visual("broken")
    assert broken.error is not None
    assert "TABLE_NOT_FOUND" in broken.error
    assert broken.rows == []
    wrong = result.visual("wrong_field")
    assert wrong.error == "field y: the query returns no column 'price' (columns: day, close)"
    ok = [v for v in result.visuals if v.name not in {"broken", "wrong_field"}]
    assert all(v.error is None for v in ok), [v.error for v in ok]


def test_bad_parameters_raise_before_anything_runs(runner: DashboardRunner) -> None:
    probe = parse_dashboard(PROBE, name="probe")
    with pytest.raises(ConfigError, match="has no parameter 'sym'"):
        runner.run(probe, {"sym": "AAPL"})
    with pytest.raises(ConfigError, match="'TSLA' is not one of the options"):
        runner.run(probe, {"symbols": ["TSLA"]})
    assert runner.misses == 0


def test_results_are_cached_until_a_new_commit(runner: DashboardRunner, project: Settings) -> None:
    probe = parse_dashboard(PROBE, name="probe")
    first = runner.run(probe)
    assert not any(v.cached for v in first.visuals)
    again = runner.run(probe)
    assert all(v.cached for v in again.visuals if v.error is None)
    assert again.visual("by_symbol").rows == first.visual("by_symbol").rows
    other = runner.run(probe, {"symbol": "MSFT"})
    assert not other.visual("by_symbol").cached  # other values, other entry
    snapshot = first.visual("by_symbol").snapshots["market.time_series"]

    # A new Iceberg commit: one more AAPL row.
    table = load_table(open_catalog(project), "market", "time_series")
    assert table is not None
    one = table.scan(row_filter="symbol == 'AAPL'", limit=1).to_arrow()
    table.append(one)

    after = runner.run(probe)
    visual = after.visual("by_symbol")
    assert not visual.cached
    assert visual.snapshots["market.time_series"] != snapshot
    assert visual.rows == [[first.visual("by_symbol").rows[0][0] + 1]]
    assert runner.run(probe).visual("by_symbol").cached


def test_visuals_run_in_parallel(runner: DashboardRunner) -> None:
    result = runner.run(parse_dashboard(PROBE, name="probe"))
    spans = sorted((v.started_ms, v.started_ms + v.elapsed_ms) for v in result.visuals)
    # Serial runs never overlap; a pool of workers starts the next before the first ends.
    assert any(start < spans[0][1] for start, _end in spans[1:]), spans
    assert len(runner._all_sessions) > 1  # one session per concurrent query


def test_the_market_dashboard_runs_on_default_pipeline_data(web_settings: Settings) -> None:
    market = load_dashboard(web_settings, "market")
    with DashboardRunner(web_settings) as runner:
        result = runner.run(market)
        msft = runner.run(market, {"symbol": "MSFT", "compare": ["MSFT", "QQQ"]})
    for visual in result.visuals:
        assert visual.error is None, (visual.name, visual.error)
        assert visual.rows, visual.name
        assert "market.time_series" in visual.tables or visual.name == "fx_latest"
    candles = result.visual("candles")
    assert candles.columns[:6] == ["day", "open", "high", "low", "close", "volume"]
    assert len(candles.rows) > 200
    assert isinstance(candles.rows[0][0], str)
    assert isinstance(candles.rows[0][1], float)
    assert result.visual("last_price").rows != msft.visual("last_price").rows
    series = {row[0] for row in msft.visual("performance").rows}
    assert series == {"MSFT", "QQQ"}
    rows = msft.visual("performance").rows
    start = min(row[1] for row in rows)
    assert [row[2] for row in rows if row[1] == start] == [100.0, 100.0]  # 100 at the start
    status = result.visual("candles").status[0]
    assert (status.table, status.freshness) == ("market.time_series", "fresh")
    assert status.quality in {"passed", "failed"}  # the run evaluated its ruleset


def test_status_of_tables_never_measured(web_settings: Settings) -> None:
    db = open_metadata(web_settings.metadata_url)
    try:
        found = table_statuses(web_settings, db, ["raw.quote", "market.time_series"])
    finally:
        db.dispose()
    assert found["raw.quote"].freshness == "unknown"
    assert found["raw.quote"].quality == "none"
    fresh = found["market.time_series"]
    assert fresh.lag_seconds is not None
    assert fresh.threshold_seconds == 172800.0


def test_quality_is_the_newest_evaluation(project: Settings) -> None:
    db = open_metadata(project.metadata_url)
    try:
        store = HistoryStore(db)
        (latest,) = store.evaluations(dataset="market.time_series", limit=1)
        before = table_statuses(project, db, ["market.time_series"])["market.time_series"]
        assert before.rules_passed + before.rules_failed == len(latest.rule_results) > 0
        failing = RuleResult('IsComplete "close"', "", "FAIL", "2 rows have no close")
        passing = RuleResult("RowCount > 0", "", "PASS")
        store.record(EvaluationResult("adhoc", "market.time_series", [passing, failing]))
        after = table_statuses(project, db, ["market.time_series"])["market.time_series"]
    finally:
        db.dispose()
    assert (after.quality, after.rules_passed, after.rules_failed) == ("failed", 1, 1)
    assert after.failed_rules == ['IsComplete "close": 2 rows have no close']
    assert after.score == 0.5


def test_options_come_from_sql(web_settings: Settings) -> None:
    market = load_dashboard(web_settings, "market")
    with DashboardRunner(web_settings) as runner:
        described = runner.describe(market)
    params = {p["name"]: p for p in described["parameters"]}
    symbols = [o["value"] for o in params["symbol"]["options"]]
    assert "AAPL" in symbols
    assert "EUR/USD" not in symbols
    assert params["symbol"]["value"] == "AAPL"
    assert params["pairs"]["value"] == ["EUR/USD", "GBP/USD"]
    assert params["period"]["bindings"] == ["period_from", "period_to"]
    assert "options_sql" not in params["symbol"]


def test_dashboard_reads_leave_no_query_history(project: Settings) -> None:
    import sqlalchemy as sa

    from dataflow.metadata.schema import query_executions

    def executions() -> int:
        db = open_metadata(project.metadata_url)
        try:
            with db.read() as conn:
                return int(
                    conn.execute(
                        sa.select(sa.func.count()).select_from(query_executions)
                    ).scalar_one()
                )
        finally:
            db.dispose()

    before = executions()
    with DashboardRunner(project) as runner:
        runner.clear_cache()
        assert runner.run(parse_dashboard(PROBE, name="probe"), {"symbol": "MSFT"}).visuals
    assert executions() == before
