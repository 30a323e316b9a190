"""The metadata database: engine settings, automatic migrations, error translation."""

from __future__ import annotations

import datetime as dt
import io
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from dataflow.errors import ConfigError, MetadataError
from dataflow.metadata import MetadataDB, head_revision, open_metadata
from dataflow.metadata.db import alembic_config
from dataflow.metadata.schema import VERSION_TABLE, metadata, watermarks

TABLES = {"runs", "run_stages", "watermarks", "metric_points", VERSION_TABLE}


@pytest.fixture
def md_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state' / 'nested' / 'dataflow.db'}"


def test_open_creates_folder_and_schema_at_head(md_url: str, tmp_path: Path) -> None:
    db = open_metadata(md_url)
    try:
        assert (tmp_path / "state" / "nested" / "dataflow.db").is_file()
        assert set(sa.inspect(db.engine).get_table_names()) >= TABLES
        assert db.current_revision() == head_revision()
    finally:
        db.dispose()


def test_migrate_is_idempotent(md_any_url: str) -> None:
    db = MetadataDB(md_any_url)
    try:
        assert db.current_revision() is None
        db.migrate()
        with db.begin() as conn:
            conn.execute(
                watermarks.insert().values(
                    source="s",
                    endpoint="e",
                    symbol="",
                    interval="",
                    value=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
                    run_id="r",
                    updated_at=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
                )
            )
        db.migrate()
        db.migrate()
        with db.read() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(watermarks)).scalar() == 1
            versions = conn.execute(sa.text(f"select version_num from {VERSION_TABLE}")).all()
        assert versions == [(head_revision(),)]
    finally:
        db.dispose()


def test_alembic_current_equals_head(md_any_url: str) -> None:
    db = open_metadata(md_any_url)
    try:
        config = alembic_config()
        config.stdout = io.StringIO()
        with db.begin() as conn:
            config.attributes["connection"] = conn
            command.current(config)
        assert config.stdout.getvalue().split() == [head_revision(), "(head)"]
    finally:
        db.dispose()


def test_schema_module_matches_the_migrations(md_any_url: str) -> None:
    """schema.py and versions/ describe the same tables, columns, types and indexes."""
    db = open_metadata(md_any_url)
    try:
        with db.read() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "version_table": VERSION_TABLE}
            )
            diff = compare_metadata(context, metadata)
        assert diff == []
    finally:
        db.dispose()


def test_sqlite_pragmas(md_url: str) -> None:
    db = open_metadata(md_url)
    try:
        with db.read() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
    finally:
        db.dispose()


def test_transactions_roll_back_ddl_and_dml(md_any_url: str) -> None:
    """BEGIN is ours on SQLite, so a failed block leaves nothing behind, DDL included."""
    db = open_metadata(md_any_url)
    try:

        def create_then_fail() -> None:
            with db.begin() as conn:
                conn.exec_driver_sql("CREATE TABLE scratch (x INTEGER)")
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            create_then_fail()
        assert "scratch" not in sa.inspect(db.engine).get_table_names()
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


def test_concurrent_first_migrations_in_separate_processes(md_any_url: str, tmp_path: Path) -> None:
    go = tmp_path / "go"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD_MIGRATE, md_any_url, str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    time.sleep(1.0)  # let every child import and reach the starting line
    go.touch()
    results = [child.communicate(timeout=60) for child in children]
    for child, (out, err) in zip(children, results, strict=True):
        assert child.returncode == 0, err
        assert out.strip() == head_revision()
    db = MetadataDB(md_any_url)
    try:
        assert db.current_revision() == head_revision()
        assert set(sa.inspect(db.engine).get_table_names()) >= TABLES
    finally:
        db.dispose()


def test_bad_url_is_a_config_error_without_the_password() -> None:
    with pytest.raises(ConfigError) as info:
        MetadataDB("not a url :: hunter2")
    assert "hunter2" not in str(info.value)
    assert "metadata.url" in str(info.value)


def test_missing_driver_names_the_fix() -> None:
    with pytest.raises(ConfigError, match="no database driver"):
        MetadataDB("mssql+pymssql://u:hunter2@127.0.0.1/db")


def test_unusable_sqlite_paths_are_metadata_errors(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(MetadataError, match="cannot create"):
        MetadataDB(f"sqlite:///{blocker}/x/dataflow.db")
    db = MetadataDB(f"sqlite:///{tmp_path}")  # a folder is not a database file
    try:
        with pytest.raises(MetadataError, match="unable to open database file"):
            db.migrate()
    finally:
        db.dispose()


def test_postgres_url_uses_psycopg3() -> None:
    db = MetadataDB("postgresql://user:hunter2@127.0.0.1:1/db")
    try:
        assert db.engine.dialect.driver == "psycopg"
        assert "hunter2" not in db.safe_url
        assert "hunter2" not in repr(db)
    finally:
        db.dispose()


def test_postgres_unreachable_is_a_metadata_error() -> None:
    db = MetadataDB("postgresql://user:hunter2@127.0.0.1:1/db?connect_timeout=2")
    try:
        with pytest.raises(MetadataError) as info:
            db.migrate()
        assert "hunter2" not in str(info.value)
        assert "127.0.0.1" in str(info.value)
    finally:
        db.dispose()
