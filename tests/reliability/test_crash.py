"""kill -9 at every hand-off and at random moments; a plain rerun must repair everything.

Each case: a fresh project, ``dataflow run`` killed (by a named crash point of
:mod:`dataflow.crashpoints`, or by SIGKILL from here after a seeded random delay), then
``dataflow run`` again with nothing done by hand in between, then every invariant of
:class:`Harness.check` (tables equal to a clean build from the same raw files and to an
uninterrupted run, raw zone intact, no duplicate, no stale lock, no run left running).
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest

from dataflow.crashpoints import CRASH_ENV, POINTS
from tests.reliability.harness import (
    Harness,
    base_env,
    dataflow,
    full_campaign,
    raw_files,
    report,
    runs,
    spawn,
)

QUICK_POINTS = ("ingest.after_raw_write", "publish.after_table")
NTH = {"ingest.after_raw_write": 3, "transform.after_commit": 4, "publish.after_table": 2}
"""Later hits of points reached many times in one run: land mid-way, not at the first."""
UNREACHED = {"transform.after_quarantine"}
"""Reached only when a batch has rows to quarantine; the default simulator gives none."""


def _points() -> list[str]:
    chosen = POINTS if full_campaign() else QUICK_POINTS
    return [p for p in chosen if p not in UNREACHED]


def _killed_stage(project: Path, run_id_before: set[str]) -> str:
    """The stage the killed run was in (its last stage record), from the run history."""
    for record in runs(project):
        if record.run_id in run_id_before:
            continue
        if not record.stages:
            return "startup"
        last = record.stages[-1]
        return str(last.stage) if last.status == "running" else f"after {last.stage}"
    return "before-run"


@pytest.mark.parametrize("point", _points())
def test_kill_at_crash_point_then_rerun_is_clean(harness: Harness, point: str) -> None:
    project = harness.project()
    target = f"{point}:{NTH.get(point, 1)}"
    killed = dataflow(project, "run", env=base_env(**{CRASH_ENV: target}))
    assert killed.returncode == -signal.SIGKILL, (
        f"crash point {target} was not reached\n{killed.explain()}"
    )
    stage = point.split(".", maxsplit=1)[0]
    before = raw_files(project)
    rerun = dataflow(project, "run")
    assert rerun.returncode == 0, rerun.explain()
    found = harness.check(project, before)
    report("crash_point", point=target, stage=stage, **found.as_dict())
    assert found.clean, found.as_dict()
    # The killed run is told apart from a live one: the rerun marked it interrupted.
    statuses = sorted(r.status for r in runs(project))
    killed_status = "succeeded" if point == "pipeline.after_run_record" else "interrupted"
    assert statuses == sorted([killed_status, "succeeded"]), statuses


def _random_kills() -> list[int]:
    return list(range(54 if full_campaign() else 2))


@pytest.mark.parametrize("case", _random_kills())
def test_kill_at_a_random_moment_then_rerun_is_clean(harness: Harness, case: int) -> None:
    rng = random.Random(1000 + case)
    # Odd cases kill a --full-refresh run over the tables the case before left complete: the
    # replace-everything path must survive a kill as well as a first build does.
    project = harness.project(f"random{case // 2:03d}")
    refresh = case % 2 == 1
    if refresh and not runs(project):
        first = dataflow(project, "run")
        assert first.returncode == 0, first.explain()
    known = {r.run_id for r in runs(project)}
    # Python's start-up and imports take ~1.5 s; a run of this project ~4-8 s under load.
    delay = rng.uniform(0.8, 7.0)
    proc = spawn(project, "run", *(["--full-refresh"] if refresh else []))
    time.sleep(delay)
    finished_first = proc.poll() is not None
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    stage = "finished" if finished_first else _killed_stage(project, known)
    before = raw_files(project)
    rerun = dataflow(project, "run")
    assert rerun.returncode == 0, rerun.explain()
    found = harness.check(project, before)
    report(
        "random_kill", case=case, delay=round(delay, 3), full_refresh=refresh, stage=stage,
        **found.as_dict(),
    )  # fmt: skip
    assert found.clean, found.as_dict()
