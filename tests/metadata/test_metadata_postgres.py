"""The metadata database on PostgreSQL: migrations and every store.

Runs against the suite's ``postgres_url`` server (tests/conftest.py: ``DATAFLOW_TEST_POSTGRES_URL``
or a throwaway server started on 127.0.0.1). Each test works in a fresh schema of its own and drops
it afterwards.
"""

from __future__ import annotations

import datetime as dt
import secrets
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from dataflow.metadata import (
    MetadataDB,
    RunStore,
    WatermarkKey,
    WatermarkStore,
    head_revision,
    open_metadata,
)
from dataflow.metadata.schema import VERSION_TABLE
from dataflow.monitor import Metrics

TABLES = {"runs", "run_stages", "watermarks", "metric_points", VERSION_TABLE}


@pytest.fixture
def md_pg_url(postgres_url: str) -> Iterator[str]:
    """A URL whose search_path is a new, empty schema."""
    pg_url = postgres_url
    schema = f"md_test_{secrets.token_hex(4)}"
    admin = sa.create_engine(sa.make_url(pg_url).set(drivername="postgresql+psycopg"))
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    url = sa.make_url(pg_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


@pytest.fixture
def md_pg(md_pg_url: str) -> Iterator[MetadataDB]:
    db = open_metadata(md_pg_url)
    yield db
    db.dispose()


def test_migrations_create_the_schema_idempotently(md_pg_url: str) -> None:
    db = MetadataDB(md_pg_url)
    try:
        assert db.current_revision() is None
        db.migrate()
        db.migrate()
        assert db.current_revision() == head_revision()
        assert set(sa.inspect(db.engine).get_table_names()) >= TABLES
    finally:
        db.dispose()


CHILD_MIGRATE = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    go = Path(sys.argv[2])
    while not go.exists():
        time.sleep(0.005)
    from dataflow.metadata import open_metadata
    db = open_metadata(sys.argv[1])
    print(db.current_revision())
    db.dispose()
    """
)


def test_concurrent_migrations(md_pg_url: str, tmp_path: Path) -> None:
    go = tmp_path / "go"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD_MIGRATE, md_pg_url, str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    time.sleep(1.0)
    go.touch()
    for child in children:
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        assert out.strip() == head_revision()


def test_runs_round_trip(md_pg: MetadataDB) -> None:
    store = RunStore(md_pg)
    store.start_run("20260101T000000Z-aaaa", pipeline="p", params={"full_refresh": True})
    store.start_stage("20260101T000000Z-aaaa", "ingest")
    store.finish_stage("20260101T000000Z-aaaa", "ingest", status="partial", rows=5, errors=1)
    run = store.finish_run("20260101T000000Z-aaaa", status="partial")
    assert store.get("20260101T00").run_id == run.run_id
    assert run.params == {"full_refresh": True}
    assert run.started_at.tzinfo == dt.UTC
    assert [(s.stage, s.status, s.rows, s.errors) for s in run.stages] == [
        ("ingest", "partial", 5, 1)
    ]


def test_watermarks_never_move_backwards(md_pg: MetadataDB) -> None:
    store = WatermarkStore(md_pg)
    key = WatermarkKey("twelvedata", "time_series", "AAPL", "1day")
    new = dt.datetime(2024, 5, 2, 12, tzinfo=dt.UTC)
    store.advance({key: new}, run_id="r1")
    store.advance({key: new - dt.timedelta(days=1)}, run_id="r2")
    assert store.list() == [(key, new, "r1")]


def test_metrics_exact_dimensions(md_pg: MetadataDB) -> None:
    metrics = Metrics(md_pg, run_id="r1")
    metrics.record("Dataflow", "Rows", 1, "Count", {"a": "1"})
    metrics.record("Dataflow", "Rows", 2, "Count", {"a": "1", "b": "2"})
    assert [p.value for p in metrics.query("Dataflow", "Rows", dimensions={"a": "1"})] == [1.0]


def test_schema_module_matches_the_migrations(md_pg: MetadataDB) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from dataflow.metadata.schema import metadata

    with md_pg.read() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "version_table": VERSION_TABLE}
        )
        assert compare_metadata(context, metadata) == []
