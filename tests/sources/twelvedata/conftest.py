"""Fixtures of the Twelve Data simulator tests (all named ``sim_*``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import httpx
import pytest

from dataflow.sources.twelvedata.simulator import SimulatorConfig, SimulatorServer

SIM_NOW = dt.datetime(2024, 6, 14, 18, 0, tzinfo=dt.UTC)  # a Friday, 14:00 in New York


@pytest.fixture(scope="module")
def sim_server() -> Iterator[SimulatorServer]:
    """A simulator with a fixed clock, no key and no limits, shared by a test module."""
    with SimulatorServer(SimulatorConfig(now=SIM_NOW)) as server:
        yield server


@pytest.fixture
def sim_client(sim_server: SimulatorServer) -> Iterator[httpx.Client]:
    """An HTTP client on the shared simulator."""
    with httpx.Client(base_url=sim_server.url, timeout=10) as client:
        yield client
