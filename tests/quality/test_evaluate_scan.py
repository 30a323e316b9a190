"""The one-scan promise, row-level outcomes and the recorded history."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from dataflow.metadata import open_metadata
from dataflow.quality.dqdl import parse_ruleset
from dataflow.quality.evaluate import Evaluator
from dataflow.quality.history import HistoryStore
from dataflow.quality.predicates import NOW

SIMPLE = """Rules = [
    RowCount > 0, ColumnCount = 3, Completeness "v" > 0.5, IsComplete "id", Mean "v" > 0,
    Sum "v" > 0, StandardDeviation "v" >= 0, Entropy "id" > 0, Uniqueness "id" > 0.1,
    UniqueValueRatio "id" > 0.1, DistinctValuesCount "id" > 1, IsUnique "id", IsPrimaryKey "id",
    ColumnLength "s" <= 5, ColumnValues "v" between 0 and 100, ColumnValues "s" in ["a", "b"],
    ColumnValues "s" matches "[a-z]" with threshold > 0.5, ColumnCorrelation "id" "v" > -2,
    ColumnExists "id", ColumnDataType "s" = "BOOLEAN" with threshold >= 0,
    ColumnNamesMatchPattern "[a-z]+", DataFreshness "id" <= 1000000 hours,
    Mean "v" > 1 where "id > 2", RowCount > 1 where "s = 'a'"
]
Analyzers = [ AllStatistics "v", Completeness "s" ]
"""


def dqe_connection(rows: int = 100) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(
        'CREATE TABLE "primary" AS SELECT range AS id, (range % 7)::DOUBLE AS v, '
        "CASE WHEN range % 3 = 0 THEN 'a' ELSE 'b' END AS s FROM range(?)",
        [rows],
    )
    return con


def scans(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    """How many times the statement's plan reads a table or view."""
    plan = con.execute("EXPLAIN " + sql).fetchall()
    operators = re.findall(r"─ ([A-Za-z_ ]+?) ─", "\n".join(str(row[1]) for row in plan))
    return operators.count("Seq Scan")


def test_simple_aggregates_are_one_query_over_the_table() -> None:
    con = dqe_connection()
    evaluator = Evaluator(parse_ruleset(SIMPLE), con, now=NOW)
    result = evaluator.run()
    assert [r.result for r in result.rule_results].count("ERROR") == 0, result.to_glue()
    # The single statement reads the table once: one scan of "primary" in its plan. The key
    # "id" is unique, so its frequencies are known without a window count; "v" (AllStatistics:
    # Uniqueness, Entropy) has duplicates: its frequencies take a second query (which also
    # counts the rows passed: e.g. ColumnValues "s" in ["a", "b"] passes no row).
    assert len(result.queries) == 2, result.queries
    assert scans(con, result.queries[0]) == 1
    assert "OVER" not in result.queries[0]
    assert result.queries[1].count("OVER (PARTITION BY") == 1
    assert 'OVER (PARTITION BY "v"' in result.queries[1]
    assert result.rows_passed == 0
    assert len(result.queries) == 2


def test_unique_keys_and_passing_rows_need_no_second_query() -> None:
    con = dqe_connection()
    ruleset = parse_ruleset(
        'Rules = [ IsUnique "id", Uniqueness "id" > 0.5, IsPrimaryKey "id" "s", Entropy "id" > 1,'
        ' UniqueValueRatio "id" = 1.0, IsComplete "s", ColumnValues "v" between -1 and 7 ]'
    )
    result = Evaluator(ruleset, con, now=NOW).run()
    assert [r.result for r in result.rule_results] == ["PASS"] * 7, result.to_glue()
    assert len(result.queries) == 1, result.queries
    assert "OVER" not in result.queries[0]
    assert scans(con, result.queries[0]) == 1
    # Every row-level metric is 1.0: every row passes, known without counting them.
    assert (result.rows_passed, result.rows_failed) == (100, 0)
    assert len(result.queries) == 1


def test_rows_passed_is_counted_only_when_read() -> None:
    con = dqe_connection()
    ruleset = parse_ruleset('Rules = [ IsUnique "id", ColumnValues "v" > 0, IsComplete "s" ]')
    result = Evaluator(ruleset, con, now=NOW).run()
    assert len(result.queries) == 1
    # v = id % 7 over 100 rows: v > 0 fails 15 rows.
    assert result.rows_passed == 85
    assert result.rows_failed == 15
    assert len(result.queries) == 2
    assert "OVER" not in result.queries[1]  # "id" is unique: its predicate needs no window
    assert result.rows_passed == 85
    assert len(result.queries) == 2  # counted once
    # "v" has duplicates: its window count is a second query, which counts the rows passed too.
    duplicates = parse_ruleset('Rules = [ IsUnique "v", ColumnValues "v" > 0 ]')
    result = Evaluator(duplicates, con, now=NOW).run()
    assert len(result.queries) == 2
    assert result.known_rows_passed == 0


def test_row_level_outcomes_list_rule_texts() -> None:
    con = duckdb.connect()
    con.execute(
        """CREATE TABLE "primary" AS SELECT * FROM (VALUES ('a', 'f'), ('b', 'd'), ('a', NULL),
        ('a', 'f'), ('b', NULL), ('a', 'f')) t(att1, att2)"""
    )
    ruleset = parse_ruleset(
        """Rules = [ IsComplete "att2" where "att1 = 'a'", RowCount = 6,
        (IsComplete "att1") and (ColumnValues "att2" in ["f", "d"]) ]"""
    )
    evaluator = Evaluator(ruleset, con, now=NOW)
    evaluator.run()
    rows = con.execute(evaluator.row_level_sql()).fetchall()
    where_rule = 'IsComplete "att2" where "att1 = \'a\'"'
    composite = '(IsComplete "att1") AND (ColumnValues "att2" in ["f", "d"])'
    # The doc table: P, P, F, P, P, P (filtered rows pass by default).
    assert [where_rule in r[3] for r in rows] == [False, False, True, False, False, False]
    assert [where_rule in r[2] for r in rows] == [True, True, False, True, True, True]
    assert all(r[4] == ["RowCount = 6"] for r in rows)
    assert [composite in r[3] for r in rows] == [False, False, True, False, True, False]
    assert [r[5] for r in rows] == ["Passed", "Passed", "Failed", "Passed", "Failed", "Passed"]


def test_history_records_every_evaluation_and_feeds_last(tmp_path: Path) -> None:
    db = open_metadata(f"sqlite:///{tmp_path}/md.db")
    store = HistoryStore(db)
    ruleset = parse_ruleset("Rules = [ RowCount >= last() ]")
    try:
        for size in (3, 5, 4):
            con = dqe_connection(size)
            result = Evaluator(ruleset, con, history=store.series("t", "rs"), now=NOW).run(
                dataset="t", ruleset_name="rs"
            )
            result.run_id = f"run-{size}"
            store.record(result)
        assert store.metric_values("t", "rs", "Dataset.*.RowCount", 5) == [4.0, 5.0, 3.0]
        assert [e.rule_results[0].result for e in store.evaluations(dataset="t")] == [
            "FAIL",
            "PASS",
            "PASS",
        ]
        assert store.evaluations(run_id="run-5")[0].rows == 5
        assert store.evaluations(dataset="other") == []
    finally:
        db.dispose()
