"""The Apache Spark engine (``engine: spark``): pyspark is imported only when it is chosen.

Example:
    >>> from dataflow.engines.spark.runtime import EXTRA_HINT
    >>> EXTRA_HINT
    "pip install 'dataflow-etl[spark]'"
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dataflow.engines.spark.engine import SparkEngine


def __getattr__(name: str) -> Any:
    if name == "SparkEngine":
        from dataflow.engines.spark.engine import SparkEngine

        return SparkEngine
    raise AttributeError(name)


__all__ = ["SparkEngine"]
