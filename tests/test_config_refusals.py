"""Configuration mistakes that used to pass silently or end in a traceback are refused in one line.

Each case is checked twice: through ``load_settings`` (the library) and as a ``dataflow run`` /
``dataflow ingest`` subprocess on a project that already holds data, which must exit 2 with one
line on stderr, no traceback, and leave every stored file as it was.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dataflow.config import load_settings
from dataflow.errors import ConfigError

GOOD = "name: demo\nsources:\n  twelvedata:\n    endpoints:\n      quote: {}\n"


def deep_yaml() -> str:
    return "a:\n" + "".join(" " * (i + 1) + "b:\n" for i in range(3000))


def billion_laughs() -> str:
    """Ten lines whose aliases stand for 9**10 values."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    return "\n".join([*lines, "alarms: *a9", ""])


# (id, dataflow.yaml bytes, a regex the one-line message must match)
CASES: list[tuple[str, bytes, str]] = [
    (
        "metadata-url-into-missing-folder",
        b"metadata:\n  url: sqlite:////nonexistent-dataflow-dir/deep/x.db\n",
        r"dataflow\.yaml:2: metadata\.url: folder /nonexistent-dataflow-dir/deep does not exist "
        r"— create it first",
    ),
    (
        "empty-warehouse",
        b"warehouse: ''\n",
        r"dataflow\.yaml:1: warehouse: '' is empty — use a folder",
    ),
    (
        "null-symbol-group",
        b"sources:\n  twelvedata:\n    symbols:\n      stocks: null\n      forex: [EUR/USD]\n",
        r"dataflow\.yaml:4: sources\.twelvedata\.symbols\.stocks: is empty — give a value",
    ),
    (
        "unknown-endpoint",
        b"sources:\n  twelvedata:\n    endpoints:\n      quote: {}\n      qoute: {}\n",
        r"dataflow\.yaml:5: sources\.twelvedata\.endpoints\.qoute: unknown endpoint "
        r"— did you mean 'quote'\?",
    ),
    (
        "history-start-1800",
        b"sources:\n  twelvedata:\n    history_start: 1800-01-01\n",
        r"dataflow\.yaml:3: sources\.twelvedata\.history_start: 1800-01-01 must be between "
        r"1900-01-01 and today",
    ),
    (
        "history-start-2100",
        b"sources:\n  twelvedata:\n    endpoints:\n      quote:\n"
        b"        history_start: 2100-01-01\n",
        r"endpoints\.quote\.history_start: 2100-01-01 must be between 1900-01-01 and today",
    ),
    (
        "duplicate-key",
        b"sources:\n  twelvedata:\n    batch_size: 500\n    batch_size: 4\n",
        r"dataflow\.yaml:4: sources\.twelvedata\.batch_size: given twice \(lines 3 and 4\) "
        r"— keep one of them",
    ),
    (
        "warehouse-dev-null",
        b"warehouse: /dev/null\n",
        r"dataflow\.yaml:1: warehouse: '/dev/null' is a file, not a folder",
    ),
    (
        "warehouse-is-a-file",
        b"warehouse: dataflow.yaml\n",
        r"warehouse: 'dataflow\.yaml' is a file, not a folder",
    ),
    (
        "non-utf8-byte",
        b"name: demo\n# caf\xe9\n",
        r"dataflow\.yaml:2: byte 0xe9 at offset 16 is not UTF-8 — save the file as UTF-8",
    ),
    (
        "control-character",
        b"name: de\x01mo\n",
        r"dataflow\.yaml:1: character U\+0001 at offset 8 is not allowed in YAML",
    ),
    (
        "yaml-nested-thousands-deep",
        deep_yaml().encode(),
        r"dataflow\.yaml:\d+: nested more than 64 levels deep",
    ),
    (
        "yaml-flow-nested-thousands-deep",
        b"name: " + b"[" * 5000 + b"]" * 5000 + b"\n",
        r"dataflow\.yaml:1: nested more than 64 levels deep",
    ),
    (
        "yaml-aliases-billion-laughs",
        billion_laughs().encode(),
        r"dataflow\.yaml: its aliases expand to more than 100,000 values",
    ),
    (
        "name-1100-characters",
        b"name: " + b"n" * 1100 + b"\n",
        r"name: 'nnnn.*\(1102 characters\) is not a safe pipeline name",
    ),
    (
        "name-with-a-slash",
        b"name: ../other\n",
        r"name: '\.\./other' is not a safe pipeline name",
    ),
]


def write_config(project: Path, content: bytes) -> None:
    project.mkdir(parents=True, exist_ok=True)
    (project / "dataflow.yaml").write_bytes(content)


@pytest.mark.parametrize(("content", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_load_settings_refuses(tmp_path: Path, content: bytes, message: str) -> None:
    write_config(tmp_path, content)
    with pytest.raises(ConfigError, match=message) as info:
        load_settings(tmp_path, env={})
    assert "\n" not in str(info.value)
    assert info.value.exit_code == 2


def test_metadata_url_may_create_folders_the_project_owns(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state/meta/x.db"
    write_config(tmp_path, f"metadata:\n  url: {url}\n".encode())
    assert load_settings(tmp_path, env={}).metadata_url.split("?")[0] == url  # + the project
    elsewhere = tmp_path.parent / f"{tmp_path.name}-elsewhere" / "x.db"
    write_config(tmp_path, f"metadata:\n  url: sqlite:///{elsewhere}\n".encode())
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path, env={})
    assert not elsewhere.parent.exists()


def test_empty_sections_and_endpoints_mean_their_defaults(tmp_path: Path) -> None:
    write_config(tmp_path, b"metadata:\nsources:\n  twelvedata:\n    endpoints:\n      quote:\n")
    settings = load_settings(tmp_path, env={})
    assert settings.metadata.url is None
    assert list(settings.sources.twelvedata.endpoints) == ["quote"]
    assert settings.sources.twelvedata.endpoints["quote"].enabled


def test_env_null_for_a_symbol_group_is_refused(tmp_path: Path) -> None:
    env = {"DATAFLOW__SOURCES__TWELVEDATA__SYMBOLS__STOCKS": "null"}
    with pytest.raises(ConfigError, match=r"^env DATAFLOW__SOURCES__TWELVEDATA__SYMBOLS__STOCKS"):
        load_settings(tmp_path, env=env)


@pytest.mark.parametrize("name", ["demo", "market-data_2", "a.b", "X" * 64])
def test_safe_names_are_accepted(tmp_path: Path, name: str) -> None:
    write_config(tmp_path, f"name: {name}\n".encode())
    assert load_settings(tmp_path, env={}).name == name


@pytest.mark.parametrize("name", ["", "-x", ".hidden", "a b", "X" * 65, "a/b", "ü"])
def test_unsafe_names_are_refused(tmp_path: Path, name: str) -> None:
    write_config(tmp_path, f"name: '{name}'\n".encode())
    with pytest.raises(ConfigError, match="is not a safe pipeline name"):
        load_settings(tmp_path, env={})


# --- whole process ---------------------------------------------------------------------------


def dataflow(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATAFLOW", "TWELVEDATA"))}
    return subprocess.run(
        [sys.executable, "-m", "dataflow", *args],
        cwd=cwd,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )


def tree_digest(folder: Path) -> dict[str, str]:
    """Every stored file's content hash (the lock file's holder line may change; it is skipped)."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.name.endswith((".lock", "-wal", "-shm"))
    }


@pytest.fixture(scope="module")
def stored_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("stored")
    write_config(project, GOOD.encode())
    done = dataflow("ingest", "--project", str(project), "--no-progress", cwd=project)
    assert done.returncode == 0, done.stderr
    assert any((project / "warehouse" / "raw").rglob("*.jsonl.gz"))
    return project


@pytest.mark.parametrize(
    ("index", "content", "message"),
    [(i, c[1], c[2]) for i, c in enumerate(CASES)],
    ids=[c[0] for c in CASES],
)
def test_cli_refuses_with_one_line_and_loses_nothing(
    stored_project: Path, index: int, content: bytes, message: str
) -> None:
    before = tree_digest(stored_project / "warehouse")
    write_config(stored_project, content)
    command = "run" if index % 2 == 0 else "ingest"
    try:
        done = dataflow(
            command, "--project", str(stored_project), "--no-progress", cwd=stored_project
        )
    finally:
        write_config(stored_project, GOOD.encode())
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: "), lines
    assert re.search(message, lines[0]), lines[0]
    assert tree_digest(stored_project / "warehouse") == before
    assert not Path("/nonexistent-dataflow-dir").exists()
