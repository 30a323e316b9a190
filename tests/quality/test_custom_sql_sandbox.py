"""User SQL in a ruleset (CustomSql, where clauses) runs under the lockdown of `dataflow query`.

Each probe once escaped the evaluation: it read /etc/passwd (and reported PASS), wrote files,
attached databases, loaded extensions or changed settings. Now each is an ERROR, nothing is
written, and the dataset itself still reads.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dataflow.quality.datasets import connect, register_file
from dataflow.quality.dqdl import parse_ruleset
from dataflow.quality.evaluate import evaluate


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "data" / "prices.csv"
    path.parent.mkdir()
    path.write_text("id,price\n1,10.5\n2,11.0\n")
    return path


def run(rule: str, data: Path) -> tuple[str, str | None]:
    con = connect()
    register_file(con, data, "primary")
    result = evaluate(parse_ruleset(f"Rules = [ {rule} ]"), con)
    outcome = result.rule_results[0]
    return outcome.result, outcome.message


def q(text: str) -> str:
    return '"' + text.replace('"', '\\"') + '"'


def test_the_dataset_still_reads_under_the_lockdown(data: Path) -> None:
    assert run(f"CustomSql {q('select count(*) from primary')} = 2", data) == ("PASS", None)
    assert run(f"CustomSql {q('select id from primary where price > 10.8')}", data)[0] == "FAIL"


@pytest.mark.parametrize(
    "statement",
    [
        "select count(*) from read_csv('/etc/passwd')",
        "select count(*) from '/etc/passwd'",
        "select count(*) from read_text('/etc/hostname')",
        "select count(*) from read_csv('{outside}/secret.csv')",
    ],
)
def test_reading_files_outside_the_dataset_is_an_error(
    statement: str, data: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "outside" / "secret.csv"
    secret.parent.mkdir()
    secret.write_text("x\n1\n")
    sql = statement.format(outside=secret.parent)
    result, message = run(f"CustomSql {q(sql)} > 0", data)
    assert result == "ERROR", message
    rows_form, _ = run(f"CustomSql {q(sql.replace('count(*)', '*'))}", data)
    assert rows_form == "ERROR"


@pytest.mark.parametrize(
    ("statement", "created"),
    [
        ("COPY (SELECT 1) TO '{tmp}/copied.csv'", "copied.csv"),
        ("COPY (SELECT * FROM read_csv('/etc/passwd')) TO '{tmp}/passwd.csv'", "passwd.csv"),
        ("ATTACH '{tmp}/attached.db' AS other", "attached.db"),
        ("INSTALL httpfs", None),
        ("LOAD httpfs", None),
        ("SET enable_external_access = true", None),
        ("SET threads = 1", None),
        ("CREATE TABLE t AS SELECT 1", None),
        ("SELECT 1; COPY (SELECT 1) TO '{tmp}/second.csv'", "second.csv"),
    ],
)
def test_statements_other_than_select_are_errors(
    statement: str, created: str | None, data: Path, tmp_path: Path
) -> None:
    sql = statement.format(tmp=tmp_path)
    result, message = run(f"CustomSql {q(sql)} > 0", data)
    assert result == "ERROR", message
    assert message
    if created is not None:
        assert not (tmp_path / created).exists()


def test_the_refusal_says_what_is_allowed(data: Path) -> None:
    assert run(f"CustomSql {q('SET threads = 1')} > 0", data) == (
        "ERROR",
        "Custom SQL must be one SELECT statement (it may only read the data)",
    )


def test_where_clauses_are_locked_down_too(data: Path) -> None:
    where = "(select count(*) from read_csv('/etc/passwd')) > 0"
    result, message = run(f"RowCount > 0 where {q(where)}", data)
    assert result == "ERROR", message


def test_the_cli_reports_the_escape_as_a_failed_check(data: Path, tmp_path: Path) -> None:
    rules = tmp_path / "escape.dqdl"
    copy = tmp_path / "stolen.csv"
    rules.write_text(
        "Rules = [\n"
        f"  CustomSql {q('select count(*) from read_csv(' + repr('/etc/passwd') + ')')} > 0,\n"
        f"  CustomSql {q(f'COPY (SELECT 1) TO {str(copy)!r}')} > 0\n"
        "]\n"
    )
    command = [sys.executable, "-m", "dataflow", "dq", "check", str(rules), "--data", str(data)]
    done = subprocess.run(
        [*command, "--format", "json"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stderr
    outcomes = [r["Result"] for r in json.loads(done.stdout)["RuleResults"]]
    assert outcomes == ["ERROR", "ERROR"]
    assert "Traceback" not in done.stderr
    assert not copy.exists()
