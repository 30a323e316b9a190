"""Fixtures of the storage tests: a local store, the real API samples, an S3 server (moto)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def st_moto_url() -> Iterator[str]:
    """An S3-compatible server (moto) on 127.0.0.1 with a bucket named ``bucket``."""
    moto_server = Path(sys.executable).parent / "moto_server"
    if not moto_server.exists():
        pytest.skip("moto_server not installed (pip install 'moto[server]')")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [str(moto_server), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"moto_server exited with {process.returncode}")
            try:
                if httpx.get(f"{url}/moto-api/", timeout=1).status_code < 500:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("moto_server did not answer within 30 s")
            time.sleep(0.1)
        # A bucket is created with a plain PUT (moto needs no location constraint in us-east-1).
        response = httpx.put(f"{url}/bucket", timeout=10)
        assert response.status_code == 200, response.text
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
