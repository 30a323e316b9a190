"""Fixtures of the storage tests: a local store, the real API samples, an S3 server (moto)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataflow.storage import LocalStore

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
