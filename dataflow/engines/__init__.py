"""Execution engines behind one interface: DuckDB today, Spark by configuration later.

Example:
    >>> from dataflow.engines import get_engine
    >>> with get_engine("duckdb") as engine:  # doctest: +SKIP
    ...     engine.sql("SELECT 1 AS one").to_pylist()
    [{'one': 1}]
"""

from __future__ import annotations

from dataflow.engines.base import (
    CONTRACT_DIALECT,
    Engine,
    EngineCapabilities,
    WriteResult,
    translate,
)
from dataflow.engines.registry import engine_names, get_engine

__all__ = [
    "CONTRACT_DIALECT",
    "Engine",
    "EngineCapabilities",
    "WriteResult",
    "engine_names",
    "get_engine",
    "translate",
]
