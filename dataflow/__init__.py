"""Dataflow: a complete data pipeline in one tool.

The public API, for use from Python (the `dataflow` command calls the same functions)::

    >>> import dataflow
    >>> settings = dataflow.load_settings("demo")                       # doctest: +SKIP
    >>> result = dataflow.run_pipeline(settings, dataflow.RunOptions())  # doctest: +SKIP
    >>> with dataflow.connect("demo") as con:                           # doctest: +SKIP
    ...     con.sql("SELECT count(*) AS n FROM market.time_series").rows()

Names are imported on first use, so `import dataflow` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "DataCatalog": "dataflow.catalog.tables",
    "DataflowError": "dataflow.errors",
    "Connection": "dataflow.client",
    "Metrics": "dataflow.monitor.metrics",
    "QuerySession": "dataflow.query.session",
    "RunOptions": "dataflow.pipeline",
    "RunResult": "dataflow.pipeline",
    "Settings": "dataflow.config",
    "SimulatorServer": "dataflow.sources.twelvedata.simulator",
    "connect": "dataflow.client",
    "init_project": "dataflow.project",
    "load_settings": "dataflow.config",
    "open_metadata": "dataflow.metadata",
    "parse_ruleset": "dataflow.quality.dqdl",
    "run_pipeline": "dataflow.pipeline",
}

__all__ = [
    "Connection",
    "DataCatalog",
    "DataflowError",
    "Metrics",
    "QuerySession",
    "RunOptions",
    "RunResult",
    "Settings",
    "SimulatorServer",
    "__version__",
    "connect",
    "init_project",
    "load_settings",
    "open_metadata",
    "parse_ruleset",
    "run_pipeline",
]

if TYPE_CHECKING:
    from dataflow.catalog.tables import DataCatalog
    from dataflow.client import Connection, connect
    from dataflow.config import Settings, load_settings
    from dataflow.errors import DataflowError
    from dataflow.metadata import open_metadata
    from dataflow.monitor.metrics import Metrics
    from dataflow.pipeline import RunOptions, RunResult, run_pipeline
    from dataflow.project import init_project
    from dataflow.quality.dqdl import parse_ruleset
    from dataflow.query.session import QuerySession
    from dataflow.sources.twelvedata.simulator import SimulatorServer


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dataflow' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
