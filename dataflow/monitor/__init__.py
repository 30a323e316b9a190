"""Monitoring: metrics (CloudWatch's model) and structured logs.

Example:
    >>> from dataflow.monitor import Metrics, get_logger, stage_context
"""

from dataflow.monitor.logs import (
    configure_logging,
    get_logger,
    prune_logs,
    read_logs,
    redact,
    run_log,
    stage_context,
)
from dataflow.monitor.metrics import UNITS, Datapoint, Metrics

__all__ = [
    "UNITS",
    "Datapoint",
    "Metrics",
    "configure_logging",
    "get_logger",
    "prune_logs",
    "read_logs",
    "redact",
    "run_log",
    "stage_context",
]
