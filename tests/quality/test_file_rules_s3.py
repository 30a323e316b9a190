"""File rules on ``s3://`` paths, against an S3-compatible server (moto) on 127.0.0.1.

The objects: ``data/a.csv`` and ``data/c.csv`` hold the same 4 bytes, ``data/b.csv`` 4 others,
``copy/`` holds the same three files; all were just written (moto stamps LastModified now).
The S3 endpoint and credentials come from the project's ``storage.s3`` settings.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
import typer
import yaml
from typer.testing import CliRunner

from dataflow.cli import dq
from dataflow.config import Settings, load_settings
from dataflow.quality.check import check_ruleset
from dataflow.quality.dqdl import parse_ruleset
from dataflow.quality.evaluate import Evaluator
from dataflow.quality.files import FileAccess
from dataflow.storage import S3Store

pytestmark = pytest.mark.s3

A, B = b"x\n1\n", b"x\n2\n"
SECRET = "s3-secret-never-printed-9d1c"
PCT = "% of files passed the threshold"
FORMAT = ("--format", "json")


def _s3_config(url: str) -> dict[str, Any]:
    return {
        "endpoint_url": url,
        "access_key_id": "testing-key-id",
        "secret_access_key": SECRET,
        "region": "us-east-1",
    }


@pytest.fixture
def s3_settings(s3_server_url: str, tmp_path: Path) -> Settings:
    overrides = {f"storage.s3.{k}": v for k, v in _s3_config(s3_server_url).items()}
    return load_settings(tmp_path, overrides=overrides, env={})


@pytest.fixture
def s3_root(s3_settings: Settings, tmp_path: Path) -> str:
    """``s3://bucket/<unique prefix>`` holding data/ and copy/."""
    root = f"s3://bucket/fr-{tmp_path.name}"
    store = S3Store(root, s3_settings.storage.s3)
    for folder in ("data", "copy"):
        store.put_bytes(f"{folder}/a.csv", A)
        store.put_bytes(f"{folder}/b.csv", B)
        store.put_bytes(f"{folder}/c.csv", A)
    return root


def _run(rules: str, settings: Settings, tmp_path: Path) -> list[Any]:
    data = tmp_path / "rows.csv"
    data.write_text("x\n1\n")
    ruleset = tmp_path / "s3.dqdl"
    ruleset.write_text(f"Rules = [ {rules} ]")
    return check_ruleset(ruleset, data=data, settings=settings).result.rule_results


def test_file_rules_read_s3_objects(s3_settings: Settings, s3_root: str, tmp_path: Path) -> None:
    md5 = hashlib.md5(A).hexdigest()
    s3a_root = s3_root.replace("s3://", "s3a://")
    rules = ",\n".join(
        [
            f'FileSize "{s3_root}/data/" = 4 B',
            f'FileSize "{s3_root}/data" > 4 B',
            f'FileMatch "{s3_root}/data/a.csv" in ["{md5}"] with hashAlgorithm = "MD5"',
            f'FileMatch "{s3_root}/data/" "{s3_root}/copy/"',
            f'FileUniqueness "{s3_root}/data/" = 1',
            f'FileFreshness "{s3_root}/data/" > (now() - 1 hours)',
            f'FileFreshness "{s3_root}/data/" < (now() - 1 days)',
            f'FileSize "{s3a_root}/data/" = 4 B with uriRegex = "/b[.]csv$"',
            f'FileSize "{s3_root}/nothing-here/" > 1 B',
        ]
    )
    outcomes = _run(rules, s3_settings, tmp_path)

    got = [(r.result, r.message) for r in outcomes]
    assert got == [
        ("PASS", None),
        ("FAIL", f"0.00 {PCT}"),
        ("PASS", None),
        ("PASS", None),
        ("FAIL", "Value: 0.3333333333333333 does not meet the constraint requirement."),
        ("PASS", None),
        ("FAIL", f"0.00 {PCT}"),
        ("PASS", None),
        ("FAIL", f"No files found at {s3_root}/nothing-here/"),
    ]
    assert outcomes[0].metrics["Dataset.*.FileCount"] == 3.0
    assert outcomes[0].metrics["Dataset.*.MaximumFileSize"] == 4.0
    assert outcomes[4].metrics["Dataset.*.FileUniquenessRatio"] == pytest.approx(1 / 3)
    assert outcomes[7].metrics["Dataset.*.FileCount"] == 1.0


def test_file_match_compares_a_local_folder_with_s3(
    s3_settings: Settings, s3_root: str, tmp_path: Path
) -> None:
    local = tmp_path / "local"
    local.mkdir()
    for name, content in (("a.csv", A), ("b.csv", B), ("c.csv", B)):
        (local / name).write_bytes(content)

    same, differ, one = _run(
        f'FileMatch "{local}/a.csv" "{s3_root}/data/a.csv", '
        f'FileMatch "{local}" "{s3_root}/data/", '
        f'FileMatch "{s3_root}/data/b.csv" "{local}/a.csv"',
        s3_settings,
        tmp_path,
    )

    assert same.result == "PASS"
    assert (differ.result, differ.message) == (
        "FAIL",
        f"1 files differ between {local} and {s3_root}/data/: c.csv",
    )
    assert one.result == "FAIL"


def test_files_the_dataset_was_read_from_on_s3(s3_settings: Settings, s3_root: str) -> None:
    # A remote catalog table's view reads read_parquet(['s3://...']); DuckDB's httpfs is not
    # loaded here, so the view only names the object the way such a view does.
    con = duckdb.connect()
    con.execute(f"CREATE VIEW \"primary\" AS SELECT '{s3_root}/data/a.csv' AS source")
    ruleset = parse_ruleset("Rules = [ FileSize = 4 B, FileFreshness > (now() - 1 hours) ]")

    result = Evaluator(ruleset, con, s3=s3_settings.storage.s3).run()

    assert [r.result for r in result.rule_results] == ["PASS", "PASS"]
    assert result.rule_results[0].metrics["Dataset.*.FileCount"] == 1.0
    con.close()


def test_file_access_lists_s3_objects_with_their_times(s3_settings: Settings, s3_root: str) -> None:
    files = FileAccess(s3_settings.storage.s3).files(f"{s3_root}/data/")

    assert [f.path for f in files] == [f"{s3_root}/data/{n}" for n in ("a.csv", "b.csv", "c.csv")]
    assert [f.name for f in files] == ["a.csv", "b.csv", "c.csv"]
    age = dt.datetime.now(dt.UTC) - files[0].modified
    assert dt.timedelta(0) <= age < dt.timedelta(minutes=10)


def test_dq_check_cli_reads_s3_with_the_project_credentials(
    s3_server_url: str, s3_root: str, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    config = {"storage": {"s3": _s3_config(s3_server_url)}}
    (project / "dataflow.yaml").write_text(yaml.safe_dump(config))
    data = tmp_path / "rows.csv"
    data.write_text("x\n1\n")
    rules = tmp_path / "cli.dqdl"
    rules.write_text(f'Rules = [ FileSize "{s3_root}/data/" > 1 B, FileSize "s3://" > 1 B ]')
    root = typer.Typer()
    root.command("version")(lambda: None)
    dq.register(root)

    got = CliRunner().invoke(
        root,
        ["dq", "check", str(rules), "--data", str(data), "--project", str(project), *FORMAT],
    )

    assert got.exit_code == 1, got.output
    first, bad = json.loads(got.stdout)["RuleResults"]
    assert first["Result"] == "PASS"
    assert first["EvaluatedMetrics"]["Dataset.*.FileCount"] == 3.0
    assert (bad["Result"], bad["EvaluationMessage"]) == (
        "ERROR",
        "s3://: no bucket — write s3://bucket/prefix/",
    )
    assert SECRET not in got.output
