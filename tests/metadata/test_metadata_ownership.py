"""Every metadata row belongs to one project: the owner record and the schema per project."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dataflow.errors import ConfigError
from dataflow.metadata import RunStore, open_metadata
from dataflow.metadata.db import MetadataDB, project_schema, project_url


@pytest.mark.parametrize(
    ("name", "schema"),
    [
        ("alpha", "dataflow_alpha"),
        ("market_eu", "dataflow_market_eu"),
        # Anything else gets a hash: two names never share a schema.
        ("Alpha", "dataflow_alpha_b1a96dd6"),
        ("alpha beta", "dataflow_alpha_beta_"),
        ("x" * 60, "dataflow_" + "x" * 40 + "_"),
        ("é", "dataflow_project_"),
    ],
)
def test_project_schema_names(name: str, schema: str) -> None:
    got = project_schema(name)
    assert got.startswith(schema)
    assert len(got) <= 63
    assert re.fullmatch(r"[a-z_][a-z0-9_]*", got), "a plain identifier"


def test_the_first_project_claims_a_sqlite_database_and_others_are_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'dataflow.db'}"
    alpha = open_metadata(project_url(url, "alpha"))
    RunStore(alpha).start_run("r1", pipeline="alpha")
    assert alpha.owner() == "alpha"
    alpha.dispose()

    with pytest.raises(ConfigError) as caught:
        open_metadata(project_url(url, "beta"))
    message = str(caught.value)
    assert message == (
        f"the metadata database ({url}) belongs to project 'alpha', not 'beta' — give this "
        "project its own metadata.url, or set metadata.adopt: true (env "
        "DATAFLOW__METADATA__ADOPT=true) to take it over"
    )
    again = open_metadata(project_url(url, "alpha"))  # the owner is welcome
    again.dispose()

    beta = open_metadata(project_url(url, "beta", adopt=True))
    try:
        assert beta.owner() == "beta"
        assert [r.run_id for r in RunStore(beta).list()] == ["r1"]
    finally:
        beta.dispose()
    with pytest.raises(ConfigError, match="belongs to project 'beta', not 'alpha'"):
        open_metadata(project_url(url, "alpha"))


def test_an_older_database_without_owner_is_adopted(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    legacy = open_metadata(url)  # a bare URL: no project, as before owners existed
    RunStore(legacy).start_run("old", pipeline="p")
    assert legacy.owner() is None
    legacy.dispose()
    adopted = open_metadata(project_url(url, "p"))
    try:
        assert adopted.owner() == "p"
        assert [r.run_id for r in RunStore(adopted).list()] == ["old"]
    finally:
        adopted.dispose()


def test_dataflow_parameters_never_reach_the_driver() -> None:
    db = MetadataDB(project_url("postgresql://u:secret@127.0.0.1:1/db", "alpha"))
    assert db.schema == "dataflow_alpha"
    assert db.safe_url == "postgresql+psycopg://u:***@127.0.0.1:1/db"
    assert db.connect_url() == (
        "postgresql+psycopg://u:secret@127.0.0.1:1/db?options=-csearch_path%3Ddataflow_alpha"
    )
    pinned = MetadataDB(project_url("postgresql://h/db?options=-csearch_path%3Dmine", "alpha"))
    assert pinned.schema is None, "a URL that pins its search_path keeps it"
    explicit = MetadataDB(project_url("postgresql://h/db", "alpha", schema="team_a"))
    assert explicit.schema == "team_a"
    with pytest.raises(ConfigError, match=r"metadata\.schema_name"):
        MetadataDB(project_url("postgresql://h/db", "alpha", schema="Bad-Name"))
