"""Two projects on one PostgreSQL metadata database stay apart: each has its own schema.

Project A runs the whole pipeline, queries, and has a schedule fire; then project B runs on the
same database. B must fetch its full history (A's watermarks are not B's), and nothing B does may
change a single row A owns: runs, watermarks, catalog tables, DQ results, metrics, alarms, query
history and schedule fires are compared table by table.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from typer.testing import CliRunner

from dataflow.cli.app import _register, app
from dataflow.config import load_settings
from dataflow.metadata import MetadataDB, RunStore, WatermarkStore, open_metadata
from dataflow.metadata.db import project_schema
from dataflow.schedule.store import FireStore

_register()


def project(root: Path, name: str, url: str) -> Path:
    root.mkdir(parents=True)
    config = {
        "name": name,
        "metadata": {"url": url},
        "sources": {"twelvedata": {"symbols": {"stocks": ["AAPL"], "forex": [], "crypto": []}}},
    }
    (root / "dataflow.yaml").write_text(yaml.safe_dump(config))
    return root


def cli(root: Path, *args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--project", str(root)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return str(result.stdout)


def table_contents(url: str, schema: str) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table in ``schema``, sorted: a fingerprint of what a project owns."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            names = sa.inspect(conn).get_table_names(schema=schema)
            return {
                name: sorted(
                    (tuple(map(repr, row)) for row in conn.execute(
                        sa.text(f'SELECT * FROM "{schema}"."{name}"'))),
                )
                for name in names
            }  # fmt: skip
    finally:
        engine.dispose()


def test_two_projects_on_one_database_never_see_each_other(
    tmp_path: Path, pg_database: str
) -> None:
    a = project(tmp_path / "a", "alpha", pg_database)
    b = project(tmp_path / "b", "beta", pg_database)
    cli(a, "run", "--no-progress", "--endpoints", "time_series")
    cli(a, "query", "SELECT count(*) FROM time_series")
    settings_a = load_settings(a, env={})
    db_a = open_metadata(settings_a.metadata_url)
    FireStore(db_a).start(
        "nightly", dt.datetime(2026, 1, 1, tzinfo=dt.UTC), attempt=1,
        started_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), status="skipped",
    )  # fmt: skip
    db_a.dispose()
    schema_a, schema_b = project_schema("alpha"), project_schema("beta")
    before = table_contents(pg_database, schema_a)
    expected = {
        "runs", "watermarks", "metric_points", "alarm_states", "dq_evaluations",
        "dq_rule_results", "query_executions", "schedule_fires", "iceberg_tables",
    }  # fmt: skip
    assert {name for name, rows in before.items() if rows} >= expected

    cli(b, "run", "--no-progress", "--endpoints", "time_series")
    assert table_contents(pg_database, schema_a) == before, "B changed a row A owns"

    after_b = table_contents(pg_database, schema_b)
    assert len(after_b["runs"]) == 1
    assert after_b["query_executions"] == []
    assert after_b["schedule_fires"] == []
    assert [r[0] for r in after_b["iceberg_tables"]] == ["'dataflow'"] * len(
        after_b["iceberg_tables"]
    )
    # B fetched its whole history although A's watermarks for the same series exist (before
    # schemas per project B fetched 2 rows here).
    rows = json.loads(cli(b, "query", "SELECT count(*) AS n FROM time_series", "--format", "json"))
    assert rows == [{"n": 538}]
    runs_b = json.loads(cli(b, "runs", "--format", "json"))
    assert [r["pipeline"] for r in runs_b] == ["beta"]
    history = json.loads(cli(b, "query", "history", "--format", "json"))
    assert len(history) == 1, "B sees only its own query history"
    # Nothing landed in public, where an older version kept everything.
    assert table_contents(pg_database, "public") == {}

    settings_b = load_settings(b, env={})
    db_b = open_metadata(settings_b.metadata_url)
    try:
        assert len(RunStore(db_b).list()) == 1
        assert WatermarkStore(db_b).list(), "B has its own watermarks"
        assert db_b.owner() == "beta"
    finally:
        db_b.dispose()


def test_an_older_shared_database_is_adopted_by_the_first_project(pg_database: str) -> None:
    # An older version: everything in public, no owner.
    legacy = MetadataDB(pg_database)
    legacy.migrate()
    RunStore(legacy).start_run("old-run", pipeline="alpha")
    legacy.dispose()

    from dataflow.metadata.db import project_url

    alpha = open_metadata(project_url(pg_database, "alpha"))
    beta = open_metadata(project_url(pg_database, "beta"))
    try:
        assert [r.run_id for r in RunStore(alpha).list()] == ["old-run"]
        assert RunStore(beta).list() == []
        assert (alpha.owner(), beta.owner()) == ("alpha", "beta")
        assert alpha.schema == "dataflow_alpha"
    finally:
        alpha.dispose()
        beta.dispose()
    assert table_contents(pg_database, "public") == {}


def test_a_user_who_cannot_create_the_schema_gets_one_line(pg_database: str) -> None:
    role = f"limited_{secrets.token_hex(3)}"
    admin = sa.create_engine(pg_database, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN")  # no CREATE on the database
    try:
        limited = sa.make_url(pg_database).set(username=role).render_as_string()
        from dataflow.errors import ConfigError
        from dataflow.metadata.db import project_url

        with pytest.raises(ConfigError) as caught:
            open_metadata(project_url(limited, "alpha"))
        assert str(caught.value).startswith(
            "cannot create the schema dataflow_alpha of project 'alpha' in "
        )
        assert "grant the user CREATE on the database" in str(caught.value)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP OWNED BY {role}")
            conn.exec_driver_sql(f"DROP ROLE {role}")
        admin.dispose()
