"""`dataflow dashboard` as a user runs it: list, validate (good and broken files), export."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from dataflow.cli.app import _register, app
from dataflow.config import load_settings
from dataflow.pipeline import RunOptions, run_pipeline

_register()

BROKEN = """
title: Broken
parameters:
  - {name: symbol, control: dropdown, options: [AAPL, MSFT]}
sheets:
  - name: main
    visuals:
      - name: closes
        type: line
        x: day
        y: price
        sql: SELECT ts AS day, close FROM market.time_series WHERE symbol = $symbol
      - name: missing
        type: table
        sql: SELECT * FROM market.no_such_table
      - name: undeclared
        type: kpi
        value: n
        sql: SELECT count(*) AS n FROM market.time_series WHERE symbol = $ticker
      - name: fine
        type: kpi
        value: n
        sql: SELECT count(*) AS n FROM market.time_series WHERE symbol = $symbol
"""


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dashboard-cli") / "project"
    settings = load_settings(root, env={})
    result = run_pipeline(settings, RunOptions(endpoints=["time_series", "exchange_rate"]))
    assert result.status == "succeeded", result.results
    return root


def test_list(project: Path) -> None:
    result = cli("dashboard", "list", "--project", str(project), "--format", "json")
    assert result.exit_code == 0, result.output
    (market,) = json.loads(result.output)
    assert (market["name"], market["origin"], market["error"]) == ("market", "built-in", None)


def test_validate_every_dashboard(project: Path) -> None:
    result = cli("dashboard", "validate", "--project", str(project))
    assert result.exit_code == 0, result.output
    assert "1 dashboard file(s) valid" in result.output


def test_validate_reports_one_line_per_problem(project: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN)
    typo = tmp_path / "typo.yaml"
    typo.write_text(BROKEN.replace("type: table", "type: tabel").replace("x: day", "xx: day"))
    result = cli("dashboard", "validate", str(broken), str(typo), "--project", str(project))
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 4, result.output
    closes, missing, undeclared, schema = lines
    assert f"{broken}: visual closes: field y: the query returns no column 'price'" in closes
    assert "fix the field mapping" in closes
    assert f"{broken}: visual missing: TABLE_NOT_FOUND" in missing
    assert f"{broken}: visual undeclared: $ticker is not a parameter" in undeclared
    assert "declare it under parameters" in undeclared
    assert schema.startswith(f"error: {typo}: ")
    assert "sheets.main.visuals.closes.x: required" in schema
    assert "sheets.main.visuals.closes.xx: unknown key" in schema
    assert "sheets.main.visuals.missing: unknown visual type" in schema


def test_validate_a_project_dashboard_by_name(project: Path) -> None:
    folder = project / "dashboards"
    folder.mkdir()
    try:
        (folder / "broken.yaml").write_text(BROKEN)
        result = cli(
            "dashboard", "validate", "broken", "--project", str(project), "--format", "json"
        )
        assert result.exit_code == 2
        report = json.loads(result.output)
        assert report["valid"] is False
        assert len(report["files"][str(folder / "broken.yaml")]) == 3
        unknown = cli("dashboard", "validate", "nope", "--project", str(project))
        assert unknown.exit_code == 2
        assert "no dashboard or file 'nope' (dashboards: broken, market)" in unknown.output
    finally:
        (folder / "broken.yaml").unlink()
        folder.rmdir()


def test_export_writes_a_self_contained_snapshot(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "market.html"
    result = cli(
        "dashboard", "export", "market", "--html", str(out), "--project", str(project),
        "--param", "symbol=MSFT", "--param", "compare=AAPL", "--param", "compare=NVDA",
        "--param", "period=-90d..today",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"wrote {out} — 8 visual(s)" in " ".join(result.output.split())
    page = out.read_text(encoding="utf-8")
    match = re.search(r'id="dashboard-snapshot">(.*?)</script>', page, re.S)
    assert match is not None
    data = json.loads(match.group(1))["data"]
    assert data["params"]["symbol"] == "MSFT"
    assert data["params"]["compare"] == ["AAPL", "NVDA"]
    assert all(v["error"] is None for v in data["visuals"]), data["visuals"]
    assert "<script src=" not in page
    assert "/static/" not in page


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--param", "symbl=MSFT"], "dashboard 'market' has no parameter 'symbl'"),
        (["--param", "symbol"], "--param 'symbol': write name=value"),
        (["--param", "period=2026-01-01"], "parameter period: a date range is [from, to]"),
    ],
)
def test_export_refuses_bad_values(
    project: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "x.html"
    result = cli(
        "dashboard", "export", "market", "--html", str(out), "--project", str(project), *args
    )
    assert result.exit_code == 2
    assert message in result.output
    assert not out.exists()


def test_the_example_of_the_docs_validates_and_exports(project: Path, tmp_path: Path) -> None:
    docs = Path(__file__).resolve().parents[1] / "docs" / "dashboards.md"
    example = re.search(r"```yaml\n(title: Prices.*?)```", docs.read_text(), re.S)
    assert example is not None
    folder = project / "dashboards"
    folder.mkdir()
    try:
        (folder / "prices.yaml").write_text(example.group(1))
        result = cli("dashboard", "validate", "prices", "--project", str(project))
        assert result.exit_code == 0, result.output
        out = tmp_path / "prices.html"
        exported = cli(
            "dashboard", "export", "prices", "--html", str(out), "--project", str(project),
            "--param", "peers=AAPL,NVDA", "--param", "min_volume=1000",
        )  # fmt: skip
        assert exported.exit_code == 0, exported.output
        assert "failed" not in exported.output
    finally:
        (folder / "prices.yaml").unlink()
        folder.rmdir()
