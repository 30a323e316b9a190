"""Find an engine by name. Backends are registered here explicitly, one line each.

Example:
    >>> engine = get_engine("duckdb")
    >>> engine.name, engine.capabilities.dialect
    ('duckdb', 'duckdb')
    >>> engine.close()
    >>> get_engine("duckbd")
    Traceback (most recent call last):
    ...
    dataflow.errors.ConfigError: unknown engine 'duckbd' — did you mean 'duckdb'?
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dataflow.engines.base import Engine
from dataflow.errors import ConfigError

if TYPE_CHECKING:
    from dataflow.config import Settings


def _duckdb(**options: Any) -> Engine:
    from dataflow.engines.duckdb import DuckDBEngine

    options.pop("settings", None)  # everything DuckDB needs comes with each call
    return DuckDBEngine(**options)


def _spark(*, settings: Settings | None = None, **options: Any) -> Engine:
    # Checked before pyspark is imported, so a missing extra is one line, not a traceback.
    from dataflow.engines.spark.runtime import check_pyspark

    check_pyspark()
    from dataflow.engines.spark.engine import SparkEngine

    return SparkEngine(settings=settings, **options)


_ENGINES: dict[str, Callable[..., Engine]] = {"duckdb": _duckdb, "spark": _spark}
"""Every engine name, with the factory that imports its dependencies only when chosen."""


def engine_names() -> list[str]:
    """The names ``get_engine`` knows, sorted.

    Example:
        >>> engine_names()
        ['duckdb', 'spark']
    """
    return sorted(_ENGINES)


def get_engine(name: str, *, settings: Settings | None = None, **options: Any) -> Engine:
    """A new engine called ``name``.

    Args:
        name: ``duckdb`` or ``spark`` (docs/engines.md).
        settings: the project's settings (Spark reads its catalog, warehouse and ``spark:``).
        options: engine-specific options (DuckDB: ``memory_limit``, ``threads``).

    Raises:
        ConfigError: unknown name (with the closest known names), or an engine that cannot
            start here (one line naming what is missing and how to install it).

    Example:
        >>> get_engine("duckdb", threads=2).name
        'duckdb'
    """
    factory = _ENGINES.get(name.lower())
    if factory is None:
        close = difflib.get_close_matches(name.lower(), _ENGINES, n=2)
        hint = (
            f"did you mean {' or '.join(repr(c) for c in close)}?"
            if close
            else f"known engines: {', '.join(engine_names())}"
        )
        raise ConfigError(f"unknown engine {name!r} — {hint}")
    return factory(settings=settings, **options)


__all__ = ["engine_names", "get_engine"]
