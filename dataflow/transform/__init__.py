"""Transform: raw zone -> Apache Iceberg clean tables through SQL models.

Example:
    >>> from dataflow.transform import TransformStage
    >>> TransformStage(tables=["time_series"]).name
    'transform'
"""

from __future__ import annotations

from dataflow.transform.models import Model, discover_models, order_models, parse_model
from dataflow.transform.stage import TableStats, TransformStage

__all__ = [
    "Model",
    "TableStats",
    "TransformStage",
    "discover_models",
    "order_models",
    "parse_model",
]
