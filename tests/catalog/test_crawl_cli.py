"""`dataflow crawl` through the command line: targets, options, output, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from dataflow.catalog import ExternalCatalog
from dataflow.cli.crawl import register
from dataflow.metadata import open_metadata
from dataflow.storage import LocalStore


@pytest.fixture
def cr_cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """Test application."""

    register(app)
    return app


@pytest.fixture
def cr_project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / "dataflow.yaml").write_text("warehouse: wh\n")
    store = LocalStore(project / "wh")
    store.put_bytes("raw/twelvedata/quote/ingest_date=2024-05-01/r1-00001.jsonl", b'{"a": 1}\n')
    return project


def invoke(app: typer.Typer, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.stdout, result.stderr


def catalog_of(project: Path) -> ExternalCatalog:
    return ExternalCatalog(open_metadata(f"sqlite:///{project / 'wh' / 'dataflow.db'}"))


def test_crawl_a_warehouse_path_as_json(cr_cli: typer.Typer, cr_project: Path) -> None:
    code, out, err = invoke(
        cr_cli,
        "crawl",
        "raw/twelvedata/quote",
        "--table",
        "raw.quote",
        "--project",
        str(cr_project),
        "--format",
        "json",
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["table"] == "raw.quote"
    assert data["created"] is True
    assert data["changed"] is True
    assert data["columns_added"] == [{"name": "a", "type": "int", "comment": None}]
    assert data["partitions_added"] == [["2024-05-01"]]
    table = catalog_of(cr_project).get("raw", "quote")
    assert table.location == str(cr_project / "wh" / "raw/twelvedata/quote") + "/"


def test_crawl_a_local_folder_with_a_table_summary(
    cr_cli: typer.Typer, cr_project: Path, tmp_path: Path
) -> None:
    data = tmp_path / "outside"
    (data / "2024").mkdir(parents=True)
    (data / "2024" / "p.csv").write_text("day|close\n2024-01-02|1.5\n")
    args = ["crawl", str(data), "-t", "ext.prices", "--project", str(cr_project)]
    code, out, err = invoke(cr_cli, *args, "--data-format", "csv")
    assert code == 0, err
    assert "ext.prices: created, version 1" in out
    assert "column added" in out
    assert "close" in out
    assert "double" in out
    assert "partition added" in out
    assert "1 file(s), 1 record(s)" in out
    assert catalog_of(cr_project).get("ext", "prices").parameters["delimiter"] == "|"
    (data / "2024" / "q.csv").write_text("day|close|volume\n2024-01-03|2|7\n")
    code, out, err = invoke(cr_cli, *args, "--update-behavior", "log")
    assert code == 0, err
    assert "ext.prices: no changes, version 1" in out
    assert "logged only: column added volume bigint" in out


def test_crawl_a_local_folder_inside_the_warehouse(cr_cli: typer.Typer, cr_project: Path) -> None:
    folder = cr_project / "wh" / "raw" / "twelvedata" / "quote"
    code, _out, err = invoke(
        cr_cli, "crawl", str(folder), "--table", "raw.q", "--project", str(cr_project)
    )
    assert code == 0, err
    assert catalog_of(cr_project).get("raw", "q").location == str(folder) + "/"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--table", "quote"], "error: --table must be DATABASE.TABLE, e.g. raw.quote"),
        (["--table", "a.b.c"], "error: --table must be DATABASE.TABLE"),
        (["--table", "raw.quote", "--recrawl", "sometimes"], "error: --recrawl 'sometimes'"),
        (["--table", "raw.quote", "--data-format", "xml"], "error: format 'xml' is not known"),
        (["--table", "raw.quote", "--delete-behavior", "x"], "error: --delete-behavior 'X'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    cr_cli: typer.Typer, cr_project: Path, args: list[str], message: str
) -> None:
    code, _, err = invoke(
        cr_cli, "crawl", "raw/twelvedata/quote", *args, "--project", str(cr_project)
    )
    assert code == 2
    assert err.startswith(message)
    assert len(err.strip().splitlines()) == 1


def test_nothing_to_crawl(cr_cli: typer.Typer, cr_project: Path) -> None:
    code, _, err = invoke(
        cr_cli, "crawl", "raw/twelvedata/nope", "-t", "raw.nope", "--project", str(cr_project)
    )
    assert code == 2
    assert "nothing to crawl at" in err
