"""Quality in the pipeline: `dataflow run` is ingest → transform → quality → publish → crawl.

Each test runs the real `dataflow run` command on a project folder against the embedded
simulator, with a project ruleset `quality/time_series.dqdl` that fails on purpose, and checks
what readers see on the table's `main` branch afterwards.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa
import yaml
from typer.testing import CliRunner

from dataflow.catalog.iceberg import load_table, open_catalog
from dataflow.cli.app import _register, app
from dataflow.config import load_settings
from dataflow.errors import ConfigError
from dataflow.metadata import open_metadata
from dataflow.metadata.schema import dq_evaluations, metric_points
from dataflow.quality import parse_ruleset
from dataflow.quality.gate import APPROVED_BRANCH, AUDIT_BRANCH
from dataflow.quality.policy import BUILTIN_RULESETS, Policy, find_ruleset, policy_for

_register()

DEFAULT_TABLES = {
    "time_series", "indicators", "quotes", "prices", "eod", "fx_rates", "stocks", "etfs",
    "forex_pairs", "cryptocurrencies", "exchanges",
}  # fmt: skip

# Every rule passes on the simulator's bars but Rule_1, which fails MSFT's rows (row-level).
FAILING = """Metadata = {{ "Policy": "{policy}" }}
Rules = [
    IsPrimaryKey "symbol" "interval" "ts",
    ColumnValues "symbol" not in [ "MSFT" ],
    RowCount > 0
]
"""


@pytest.fixture
def qp_project(tmp_path: Path) -> Path:
    """A project on the embedded simulator with a short history (a fast run)."""
    root = tmp_path / "project"
    root.mkdir()
    config = {
        "sources": {"twelvedata": {"history_start": "2026-07-01", "intraday_history_days": 5}}
    }
    (root / "dataflow.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return root


def qp_run(project: Path, *args: str) -> tuple[int, dict[str, Any]]:
    """`dataflow run --format json` on the project: (exit code, the run as JSON)."""
    result = CliRunner().invoke(
        app,
        ["run", "--project", str(project), "--no-progress", "--format", "json", *args],
        catch_exceptions=False,
    )
    return result.exit_code, json.loads(result.stdout)


def qp_ruleset(project: Path, policy: str) -> None:
    folder = project / "quality"
    folder.mkdir(exist_ok=True)
    (folder / "time_series.dqdl").write_text(FAILING.format(policy=policy), encoding="utf-8")


def qp_table(project: Path, name: str = "time_series") -> Any:
    settings = load_settings(project, env={})
    table = load_table(open_catalog(settings), settings.catalog.namespace, name)
    assert table is not None, f"no table {name}"
    return table


def qp_symbols(table: Any) -> set[str]:
    return set(table.scan(selected_fields=("symbol",)).to_arrow().column("symbol").to_pylist())


def qp_metrics(project: Path, run_id: str) -> dict[tuple[str, str], float]:
    """(metric name, table or '*') -> value of the Dataflow/Quality datapoints of a run."""
    settings = load_settings(project, env={})
    db = open_metadata(settings.metadata_url)
    try:
        with db.engine.connect() as conn:
            rows = conn.execute(
                sa.select(metric_points.c.name, metric_points.c.dimensions, metric_points.c.value)
                .where(metric_points.c.namespace == "Dataflow/Quality")
                .where(metric_points.c.run_id == run_id)
            ).fetchall()
    finally:
        db.dispose()
    found = {}
    for name, text, value in rows:
        dims = json.loads(text) if isinstance(text, str) else text
        found[(name, dims.get("table", "*"))] = value
    return found


def qp_evaluations(project: Path, run_id: str) -> list[dict[str, Any]]:
    settings = load_settings(project, env={})
    db = open_metadata(settings.metadata_url)
    try:
        with db.engine.connect() as conn:
            rows = conn.execute(
                sa.select(dq_evaluations).where(dq_evaluations.c.run_id == run_id)
            ).fetchall()
    finally:
        db.dispose()
    return [dict(r._mapping) for r in rows]


def test_builtin_rulesets_pass_on_what_dataflow_run_produces(qp_project: Path) -> None:
    code, run = qp_run(qp_project)

    assert code == 0, run["message"]
    assert [s["stage"] for s in run["stages"]] == [
        "ingest", "transform", "quality", "publish", "crawl",
    ]  # fmt: skip
    audited = run["results"]["quality"]["details"]["tables"]
    assert set(audited) == DEFAULT_TABLES
    for name, audit in audited.items():
        assert audit["ruleset"] == str(BUILTIN_RULESETS / f"{name}.dqdl")
        assert (audit["score"], audit["failed_rules"]) == (1.0, []), name
    assert set(run["results"]["publish"]["details"]["published"]) == DEFAULT_TABLES
    table = qp_table(qp_project)
    assert AUDIT_BRANCH not in table.metadata.refs
    assert APPROVED_BRANCH not in table.metadata.refs
    assert qp_symbols(table) >= {"AAPL", "MSFT", "BTC/USD"}
    metrics = qp_metrics(qp_project, run["run_id"])
    assert metrics[("Score", "*")] == 1.0
    assert metrics[("RulesFailed", "time_series")] == 0.0
    assert metrics[("RulesPassed", "time_series")] >= 10


def test_fail_policy_keeps_the_new_data_from_readers(qp_project: Path) -> None:
    code, first = qp_run(qp_project, "--endpoints", "time_series", "--symbols", "AAPL")
    assert code == 0, first["message"]
    table = qp_table(qp_project)
    published = table.current_snapshot().snapshot_id
    rows = table.scan().to_arrow().num_rows
    qp_ruleset(qp_project, "fail")

    code, second = qp_run(qp_project, "--endpoints", "time_series", "--symbols", "MSFT")

    assert code == 1
    assert second["status"] == "failed"
    statuses = {s["stage"]: s["status"] for s in second["stages"]}
    assert statuses == {
        "ingest": "succeeded", "transform": "succeeded", "quality": "partial", "publish": "failed",
    }  # fmt: skip
    assert "time_series" in second["message"]
    assert "Rule_1" in second["message"]
    table = qp_table(qp_project)
    assert table.current_snapshot().snapshot_id == published  # readers see what they saw
    assert table.scan().to_arrow().num_rows == rows
    assert qp_symbols(table) == {"AAPL"}
    # The rejected snapshot stays on the audit branch for inspection: it holds MSFT.
    audit = table.metadata.refs[AUDIT_BRANCH].snapshot_id
    assert "MSFT" in set(table.scan(snapshot_id=audit).to_arrow().column("symbol").to_pylist())
    assert APPROVED_BRANCH not in table.metadata.refs
    (evaluation,) = qp_evaluations(qp_project, second["run_id"])
    assert evaluation["snapshot_id"] == str(audit)
    assert evaluation["rules_failed"] == 1

    # Fixing the ruleset publishes the held data on the next run (the files are read again).
    (qp_project / "quality" / "time_series.dqdl").unlink()
    code, third = qp_run(qp_project, "--endpoints", "time_series", "--symbols", "MSFT")
    assert code == 0, third["message"]
    assert qp_symbols(qp_table(qp_project)) == {"AAPL", "MSFT"}


def test_warn_policy_publishes_and_records(qp_project: Path) -> None:
    qp_ruleset(qp_project, "warn")

    code, run = qp_run(qp_project, "--endpoints", "time_series", "--symbols", "AAPL,MSFT")

    assert code == 0, run["message"]
    assert run["status"] == "succeeded"
    assert qp_symbols(qp_table(qp_project)) == {"AAPL", "MSFT"}
    audit = run["results"]["quality"]["details"]["tables"]["time_series"]
    assert audit["policy"] == "warn"
    assert audit["failed_rules"] == ['Rule_1: ColumnValues "symbol" not in ["MSFT"]']
    (evaluation,) = qp_evaluations(qp_project, run["run_id"])
    assert (evaluation["rules_passed"], evaluation["rules_failed"]) == (2, 1)
    metrics = qp_metrics(qp_project, run["run_id"])
    assert metrics[("Score", "time_series")] == pytest.approx(2 / 3)
    assert metrics[("Score", "*")] == pytest.approx(2 / 3)  # the minimum over tables
    assert metrics[("RulesFailed", "time_series")] == 1.0
    assert metrics[("RowsQuarantined", "time_series")] == 0.0


def test_quarantine_policy_moves_failing_rows_out(qp_project: Path) -> None:
    qp_ruleset(qp_project, "quarantine")

    code, run = qp_run(qp_project, "--endpoints", "time_series", "--symbols", "AAPL,MSFT")

    assert code == 0, run["message"]
    table = qp_table(qp_project)
    assert qp_symbols(table) == {"AAPL"}
    quarantine = qp_table(qp_project, "time_series__quarantine").scan().to_arrow()
    assert quarantine.num_rows > 0
    assert set(quarantine.column("symbol").to_pylist()) == {"MSFT"}
    assert set(quarantine.column("_dq_run_id").to_pylist()) == {run["run_id"]}
    assert quarantine.column("_dq_rules").to_pylist()[0] == ["Rule_1"]
    assert quarantine.column("_dq_rule_texts").to_pylist()[0] == [
        'ColumnValues "symbol" not in ["MSFT"]'
    ]
    keys = pa.table({k: quarantine.column(k) for k in ("symbol", "interval", "ts")})
    assert keys.num_rows == len(set(zip(*keys.to_pydict().values(), strict=True)))
    audit = run["results"]["quality"]["details"]["tables"]["time_series"]
    assert audit["quarantined"] == quarantine.num_rows
    metrics = qp_metrics(qp_project, run["run_id"])
    assert metrics[("RowsQuarantined", "time_series")] == quarantine.num_rows


@dataclass
class _QualitySection:
    """The `quality:` section of dataflow.yaml the lead will add to Settings."""

    policies: dict[str, str] = field(default_factory=dict)
    default_policy: str | None = None


@dataclass
class _Settings:
    project_dir: Path
    quality: _QualitySection = field(default_factory=_QualitySection)


@pytest.mark.parametrize(
    ("metadata", "policies", "default", "expected"),
    [
        ("", {}, None, Policy.WARN),
        ('Metadata = { "Policy": "fail" }', {}, None, Policy.FAIL),
        ('Metadata = { "Policy": "fail" }', {}, "quarantine", Policy.FAIL),
        ("", {}, "quarantine", Policy.QUARANTINE),
        ('Metadata = { "Policy": "fail" }', {"time_series": "warn"}, None, Policy.WARN),
        ("", {"prices": "fail"}, None, Policy.WARN),
    ],
)
def test_policy_resolution_order(
    tmp_path: Path, metadata: str, policies: dict[str, str], default: str | None, expected: Policy
) -> None:
    settings: Any = _Settings(tmp_path, _QualitySection(policies, default))
    ruleset = parse_ruleset(f"{metadata}\nRules = [ RowCount > 0 ]")

    assert policy_for("time_series", ruleset, settings) is expected


def test_unknown_policy_names_where_it_was_set(tmp_path: Path) -> None:
    ruleset = parse_ruleset('Metadata = { "Policy": "block" }\nRules = [ RowCount > 0 ]')

    with pytest.raises(ConfigError, match=r'Metadata "Policy": policy \'block\''):
        policy_for("time_series", ruleset, _Settings(tmp_path))  # type: ignore[arg-type]


def test_project_ruleset_replaces_the_builtin(tmp_path: Path) -> None:
    settings: Any = _Settings(tmp_path)
    assert find_ruleset(settings, "time_series") == BUILTIN_RULESETS / "time_series.dqdl"
    assert find_ruleset(settings, "no_such_table") is None
    (tmp_path / "quality").mkdir()
    (tmp_path / "quality" / "time_series.dqdl").write_text("Rules = [ RowCount > 0 ]")

    assert find_ruleset(settings, "time_series") == tmp_path / "quality" / "time_series.dqdl"
