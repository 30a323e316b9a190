"""The embedded DuckDB engine (the default).

Example:
    >>> from dataflow.engines.duckdb import DuckDBEngine
    >>> DuckDBEngine().capabilities.dialect
    'duckdb'
"""

from __future__ import annotations

from dataflow.engines.duckdb.engine import CRASH_ENV, LINEAGE_ORDER, DuckDBEngine

__all__ = ["CRASH_ENV", "LINEAGE_ORDER", "DuckDBEngine"]
