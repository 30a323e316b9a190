"""Fixtures of the storage tests: a local store, the real API samples, an S3 server (moto)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataflow.config import load_settings
from dataflow.storage import LocalStore, ObjectStore, S3Store, open_store

# Real API responses, copied from ../shared/reference/twelvedata-samples (provenance: SOURCES.md).
SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "twelvedata-samples"


@pytest.fixture
def st_fake_key() -> str:
    """A made-up API key: tests assert it is written nowhere."""
    return "sk-FAKE-KEY-7f3a9c2e1b"


@pytest.fixture
def st_store(tmp_path: Path) -> LocalStore:
    """An empty local warehouse."""
    return LocalStore(tmp_path / "warehouse")


@pytest.fixture
def st_samples() -> Path:
    """The folder of real Twelve Data responses (see its SOURCES.md)."""
    if not (SAMPLES / "SOURCES.md").is_file():
        pytest.skip(f"real API samples not found at {SAMPLES} (set DATAFLOW_TWELVEDATA_SAMPLES)")
    return SAMPLES


@pytest.fixture(scope="module")
def st_moto_url(s3_server_url: str) -> str:
    """An S3-compatible server (moto) on 127.0.0.1 with a bucket named ``bucket``."""
    return s3_server_url


@pytest.fixture
def st_s3(st_moto_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> S3Store:
    """A store under a fresh prefix of the moto bucket (one per test)."""
    settings = load_settings(
        tmp_path,
        overrides={
            "warehouse": f"s3://bucket/{request.node.name.replace('[', '-').rstrip(']')}",
            "storage.s3.endpoint_url": st_moto_url,
            "storage.s3.access_key_id": "testing-key-id",
            "storage.s3.secret_access_key": "testing-secret",
            "storage.s3.region": "us-east-1",
        },
        env={},
    )
    store = open_store(settings)
    assert isinstance(store, S3Store)
    return store


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def st_any(request: pytest.FixtureRequest) -> ObjectStore:
    """Every object store: a test using it runs on a local folder and on S3 (moto)."""
    name = "st_store" if request.param == "local" else "st_s3"
    store: ObjectStore = request.getfixturevalue(name)
    return store
