"""`/api/quality`: rulesets and policies, latest outcomes, failing rules, quarantine counts and
history — over a project whose own ruleset fails (quarantine policy) and over ``web_settings``,
against the metadata database and the quarantine table read directly."""

from __future__ import annotations

import threading
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml
from starlette.exceptions import StarletteDeprecationWarning

from dataflow.catalog.iceberg import load_table, open_catalog
from dataflow.config import Settings, load_settings
from dataflow.dashboard import create_app
from dataflow.dashboard.deps import get_settings
from dataflow.metadata import open_metadata
from dataflow.metadata.schema import dq_evaluations, dq_metrics, dq_rule_results
from dataflow.pipeline import RunOptions, RunResult, run_pipeline
from dataflow.quality.policy import BUILTIN_RULESETS

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

# Every rule passes on the simulator's bars but Rule_1, which fails MSFT's rows (row-level).
FAILING_RULESET = """Metadata = { "Policy": "quarantine" }
Rules = [
    IsPrimaryKey "symbol" "interval" "ts",
    ColumnValues "symbol" not in [ "MSFT" ],
    RowCount > 0
]
"""


def make_failing_project(root: Path) -> tuple[Settings, RunResult]:
    """A project whose ``quality/time_series.dqdl`` fails (quarantine policy), after one run of
    the time_series endpoint with a short history. The run happens in a thread of its own:
    Playwright's sync API may hold an event loop on this one."""
    root.mkdir(parents=True)
    config = {
        "sources": {"twelvedata": {"history_start": "2026-07-01", "intraday_history_days": 5}}
    }
    (root / "dataflow.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    (root / "quality").mkdir()
    (root / "quality" / "time_series.dqdl").write_text(FAILING_RULESET, encoding="utf-8")
    settings = load_settings(root, env={})
    outcome: list[RunResult] = []
    options = RunOptions(endpoints=["time_series"])
    worker = threading.Thread(target=lambda: outcome.append(run_pipeline(settings, options)))
    worker.start()
    worker.join()
    assert outcome, "the pipeline run raised (see the log above)"
    assert outcome[0].status == "succeeded", outcome[0].results
    return settings, outcome[0]


@pytest.fixture(scope="module")
def failing(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, RunResult]:
    return make_failing_project(tmp_path_factory.mktemp("dq") / "project")


@pytest.fixture(scope="module")
def client(failing: tuple[Settings, RunResult]) -> Iterator[TestClient]:
    with TestClient(create_app(failing[0])) as test_client:
        yield test_client


def _ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, f"{response.status_code}: {response.text}"
    return response.json()


def _rows(settings: Settings, query: Any) -> list[Any]:
    db = open_metadata(settings.metadata_url)
    try:
        with db.read() as conn:
            return list(conn.execute(query).all())
    finally:
        db.dispose()


def test_latest_outcome_names_the_failing_rule_and_its_message(
    client: TestClient, failing: tuple[Settings, RunResult]
) -> None:
    settings, run = failing
    (outcome,) = _ok(client.get("/api/quality/outcomes"))
    ((result_id, score, run_id),) = _rows(
        settings,
        sa.select(dq_evaluations.c.result_id, dq_evaluations.c.score, dq_evaluations.c.run_id),
    )
    rules = _rows(
        settings,
        sa.select(dq_rule_results.c.name, dq_rule_results.c.result, dq_rule_results.c.message)
        .where(dq_rule_results.c.result_id == result_id)
        .order_by(dq_rule_results.c.seq),
    )
    assert outcome["dataset"] == "market.time_series"
    assert (outcome["result_id"], outcome["run_id"]) == (result_id, run_id)
    assert run_id == run.run.run_id
    assert outcome["score"] == pytest.approx(score) == pytest.approx(2 / 3)
    assert (outcome["rules_passed"], outcome["rules_failed"], outcome["result"]) == (2, 1, "FAIL")
    assert [(r["name"], r["result"], r["message"]) for r in outcome["rules"]] == [
        tuple(r) for r in rules
    ]
    (failed,) = [r for r in outcome["rules"] if r["result"] == "FAIL"]
    assert failed["name"] == "Rule_1"
    assert failed["description"] == 'ColumnValues "symbol" not in ["MSFT"]'
    assert failed["message"]  # Glue's EvaluationMessage, e.g. "Value: ... does not meet ..."
    assert failed["metrics"]["Column.symbol.ColumnValues.Compliance"] < 1


def test_quarantine_counts_match_the_quarantine_table(
    client: TestClient, failing: tuple[Settings, RunResult]
) -> None:
    settings, run = failing
    (row,) = _ok(client.get("/api/quality/quarantine"))
    table = load_table(open_catalog(settings), "market", "time_series__quarantine")
    assert table is not None
    data = table.scan().to_arrow()
    assert set(data.column("symbol").to_pylist()) == {"MSFT"}
    per_run = Counter(data.column("_dq_run_id").to_pylist())
    assert row["table"] == "time_series__quarantine"
    assert row["source_table"] == "time_series"
    assert row["rows"] == data.num_rows > 0
    assert row["run_column"] == "_dq_run_id"
    assert {r["run_id"]: r["rows"] for r in row["by_run"]} == dict(per_run)
    audited = run.results["quality"].details["tables"]["time_series"]
    assert audited["quarantined"] == data.num_rows


def test_rulesets_list_project_and_builtin_with_their_policy(
    client: TestClient, failing: tuple[Settings, RunResult]
) -> None:
    rows = {r["table"]: r for r in _ok(client.get("/api/quality/rulesets"))}
    builtin = {p.stem for p in BUILTIN_RULESETS.glob("*.dqdl")}
    assert set(rows) == builtin  # the clean zone holds time_series only, which has one
    own = rows["time_series"]
    assert (own["source"], own["path"], own["policy"]) == (
        "project",
        "quality/time_series.dqdl",
        "quarantine",
    )
    assert own["policy_source"] == 'ruleset Metadata "Policy"'
    assert (own["rules"], own["text"], own["error"]) == (3, FAILING_RULESET, None)
    quotes = rows["quotes"]
    assert (quotes["source"], quotes["policy"], quotes["policy_source"]) == (
        "built-in",
        "warn",
        "default",
    )
    assert quotes["text"] == (BUILTIN_RULESETS / "quotes.dqdl").read_text(encoding="utf-8")

    # dataflow.yaml's quality.policies wins over the ruleset; default_policy over "warn".
    strict = load_settings(
        failing[0].project_dir,
        env={
            "DATAFLOW__QUALITY__POLICIES": '{"time_series": "fail"}',
            "DATAFLOW__QUALITY__DEFAULT_POLICY": "fail",
        },
    )
    client.app.dependency_overrides[get_settings] = lambda: strict  # type: ignore[attr-defined]
    try:
        rows = {r["table"]: r for r in _ok(client.get("/api/quality/rulesets"))}
    finally:
        client.app.dependency_overrides.clear()  # type: ignore[attr-defined]
    assert (rows["time_series"]["policy"], rows["time_series"]["policy_source"]) == (
        "fail",
        "quality.policies.time_series in dataflow.yaml",
    )
    assert (rows["quotes"]["policy"], rows["quotes"]["policy_source"]) == (
        "fail",
        "quality.default_policy in dataflow.yaml",
    )


def test_a_ruleset_that_does_not_parse_is_listed_with_its_error(tmp_path: Path) -> None:
    root = tmp_path / "project"
    (root / "quality").mkdir(parents=True)
    (root / "quality" / "quotes.dqdl").write_text("Rules = [ RowCount >> 0 ]", encoding="utf-8")
    with TestClient(create_app(load_settings(root, env={}))) as fresh:
        rows = {r["table"]: r for r in _ok(fresh.get("/api/quality/rulesets"))}
        assert rows["quotes"]["source"] == "project"
        assert rows["quotes"]["policy"] is None
        assert "Parsing Error" in rows["quotes"]["error"]
        assert _ok(fresh.get("/api/quality/outcomes")) == []
        assert _ok(fresh.get("/api/quality/quarantine")) == []


def test_history_and_rule_metrics_over_time(
    client: TestClient, failing: tuple[Settings, RunResult]
) -> None:
    settings, run = failing
    history = _ok(client.get("/api/quality/history?table=time_series"))
    assert history == _ok(client.get("/api/quality/history?table=market.time_series"))
    (item,) = history
    assert item["RunId"] == run.run.run_id
    assert (item["RulesPassed"], item["RulesFailed"]) == (2, 1)
    assert item["Score"] == pytest.approx(2 / 3)

    keys = _ok(client.get("/api/quality/metrics?table=time_series"))
    stored = _rows(
        settings,
        sa.select(dq_metrics.c.key, dq_metrics.c.value).where(
            dq_metrics.c.dataset == "market.time_series"
        ),
    )
    assert keys == sorted({k for k, _ in stored})
    assert "Dataset.*.RowCount" in keys
    key = "Column.symbol.ColumnValues.Compliance"
    series = _ok(
        client.get("/api/quality/metrics/series", params={"table": "time_series", "key": key})
    )
    assert [p["value"] for p in series] == [v for k, v in stored if k == key]
    assert series[0]["result_id"] == item["ResultId"]
    assert _ok(client.get("/api/quality/history?table=market.nope")) == []
    assert client.get("/api/quality/history").status_code == 422


def test_web_settings_every_default_table_passes(web_settings: Settings) -> None:
    with TestClient(create_app(web_settings)) as web:
        outcomes = _ok(web.get("/api/quality/outcomes"))
        assert {o["table"] for o in outcomes} == {p.stem for p in BUILTIN_RULESETS.glob("*.dqdl")}
        assert all(o["result"] == "PASS" and o["score"] == 1.0 for o in outcomes)
        assert all(r["result"] == "PASS" for o in outcomes for r in o["rules"])
        assert _ok(web.get("/api/quality/quarantine")) == []
