"""The staged scan computes exactly what the one full statement (window counts and all) computes.

The evaluator reads value frequencies from a window count only for keys with duplicates, and
counts the rows passed only when some row-level rule failed a row; everywhere else it takes a
shortcut. Each case here runs both and compares every aggregate of the plan, bit for bit.
"""

from __future__ import annotations

import math
from typing import Any

import duckdb
import pytest

from dataflow.quality.dqdl import parse_ruleset
from dataflow.quality.evaluate import Evaluator
from dataflow.quality.predicates import NOW
from dataflow.quality.special import first_row

FREQUENCIES = """Rules = [
    IsUnique "a", Uniqueness "a" > 0.1, IsPrimaryKey "a", Entropy "a" > 0,
    UniqueValueRatio "a" > 0.1, IsUnique "a" where "b > 1", Uniqueness "a" "b" > 0.1,
    IsPrimaryKey "a" "b", Entropy "b" > 0, UniqueValueRatio "b" > 0.1,
    Uniqueness "b" > 0.1 where "a is not null", IsComplete "b", ColumnValues "b" between 0 and 9
]
"""

DATASETS = {
    "unique": "SELECT range AS a, range % 5 AS b FROM range(50)",
    "duplicates": "SELECT range % 30 AS a, range % 5 AS b FROM range(50)",
    "nulls_in_keys": (
        "SELECT CASE WHEN range % 4 = 0 THEN NULL ELSE range END AS a, "
        "CASE WHEN range % 3 = 0 THEN NULL ELSE range % 5 END AS b FROM range(40)"
    ),
    "null_pairs_repeat": "SELECT * FROM (VALUES (1, NULL), (1, NULL), (NULL, 2), (3, 4)) t(a, b)",
    "doubles": "SELECT * FROM (VALUES (0.0::DOUBLE, 1), (-0.0::DOUBLE, 2), (1.5, 3)) t(a, b)",
    "all_null_key": "SELECT NULL::INTEGER AS a, range AS b FROM range(5)",
}


def same(x: Any, y: Any) -> bool:
    """Equal values of one type; floats summed in parallel (Entropy) may differ in the last bits
    between any two runs of one statement, so they compare to 1e-12 (the cases use 1e-9)."""
    if type(x) is not type(y):
        return False
    if isinstance(x, float) and isinstance(y, float):
        return (math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=1e-12)
    return bool(x == y)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_shortcuts_equal_the_full_statement(name: str) -> None:
    con = duckdb.connect()
    con.execute(f'CREATE TABLE "primary" AS {DATASETS[name]}')
    evaluator = Evaluator(parse_ruleset(FREQUENCIES), con, now=NOW)
    result = evaluator.run()
    plan = evaluator._plan
    row = first_row(con.execute(plan.query("primary")).fetchall())
    assert row is not None
    full = dict(zip(plan.aggregates.values(), row, strict=True))
    got = evaluator._values
    assert set(got) == set(full)
    differ = {a: (got[a], full[a]) for a in full if not same(got[a], full[a])}
    assert differ == {}
    predicates = " AND ".join(
        f"({r})" for r in (evaluator._row_sql(node) for node in evaluator.ruleset.rules) if r
    )
    windows = ", ".join(f"{sql} AS {alias}" for sql, alias in plan.windows.items())
    counted = first_row(
        con.execute(
            f'WITH __dq_base AS (SELECT *, {windows} FROM "primary") '
            f"SELECT count(*) FILTER (WHERE {predicates}) FROM __dq_base"
        ).fetchall()
    )
    assert counted is not None
    assert result.rows_passed == counted[0]


def test_empty_dataset() -> None:
    con = duckdb.connect()
    con.execute('CREATE TABLE "primary" (a INTEGER, b INTEGER)')
    ruleset = parse_ruleset('Rules = [ IsUnique "a", Uniqueness "a" "b" > 0.5, IsComplete "b" ]')
    evaluator = Evaluator(ruleset, con, now=NOW)
    result = evaluator.run()
    plan = evaluator._plan
    row = first_row(con.execute(plan.query("primary")).fetchall())
    assert row is not None
    assert dict(zip(plan.aggregates.values(), row, strict=True)) == evaluator._values
    assert (result.rows, result.rows_passed, len(result.queries)) == (0, 0, 1)
