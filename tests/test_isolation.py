"""Projects stay apart, and a moved or copied project never writes into the original.

Every test runs the real `dataflow` command as a subprocess against the embedded simulator:
what is checked is what a user sees (exit code, one line on stderr, no traceback) and what is on
disk afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

RUN = ("run", "--no-progress", "--endpoints", "time_series")


def make_project(root: Path, name: str, **config: Any) -> Path:
    root.mkdir(parents=True)
    body = {
        "name": name,
        "sources": {"twelvedata": {"symbols": {"stocks": ["AAPL"], "forex": [], "crypto": []}}},
        **config,
    }
    (root / "dataflow.yaml").write_text(yaml.safe_dump(body))
    return root


def dataflow(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dataflow", *args, "--project", str(project)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def ok(project: Path, *args: str, **env: str) -> str:
    done = dataflow(project, *args, **env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def refused(project: Path, *args: str, **env: str) -> str:
    """The one line a refused command prints (exit 2, no traceback)."""
    done = dataflow(project, *args, **env)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    # (A new metadata database logs its creation first; the error is one line of its own.)
    [line] = [text for text in done.stderr.splitlines() if text.startswith("error:")]
    return line


def fingerprint(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder``: size and modification time (ns)."""
    return {
        str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != "dataflow.lock"
    }


def raw_files(project: Path) -> list[Path]:
    return sorted((project / "warehouse" / "raw").rglob("*.jsonl.gz"))


def row_count(project: Path) -> int:
    out = ok(project, "query", "SELECT count(*) AS n FROM time_series", "--format", "json")
    return int(json.loads(out)[0]["n"])


@pytest.fixture(scope="module")
def alpha(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project that ran once: 538 rows of AAPL in its tables. Tests copy it, never change it."""
    project = make_project(tmp_path_factory.mktemp("iso") / "alpha", "alpha")
    ok(project, *RUN)
    return project


def test_a_project_refuses_another_projects_metadata_database(alpha: Path, tmp_path: Path) -> None:
    db = alpha / "warehouse" / "dataflow.db"
    beta = make_project(tmp_path / "beta", "beta", metadata={"url": f"sqlite:///{db}"})
    before = fingerprint(alpha)
    line = refused(beta, "runs")
    assert "belongs to project 'alpha', not 'beta'" in line
    assert "metadata.adopt" in line
    assert refused(beta, *RUN) == line
    assert not (beta / "warehouse" / "raw").exists(), "nothing was fetched"
    assert fingerprint(alpha) == before


def test_a_project_refuses_another_projects_warehouse(alpha: Path, tmp_path: Path) -> None:
    shared = tmp_path / "alpha-copy"
    shutil.copytree(alpha, shared, symlinks=True)
    # beta keeps its own metadata but points its warehouse at alpha's (copied) folder.
    (tmp_path / "beta-state").mkdir()  # a metadata folder outside the project must exist
    beta = make_project(
        tmp_path / "beta",
        "beta",
        warehouse=str(shared / "warehouse"),
        metadata={"url": f"sqlite:///{tmp_path / 'beta-state' / 'dataflow.db'}"},
    )
    raw_before = raw_files(shared)
    line = refused(beta, *RUN)
    assert f"the warehouse {shared / 'warehouse'} belongs to project 'alpha', not 'beta'" in line
    assert raw_files(shared) == raw_before, "refused before any credit was spent"


def test_adopt_takes_a_database_over_after_a_rename(alpha: Path, tmp_path: Path) -> None:
    renamed = tmp_path / "renamed"
    shutil.copytree(alpha, renamed, symlinks=True)
    config = yaml.safe_load((renamed / "dataflow.yaml").read_text())
    (renamed / "dataflow.yaml").write_text(yaml.safe_dump({**config, "name": "alpha2"}))
    line = refused(renamed, "runs")
    assert "belongs to project 'alpha', not 'alpha2'" in line
    runs = ok(renamed, "runs", "--format", "json", DATAFLOW__METADATA__ADOPT="true")
    assert len(json.loads(runs)) == 1, "the history came along"
    # Adopted once: from now on the database is alpha2's without the setting.
    assert len(json.loads(ok(renamed, "runs", "--format", "json"))) == 1


def test_a_copied_project_never_writes_into_the_original(alpha: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(alpha), str(copy)], check=True)
    original = fingerprint(alpha)
    raw_before = raw_files(copy)

    line = refused(copy, *RUN)
    assert f"are in {alpha / 'warehouse'}, not in this warehouse {copy / 'warehouse'}" in line
    assert "a run would write into the original" in line
    assert "dataflow catalog relocate" in line
    assert raw_files(copy) == raw_before, "refused before ingest"
    assert refused(copy, "query", "SELECT 1 FROM time_series") == line

    assert "forgot 1 table(s)" in ok(copy, "catalog", "relocate")
    ok(copy, *RUN)
    assert row_count(copy) == 538, "rebuilt from the copied raw zone"
    assert fingerprint(alpha) == original, "not one byte of the original changed"
    tables = json.loads(ok(copy, "catalog", "tables", "--format", "json"))
    assert all(str(copy) in t["location"] for t in tables), tables


def test_a_moved_project_says_so_and_is_repaired(alpha: Path, tmp_path: Path) -> None:
    before = tmp_path / "before"
    subprocess.run(["cp", "-a", str(alpha), str(before)], check=True)
    ok(before, "catalog", "relocate")  # a project of its own at `before`, as if it ran there
    ok(before, *RUN)
    after = tmp_path / "after"
    before.rename(after)

    line = refused(after, *RUN)
    assert f"are in {before / 'warehouse'}, which is gone: this project was moved" in line
    assert refused(after, "catalog", "tables") == line
    ok(after, "catalog", "relocate")
    ok(after, *RUN)
    assert row_count(after) == 538
