"""The stage contract: what the runner gives a stage and what a stage gives back.

The runner (:mod:`dataflow.pipeline`) and every stage (ingest, transform, quality, publish,
crawl) import these from here, so no stage imports the runner and the runner imports stages only
to list them (:func:`dataflow.pipeline.default_stages`).

Example:
    >>> StageResult(rows=3).status
    'succeeded'
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pathlib import Path

    from dataflow.config import Settings
    from dataflow.metadata import MetadataDB
    from dataflow.monitor.metrics import Metrics
    from dataflow.storage import ObjectStore


@dataclass
class RunOptions:
    """What the user asked of this run (CLI flags)."""

    start: dt.datetime | None = None
    end: dt.datetime | None = None
    full_refresh: bool = False
    endpoints: Sequence[str] | None = None
    symbols: Sequence[str] | None = None
    trigger: str = "cli"
    progress: bool = False
    """Show a live progress bar on the console."""


@dataclass
class StageResult:
    """What a stage reports back to the runner."""

    status: str = "succeeded"
    rows: int = 0
    bytes: int = 0
    requests: int = 0
    errors: int = 0
    message: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunContext:
    """Everything a stage needs; stages talk to storage and metadata only through these."""

    settings: Settings
    run_id: str
    options: RunOptions
    store: ObjectStore
    db: MetadataDB
    metrics: Metrics
    log_dir: Path


class Stage(Protocol):
    """A pipeline stage: a name and a run method."""

    name: str

    def run(self, ctx: RunContext) -> StageResult: ...


__all__ = ["RunContext", "RunOptions", "Stage", "StageResult"]
