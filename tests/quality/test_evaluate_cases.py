"""The evaluator against table-driven cases: dataset + ruleset -> Glue outcome per rule.

Each file in ``fixtures/eval_cases/`` holds a list of cases::

    - name: what the case shows
      columns: {id: INTEGER, name: VARCHAR}     # the primary dataset's schema
      rows: [[1, "a"], [2, null]]
      previous: [[[1, "a"]], ...]              # optional earlier datasets, evaluated and recorded
      references: {ref: {columns: ..., rows: ...}}
      ruleset: |
        Rules = [ ... ]
      expect:                                  # one entry per rule, in order
        - {result: PASS, message: null, metrics: {"Dataset.*.RowCount": 2.0}}
      analyzers: [{"Dataset.*.RowCount": 2.0}]  # optional: metrics per analyzer

``message`` and ``metrics`` are checked only when given; numbers compare to 1e-9.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from dataflow.metadata import open_metadata
from dataflow.quality.dqdl import parse_ruleset
from dataflow.quality.evaluate import Evaluator
from dataflow.quality.history import HistoryStore
from dataflow.quality.predicates import NOW
from dataflow.query.views import quote_identifier

CASES_DIR = Path(__file__).parent / "fixtures" / "eval_cases"


def _cases() -> list[Any]:
    found = []
    for path in sorted(CASES_DIR.glob("*.yaml")):
        for case in yaml.safe_load(path.read_text()):
            found.append(pytest.param(case, id=f"{path.stem}:{case['name']}"))
    return found


def make_table(con: duckdb.DuckDBPyConnection, name: str, spec: dict[str, Any]) -> None:
    columns = spec["columns"]
    ddl = ", ".join(f"{quote_identifier(c)} {t}" for c, t in columns.items())
    con.execute(f"CREATE OR REPLACE TABLE {quote_identifier(name)} ({ddl})")
    if spec["rows"]:
        marks = ", ".join("?" for _ in columns)
        con.executemany(f"INSERT INTO {quote_identifier(name)} VALUES ({marks})", spec["rows"])


def run_case(case: dict[str, Any], store: HistoryStore | None) -> Any:
    ruleset = parse_ruleset(case["ruleset"])
    history = store.series("cases.t", "case") if store else None
    result = None
    for index, rows in enumerate([*case.get("previous", []), case["rows"]]):
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        make_table(con, "primary", {"columns": case["columns"], "rows": rows})
        for alias, spec in case.get("references", {}).items():
            make_table(con, alias, spec)
        evaluator = Evaluator(
            ruleset,
            con,
            references=case.get("references", {}).keys(),
            history=history,
            now=NOW,
        )
        result = evaluator.run(dataset="cases.t", ruleset_name="case")
        result.completed_on = NOW + dt.timedelta(minutes=index)
        if store is not None:
            store.record(result)
    return result


@pytest.mark.parametrize("case", _cases())
def test_case(case: dict[str, Any], tmp_path: Path) -> None:
    db = open_metadata(f"sqlite:///{tmp_path}/md.db")
    try:
        result = run_case(case, HistoryStore(db))
    finally:
        db.dispose()
    outcomes = result.rule_results
    assert len(outcomes) == len(case["expect"]), [r.to_glue() for r in outcomes]
    for index, (got, want) in enumerate(zip(outcomes, case["expect"], strict=True)):
        where = f"Rule_{index} {got.description}: {got.to_glue()}"
        assert got.name == f"Rule_{index}"
        assert got.result == want["result"], where
        if "message" in want:
            assert got.message == want["message"], where
        if "metrics" in want:
            assert got.metrics == pytest.approx(want["metrics"], abs=1e-9), where
        if "labels" in want:
            assert got.labels == want["labels"], where
    if "score" in case:
        assert result.score == pytest.approx(case["score"])
    for got_a, want_a in zip(result.analyzer_results, case.get("analyzers", []), strict=True):
        assert got_a.metrics == pytest.approx(want_a, abs=1e-9), got_a.to_glue()
    if "rows_passed" in case:
        assert result.rows_passed == case["rows_passed"]


def test_every_rule_type_has_a_case() -> None:
    from dataflow.quality.dqdl.rules import RULE_TYPES

    text = " ".join(p.read_text() for p in CASES_DIR.glob("*.yaml"))
    missing = [name for name in RULE_TYPES if name not in text]
    assert missing == []
