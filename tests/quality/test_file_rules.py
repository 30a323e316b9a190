"""File rules (FileFreshness, FileSize, FileMatch, FileUniqueness) on real files in tmp_path.

The files: ``data/a.csv`` and ``data/c.csv`` hold the same 4 bytes, ``data/b.csv`` 4 others;
modified 1 hour, 3 days and 10 days before NOW (2026-01-01 00:00 UTC). ``big.bin`` is 2 KiB,
``copy/`` is a copy of ``data/`` and ``partial/`` holds only ``a.csv``. Each case is a rule
(``{data}``, ``{big}``, ``{copy}``, ``{partial}`` stand for those paths) and the expected
Result, EvaluationMessage (when given) and EvaluatedMetrics (when given).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pytest
import typer
from typer.testing import CliRunner

from dataflow.cli import dq
from dataflow.quality.check import check_ruleset
from dataflow.quality.dqdl import parse_ruleset
from dataflow.quality.evaluate import Evaluator
from dataflow.quality.predicates import NOW

A, B = b"x\n1\n", b"x\n2\n"
MD5_A, MD5_B = hashlib.md5(A).hexdigest(), hashlib.md5(B).hexdigest()
SHA1_A = hashlib.sha1(A).hexdigest()
SHA256_A = hashlib.sha256(A).hexdigest()


def _touch(path: Path, content: bytes, age: dt.timedelta) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    stamp = (NOW - age).timestamp()
    os.utime(path, (stamp, stamp))


@pytest.fixture
def fr_paths(tmp_path: Path) -> dict[str, str]:
    data = tmp_path / "data"
    _touch(data / "a.csv", A, dt.timedelta(hours=1))
    _touch(data / "b.csv", B, dt.timedelta(days=3))
    _touch(data / "c.csv", A, dt.timedelta(days=10))
    _touch(tmp_path / "big.bin", b"\0" * 2048, dt.timedelta(days=1))
    shutil.copytree(data, tmp_path / "copy")
    _touch(tmp_path / "partial" / "a.csv", A, dt.timedelta(hours=1))
    return {
        "data": str(data),
        "big": str(tmp_path / "big.bin"),
        "copy": str(tmp_path / "copy"),
        "partial": str(tmp_path / "partial"),
        "missing": str(tmp_path / "nothing-here"),
    }


PCT = "% of files passed the threshold"
CASES: list[tuple[str, str, str, str | None, dict[str, float] | None]] = [
    # (id, rule, result, message, metrics)
    (
        "fr_fresh_some_old",
        'FileFreshness "{data}" > (now() - 2 days)',
        "FAIL",
        f"33.33 {PCT}",
        {"Dataset.*.FileFreshness.Compliance": 1 / 3, "Dataset.*.FileCount": 3.0},
    ),
    (
        "fr_fresh_threshold",
        'FileFreshness "{data}" > (now() - 2 days) with threshold > 0.3',
        "PASS",
        None,
        None,
    ),
    (
        "fr_fresh_all",
        'FileFreshness "{data}" >= (now() - 30 days)',
        "PASS",
        None,
        {"Dataset.*.FileFreshness.Compliance": 1.0, "Dataset.*.FileCount": 3.0},
    ),
    (
        "fr_fresh_one_file",
        'FileFreshness "{data}/a.csv" > (now() - 2 hours)',
        "PASS",
        None,
        {"Dataset.*.FileFreshness.Compliance": 1.0, "Dataset.*.FileCount": 1.0},
    ),
    (
        "fr_fresh_recent_files",
        'FileFreshness "{data}" > (now() - 2 days) with recentFiles = 1',
        "PASS",
        None,
        {"Dataset.*.FileCount": 1.0},
    ),
    (
        "fr_fresh_between_dates",
        'FileFreshness "{data}" between "2025-12-20" and "2026-01-01"',
        "PASS",
        None,
        None,
    ),
    ("fr_fresh_after_date", 'FileFreshness "{data}" > "2025-12-30"', "FAIL", f"33.33 {PCT}", None),
    (
        "fr_fresh_reversed_between",
        'FileFreshness "{data}" between now() and (now() - 2 hours)',
        "FAIL",
        f"33.33 {PCT}",
        None,
    ),
    ("fr_fresh_time_utc", 'FileFreshness "{data}/a.csv" > "17:00"', "FAIL", f"0.00 {PCT}", None),
    (
        "fr_fresh_time_zone",
        'FileFreshness "{data}/a.csv" > "5:00 PM" with timeZone = "America/New_York"',
        "PASS",
        None,
        None,
    ),
    (
        "fr_fresh_bad_zone",
        'FileFreshness "{data}" > "17:00" with timeZone = "Mars/Olympus"',
        "ERROR",
        None,
        None,
    ),
    (
        "fr_size_all_4_bytes",
        'FileSize "{data}" = 4 B',
        "PASS",
        None,
        {
            "Dataset.*.FileSize.Compliance": 1.0,
            "Dataset.*.FileCount": 3.0,
            "Dataset.*.MaximumFileSize": 4.0,
            "Dataset.*.MinimumFileSize": 4.0,
        },
    ),
    ("fr_size_kib", 'FileSize "{big}" > 1 KB', "PASS", None, {"Dataset.*.MaximumFileSize": 2048.0}),
    ("fr_size_too_small", 'FileSize "{big}" >= 3 KB', "FAIL", f"0.00 {PCT}", None),
    ("fr_size_between", 'FileSize "{big}" between 1 KB and 1 MB', "PASS", None, None),
    (
        "fr_size_uri_regex",
        'FileSize "{data}" < 1 MB with uriRegex = "a\\.csv$"',
        "PASS",
        None,
        {"Dataset.*.FileCount": 1.0},
    ),
    (
        "fr_match_md5",
        f'FileMatch "{{data}}/a.csv" in ["{MD5_A}"] with hashAlgorithm = "MD5"',
        "PASS",
        None,
        {"Dataset.*.FileCount": 1.0},
    ),
    (
        "fr_match_md5_upper_hex",
        f'FileMatch "{{data}}/a.csv" = "{MD5_A.upper()}" with hashAlgorithm = "MD5"',
        "PASS",
        None,
        None,
    ),
    (
        "fr_match_sha1",
        f'FileMatch "{{data}}/a.csv" in ["{SHA1_A}"] with hashAlgorithm = "SHA-1"',
        "PASS",
        None,
        None,
    ),
    (
        "fr_match_default_sha256",
        f'FileMatch "{{data}}/a.csv" in ["{SHA256_A}"]',
        "PASS",
        None,
        None,
    ),
    (
        "fr_match_md5_without_tag",
        f'FileMatch "{{data}}/a.csv" in ["{MD5_A}"]',
        "FAIL",
        "1 of 1 files do not match the SHA-256 checksums: a.csv",
        None,
    ),
    (
        "fr_match_folder",
        f'FileMatch "{{data}}" in ["{MD5_A}", "{MD5_B}"] with hashAlgorithm = "MD5"',
        "PASS",
        None,
        {"Dataset.*.FileCount": 3.0},
    ),
    (
        "fr_match_folder_missing_one",
        f'FileMatch "{{data}}" in ["{MD5_A}"] with hashAlgorithm = "MD5"',
        "FAIL",
        "1 of 3 files do not match the MD5 checksums: b.csv",
        None,
    ),
    (
        "fr_match_not_in",
        f'FileMatch "{{data}}/b.csv" not in ["{MD5_A}"] with hashAlgorithm = "MD5"',
        "PASS",
        None,
        None,
    ),
    ("fr_match_two_files", 'FileMatch "{data}/a.csv" "{data}/c.csv"', "PASS", None, None),
    ("fr_match_two_files_differ", 'FileMatch "{data}/a.csv" "{data}/b.csv"', "FAIL", None, None),
    (
        "fr_match_two_folders",
        'FileMatch "{data}" "{copy}"',
        "PASS",
        None,
        {"Dataset.*.FileCount": 3.0},
    ),
    ("fr_match_folder_vs_partial", 'FileMatch "{data}" "{partial}"', "FAIL", None, None),
    (
        "fr_match_bad_algorithm",
        f'FileMatch "{{data}}" in ["{MD5_A}"] with hashAlgorithm = "SHA-512"',
        "ERROR",
        None,
        None,
    ),
    (
        "fr_unique_exact",
        'FileUniqueness "{data}" = 1',
        "FAIL",
        "Value: 0.3333333333333333 does not meet the constraint requirement.",
        {"Dataset.*.FileUniquenessRatio": 1 / 3, "Dataset.*.FileCount": 3.0},
    ),
    ("fr_unique_ratio", 'FileUniqueness "{data}" > 0.3', "PASS", None, None),
    (
        "fr_unique_copies_by_name",
        'FileUniqueness "{partial}" = 1.0',
        "PASS",
        None,
        {"Dataset.*.FileUniquenessRatio": 1.0},
    ),
    (
        "fr_unique_recent",
        'FileUniqueness "{data}" = 1 with recentFiles = 2',
        "PASS",
        None,
        {"Dataset.*.FileCount": 2.0},
    ),
    (
        "fr_missing_path",
        'FileSize "{missing}" > 1 B',
        "FAIL",
        "No files found at {missing}",
        {"Dataset.*.FileCount": 0.0},
    ),
    ("fr_composite", '(FileSize "{data}" > 1 B) and (RowCount = 1)', "PASS", None, None),
    ("fr_composite_fail", '(FileUniqueness "{data}" = 1) or (RowCount = 2)', "FAIL", None, None),
]


def _evaluate(ruleset_text: str) -> Any:
    con = duckdb.connect()
    con.execute('CREATE VIEW "primary" AS SELECT 1 AS x')
    return Evaluator(parse_ruleset(ruleset_text), con, now=NOW).run()


@pytest.mark.parametrize(
    ("rule", "result", "message", "metrics"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_file_rule(
    fr_paths: dict[str, str],
    rule: str,
    result: str,
    message: str | None,
    metrics: dict[str, float] | None,
) -> None:
    text = rule
    for key, value in fr_paths.items():
        text = text.replace("{" + key + "}", value)
    outcome = _evaluate(f"Rules = [ {text} ]").rule_results[0]
    assert outcome.result == result, outcome.message
    if message is not None:
        expected = message
        for key, value in fr_paths.items():
            expected = expected.replace("{" + key + "}", value)
        assert outcome.message == expected
    if result == "PASS":
        assert outcome.message is None
    for name, number in (metrics or {}).items():
        assert outcome.metrics[name] == pytest.approx(number, abs=1e-9)


def test_without_a_path_a_table_without_files_is_an_error() -> None:
    outcome = _evaluate("Rules = [ FileSize > 1 B ]").rule_results[0]
    assert outcome.result == "ERROR"
    assert outcome.message is not None
    assert outcome.message.startswith("cannot tell which files this dataset was read from")


def _parquet_folder(folder: Path, copies: int) -> None:
    folder.mkdir(parents=True)
    con = duckdb.connect()
    for index in range(copies):
        con.execute(
            f"COPY (SELECT 1 AS id) TO '{folder / f'part-{index}.parquet'}' (FORMAT parquet)"
        )
    _touch(folder / "notes.txt", b"not read", dt.timedelta(days=400))  # not a data file


def test_check_infers_the_files_of_a_data_folder(tmp_path: Path) -> None:
    _parquet_folder(tmp_path / "table", 2)
    rules = tmp_path / "fr.dqdl"
    rules.write_text(
        "Rules = [ FileFreshness > (now() - 1 days), FileUniqueness = 1, FileSize > 10 B ]"
    )
    outcome = check_ruleset(rules, data=tmp_path / "table")
    fresh, unique, size = outcome.result.rule_results
    # Only the two Parquet files are read (notes.txt, a year old, is not): fresh and counted.
    assert (fresh.result, fresh.metrics["Dataset.*.FileCount"]) == ("PASS", 2.0)
    # Two identical parts: neither is unique.
    assert unique.result == "FAIL"
    assert unique.metrics["Dataset.*.FileUniquenessRatio"] == 0.0
    assert size.result == "PASS"


def test_check_infers_the_file_of_a_csv_and_a_table_view(tmp_path: Path) -> None:
    data = tmp_path / "prices.csv"
    _touch(data, b"id\n1\n2\n", dt.timedelta(days=5))
    rules = tmp_path / "fr.dqdl"
    digest = hashlib.sha256(b"id\n1\n2\n").hexdigest()
    rules.write_text(f'Rules = [ FileSize = 7 B, FileMatch in ["{digest}"] ]')
    result = check_ruleset(rules, data=data, now=NOW).result
    assert [r.result for r in result.rule_results] == ["PASS", "PASS"]
    # A catalog table's view lists its data files; they are the ones checked.
    _parquet_folder(tmp_path / "t", 1)
    con = duckdb.connect()
    con.execute(
        'CREATE VIEW "primary" AS SELECT * FROM '
        f"read_parquet(['{tmp_path / 't' / 'part-0.parquet'}'], hive_partitioning = false)"
    )
    outcome = Evaluator(parse_ruleset("Rules = [ FileSize > 1 B ]"), con, now=NOW).run()
    assert outcome.rule_results[0].metrics["Dataset.*.FileCount"] == 1.0


def test_dq_check_cli_reports_file_rules(fr_paths: dict[str, str], tmp_path: Path) -> None:
    root = typer.Typer()
    root.command("version")(lambda: None)
    dq.register(root)
    rules = tmp_path / "fr_cli.dqdl"
    rules.write_text('Rules = [ FileSize "' + fr_paths["data"] + '" > 5 B ]')
    got = CliRunner().invoke(
        root, ["dq", "check", str(rules), "--data", fr_paths["data"] + "/a.csv", "--format", "json"]
    )
    assert got.exit_code == 1, got.output
    rule = json.loads(got.stdout)["RuleResults"][0]
    assert rule["Result"] == "FAIL"
    assert rule["EvaluationMessage"] == f"0.00 {PCT}"
    assert rule["EvaluatedMetrics"]["Dataset.*.FileCount"] == 3.0
