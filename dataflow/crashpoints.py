"""Named crash points at the pipeline's hand-offs, for the reliability suite (test-only).

Every hand-off where one durable step follows another (raw file written -> manifest -> watermark;
data files -> commit with bookmark; audit -> quality -> publish; publish -> crawl; commit -> run
record) calls :func:`crashpoint` with a dotted name. Unless the environment variable
``DATAFLOW_CRASH_AT`` names that point, the call returns at once (one dictionary look-up: the
variable is read once per process). When it does, the process kills itself with ``SIGKILL`` —
no ``finally``, no ``atexit``, no flush: the same as a power cut or ``kill -9`` at that line.

``DATAFLOW_CRASH_AT=<name>[:<nth>]`` kills on the ``nth`` time the point is reached (default: the
first). ``tests/reliability/`` kills ``dataflow run`` at each point, reruns it, and checks that
the tables equal those of an uninterrupted run (docs/reliability.md).

Example:
    >>> crashpoint("transform.after_data_files")   # DATAFLOW_CRASH_AT unset: nothing happens
    >>> parse_target("ingest.after_raw_write:3")
    ('ingest.after_raw_write', 3)
"""

from __future__ import annotations

import os
import signal
import sys

CRASH_ENV = "DATAFLOW_CRASH_AT"

POINTS = (
    "ingest.after_raw_write",
    "ingest.after_manifest",
    "ingest.after_watermark",
    "ingest.before_final_manifest",
    "transform.after_quarantine",
    "transform.before_commit",
    "transform.after_commit",
    "quality.after_audit",
    "quality.after_stage",
    "publish.after_table",
    "publish.after_stage",
    "crawl.after_stage",
    "pipeline.after_stage_record",
    "pipeline.before_run_record",
    "pipeline.after_run_record",
)
"""Every crash point the code calls, in data order (the reliability suite kills at each)."""


def parse_target(value: str) -> tuple[str, int]:
    """``"name[:nth]"`` -> ``(name, nth)``; nth defaults to 1.

    Example:
        >>> parse_target("publish.after_table")
        ('publish.after_table', 1)
    """
    name, _, nth = value.strip().partition(":")
    return name, int(nth) if nth.isdigit() and int(nth) > 0 else 1


_TARGET: tuple[str, int] | None = (
    parse_target(os.environ[CRASH_ENV]) if os.environ.get(CRASH_ENV) else None
)
_hits = [0]  # times the named point was reached in this process


def crashpoint(name: str) -> None:
    """Kill this process with SIGKILL if ``DATAFLOW_CRASH_AT`` names this point (see module)."""
    if _TARGET is None or _TARGET[0] != name:
        return
    _hits[0] += 1
    if _hits[0] < _TARGET[1]:
        return
    sys.stderr.write(f"crash point {name} reached ({_hits[0]}): SIGKILL\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


__all__ = ["CRASH_ENV", "POINTS", "crashpoint", "parse_target"]
