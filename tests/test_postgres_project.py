"""A project whose metadata database (run history, watermarks, metrics, Iceberg SQL catalog and
external tables) is PostgreSQL instead of the default SQLite file: the same pipeline, unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa
import yaml
from typer.testing import CliRunner

from dataflow.cli.app import _register, app
from dataflow.metadata.db import project_schema

_register()


def cli(project: Path, *args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--project", str(project)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return str(result.stdout)


def test_the_whole_pipeline_on_a_postgres_metadata_database(
    tmp_path: Path, pg_database: str
) -> None:
    project = tmp_path / "p"
    project.mkdir()
    config = {
        "metadata": {"url": pg_database},
        "sources": {"twelvedata": {"symbols": {"stocks": ["AAPL"], "forex": ["EUR/USD"],
                                               "crypto": []}}},
    }  # fmt: skip
    (project / "dataflow.yaml").write_text(yaml.safe_dump(config))
    cli(project, "run", "--no-progress", "--endpoints", "time_series,quote")
    assert not (project / "warehouse" / "dataflow.db").exists(), "nothing went to SQLite"

    rows = json.loads(cli(project, "query", "SELECT symbol, count(*) AS n FROM time_series "
                          "GROUP BY 1 ORDER BY 1", "--format", "json"))  # fmt: skip
    assert [r["symbol"] for r in rows] == ["AAPL", "EUR/USD"]
    assert all(r["n"] > 100 for r in rows)
    tables = json.loads(cli(project, "catalog", "tables", "--format", "json"))
    assert {(t["database"], t["name"]) for t in tables} >= {
        ("market", "time_series"), ("market", "quotes"), ("raw", "time_series"), ("raw", "quote"),
    }  # fmt: skip
    runs = json.loads(cli(project, "runs", "--format", "json"))
    assert [r["status"] for r in runs] == ["succeeded"]
    engine = sa.create_engine(pg_database)
    with engine.connect() as conn:
        # One schema per project (dataflow.metadata.db): the default project is "dataflow".
        names = set(sa.inspect(conn).get_table_names(schema=project_schema("dataflow")))
    engine.dispose()
    assert {"runs", "watermarks", "metric_points", "iceberg_tables", "external_tables"} <= names
