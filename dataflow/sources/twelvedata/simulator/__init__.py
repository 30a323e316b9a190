"""A Twelve Data-compatible HTTP server: the embedded data source and the ingestion client's peer.

It answers the real REST API's endpoints with the real shapes (strings for prices, ``meta``,
batch objects keyed by symbol, the real error texts), enforces API credits per minute and per
day, can inject faults, and serves deterministic market data for a small catalogue of stocks,
ETFs, forex pairs and cryptocurrencies (``universe.json``).

Example:
    >>> import httpx
    >>> with SimulatorServer(SimulatorConfig(credits_per_minute=8)) as sim:
    ...     r = httpx.get(f"{sim.url}/time_series", params={"symbol": "AAPL", "interval": "1day"})
    ...     r.json()["meta"]["exchange_timezone"], r.headers["api-credits-used"]
    ('America/New_York', '1')
"""

from dataflow.sources.twelvedata.simulator.app import FAULT_KINDS, SimulatorConfig, create_app
from dataflow.sources.twelvedata.simulator.server import SimulatorServer, serve

__all__ = ["FAULT_KINDS", "SimulatorConfig", "SimulatorServer", "create_app", "serve"]
