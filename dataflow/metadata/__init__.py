"""The metadata database: run history, watermarks and the project lock.

Example:
    >>> from dataflow.metadata import RunStore, new_run_id, open_metadata
    >>> store = RunStore(open_metadata("sqlite://"))
    >>> store.start_run(new_run_id(), pipeline="demo").status
    'running'
"""

from dataflow.metadata.db import MetadataDB, head_revision, open_metadata
from dataflow.metadata.lock import ProjectLock
from dataflow.metadata.runs import (
    RUN_STATUSES,
    STAGE_STATUSES,
    RunRecord,
    RunStore,
    StageRecord,
    new_run_id,
)
from dataflow.metadata.watermarks import WatermarkKey, WatermarkStore

__all__ = [
    "RUN_STATUSES",
    "STAGE_STATUSES",
    "MetadataDB",
    "ProjectLock",
    "RunRecord",
    "RunStore",
    "StageRecord",
    "WatermarkKey",
    "WatermarkStore",
    "head_revision",
    "new_run_id",
    "open_metadata",
]
