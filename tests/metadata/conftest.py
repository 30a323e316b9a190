"""Fixtures of the metadata tests: a SQLite file and a PostgreSQL schema, one suite for both."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa


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


@pytest.fixture(params=["sqlite", "postgresql"])
def md_any_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The metadata URL on each supported database: every test using it runs on both."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'any' / 'dataflow.db'}"
    return str(request.getfixturevalue("md_pg_url"))
