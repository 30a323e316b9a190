"""Fixtures of the reliability suite: one simulator and one harness per session (see harness.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dataflow.sources.twelvedata.simulator import SimulatorConfig, SimulatorServer
from tests.reliability.harness import API_KEY, NOW, Harness


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test of this folder carries the ``reliability`` marker."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.reliability)
            # A case runs several pipelines; on a loaded machine one can take minutes.
            item.add_marker(pytest.mark.timeout(1200))


@pytest.fixture(scope="session")
def simulator() -> Iterator[SimulatorServer]:
    """A simulator with a fixed clock and a key, 20 ms per answer (so kills land inside ingest)."""
    config = SimulatorConfig(api_key=API_KEY, now=NOW, latency_ms=20)
    with SimulatorServer(config) as server:
        yield server


@pytest.fixture(scope="session")
def harness(simulator: SimulatorServer, tmp_path_factory: pytest.TempPathFactory) -> Harness:
    return Harness(simulator, tmp_path_factory.mktemp("reliability"))
