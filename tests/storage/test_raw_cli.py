"""`dataflow raw import` and `dataflow raw ls` through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from dataflow.cli.raw import register
from dataflow.storage import LocalStore, iter_envelopes


@pytest.fixture
def st_cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """Test application."""

    register(app)
    return app


@pytest.fixture
def st_project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / "dataflow.yaml").write_text("warehouse: wh\n")
    return project


def invoke(app: typer.Typer, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.stdout, result.stderr


def test_import_then_ls(
    st_cli: typer.Typer, st_project: Path, st_samples: Path, st_fake_key: str
) -> None:
    code, out, err = invoke(
        st_cli,
        "raw",
        "import",
        str(st_samples / "time_series__batch_1h_spx_aapl.json"),
        str(st_samples / "time_series__daily_ibm_2021_no_mic_code.json"),
        "--endpoint",
        "time_series",
        "--param",
        "interval=1h",
        "--param",
        f"apikey={st_fake_key}",
        "--project",
        str(st_project),
        "--format",
        "json",
    )
    assert code == 0, err
    report = json.loads(out)
    assert [r["symbols"] for r in report["requests"]] == [["SPX", "AAPL"], ["IBM"]]
    assert [r["params"] for r in report["requests"]] == [{"interval": "1h"}] * 2
    [raw_file] = report["files"]
    store = LocalStore(st_project / "wh")
    assert len(list(iter_envelopes(store, raw_file["key"]))) == 2
    for path in (st_project / "wh").rglob("*"):
        if path.is_file():
            assert st_fake_key.encode() not in path.read_bytes()

    code, out, err = invoke(st_cli, "raw", "ls", "--project", str(st_project), "--format", "json")
    assert code == 0, err
    [listed] = json.loads(out)
    assert listed["key"] == raw_file["key"]
    assert listed["endpoint"] == "time_series"
    assert listed["run_id"] == report["run_id"]

    code, out, err = invoke(st_cli, "raw", "ls", "--endpoint", "quote", "-p", str(st_project))
    assert code == 0, err
    assert "time_series" not in out


def test_import_table_output_and_warning(
    st_cli: typer.Typer, st_project: Path, st_samples: Path
) -> None:
    code, out, err = invoke(
        st_cli,
        "raw",
        "import",
        str(st_samples / "error__404_nothing_found.json"),
        "-e",
        "time_series",
        "-p",
        str(st_project),
    )
    assert code == 0, err
    assert "error__404_nothing_found.json" in out
    assert "404" in out
    assert "no symbol in the body" in err
    code, out, err = invoke(st_cli, "raw", "ls", "-p", str(st_project))
    assert code == 0, err
    assert "time_series" in out


def test_non_json_file_exits_2_and_writes_nothing(
    st_cli: typer.Typer, st_project: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("not a response")
    code, _, err = invoke(
        st_cli, "raw", "import", str(bad), "--endpoint", "quote", "-p", str(st_project)
    )
    assert code == 2
    assert "notes.txt: is not JSON" in err
    assert "Traceback" not in err
    assert not (st_project / "wh").exists()


def test_bad_param_exits_2(st_cli: typer.Typer, st_project: Path, st_samples: Path) -> None:
    code, _, err = invoke(
        st_cli,
        "raw",
        "import",
        str(st_samples / "price__ibm.json"),
        "--endpoint",
        "price",
        "--param",
        "interval",
        "-p",
        str(st_project),
    )
    assert code == 2
    assert "expected key=value" in err
