"""Settings of the query stage: ``query:`` in dataflow.yaml (``config.QuerySettings``)::

    query:
      results_prefix: results          # result files: <warehouse>/results/<query_id>.csv
      queries_dir: queries             # named queries: <project>/queries/<name>.sql
      default_workgroup: primary
      workgroups:
        primary: {bytes_scanned_cutoff_per_query: null, query_timeout_seconds: 1800}
        adhoc: {bytes_scanned_cutoff_per_query: 10000000, query_timeout_seconds: 60}

:func:`query_config` turns it into the frozen :class:`QueryConfig` the stage passes around (tests
build one directly).

Example:
    >>> from dataflow.config import load_settings
    >>> config = query_config(load_settings("/tmp/p", env={}))
    >>> config.default_workgroup, config.workgroup("primary").bytes_scanned_cutoff_per_query
    ('primary', None)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dataflow.errors import ConfigError

if TYPE_CHECKING:
    from dataflow.config import Settings

PRIMARY = "primary"
"""Athena's default workgroup."""
MINIMUM_CUTOFF = 10_000_000
"""Athena's smallest ``BytesScannedCutoffPerQuery``."""
DEFAULT_TIMEOUT = 1800.0
"""Seconds a query may run unless its workgroup says otherwise (Athena's DML limit: 30 min)."""


@dataclass(frozen=True)
class Workgroup:
    """An Athena-style workgroup: a name, and per-query limits on bytes scanned and time.

    Attributes:
        name: the workgroup name.
        bytes_scanned_cutoff_per_query: a query planned to read more is CANCELLED (None: no
            limit). Athena's minimum is 10,000,000 bytes; smaller values are allowed here so
            that tests and small warehouses can exercise the guard.
        query_timeout_seconds: a query running longer is interrupted and ends FAILED with
            ``EXCEEDED_TIME_LIMIT`` (always finite; see :mod:`dataflow.query.stop`).
    """

    name: str
    bytes_scanned_cutoff_per_query: int | None = None
    query_timeout_seconds: float = DEFAULT_TIMEOUT


@dataclass(frozen=True)
class QueryConfig:
    """The query stage's settings (see the module docstring for the YAML)."""

    results_prefix: str = "results"
    queries_dir: str = "queries"
    default_workgroup: str = PRIMARY
    workgroups: Mapping[str, Workgroup] = field(
        default_factory=lambda: {PRIMARY: Workgroup(PRIMARY)}
    )

    def workgroup(self, name: str | None = None) -> Workgroup:
        """The workgroup ``name`` (default: the default workgroup).

        Raises:
            ConfigError: a workgroup that is not configured.
        """
        chosen = name or self.default_workgroup
        if chosen in self.workgroups:
            return self.workgroups[chosen]
        if chosen == PRIMARY:
            return Workgroup(PRIMARY)
        raise ConfigError(
            f"workgroup {chosen!r} is not configured — use one of "
            f"{', '.join(sorted(self.workgroups)) or PRIMARY} (query.workgroups in dataflow.yaml)"
        )

    def queries_path(self, settings: Settings) -> Path:
        """The folder of named queries."""
        path = Path(self.queries_dir)
        return path if path.is_absolute() else Path(settings.project_dir) / path


def query_config(settings: Settings) -> QueryConfig:
    """The query settings of a project (``query:`` in dataflow.yaml) as the stage uses them.

    Example:
        >>> query_config(settings).results_prefix  # doctest: +SKIP
        'results'
    """
    section = settings.query
    groups: dict[str, Workgroup] = {PRIMARY: Workgroup(PRIMARY)}
    for name, group in section.workgroups.items():
        groups[name] = Workgroup(
            name, group.bytes_scanned_cutoff_per_query, group.query_timeout_seconds
        )
    return QueryConfig(
        results_prefix=section.results_prefix.strip("/"),
        queries_dir=section.queries_dir,
        default_workgroup=section.default_workgroup,
        workgroups=groups,
    )


__all__ = [
    "DEFAULT_TIMEOUT",
    "MINIMUM_CUTOFF",
    "PRIMARY",
    "QueryConfig",
    "Workgroup",
    "query_config",
]
