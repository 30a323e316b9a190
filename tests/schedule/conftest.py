"""Scheduler test seams: a fake clock and a runner of scripted runs (no processes)."""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from dataflow.config import JobSpec, Settings, load_settings
from dataflow.metadata import open_metadata
from dataflow.schedule.store import FireStore

T0 = dt.datetime(2024, 6, 3, 12, 0, tzinfo=dt.UTC)  # a Monday, on the minute


class FakeClock:
    """Time that moves only when the scheduler sleeps."""

    def __init__(self, start: dt.datetime = T0) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=max(seconds, 0.001))


class ScaledClock:
    """Real time, sped up: one real second is ``factor`` scheduler seconds."""

    def __init__(self, factor: float) -> None:
        self.factor = factor
        self.start = dt.datetime.now(dt.UTC)
        self.mono = time.monotonic()

    def __call__(self) -> dt.datetime:
        elapsed = (time.monotonic() - self.mono) * self.factor
        return self.start + dt.timedelta(seconds=elapsed)

    def sleep(self, seconds: float) -> None:
        time.sleep(max(seconds, 0.0) / self.factor)


@dataclass
class ScriptedRun:
    """A run that ends ``duration`` fake seconds after it started, with ``exit_code``."""

    clock: FakeClock
    job: str
    started: dt.datetime
    duration: float
    exit_code: int
    terminated: bool = False
    pid: int | None = None

    def poll(self) -> int | None:
        if self.terminated:
            return -15
        if self.clock() >= self.started + dt.timedelta(seconds=self.duration):
            return self.exit_code
        return None

    def terminate(self) -> None:
        self.terminated = True

    def kill(self) -> None:
        self.terminated = True

    def message(self) -> str | None:
        return f"{self.job} failed on purpose" if self.exit_code else None


@dataclass
class ScriptedRunner:
    """Starts scripted runs: per job, a list of (duration, exit code), the last one repeating."""

    clock: FakeClock
    plan: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    started: list[tuple[str, dt.datetime, dict[str, str]]] = field(default_factory=list)
    runs: list[ScriptedRun] = field(default_factory=list)

    def __call__(self, job: JobSpec, env: Mapping[str, str]) -> ScriptedRun:
        script = self.plan.get(job.name, [(1.0, 0)])
        index = sum(1 for name, _, _ in self.started if name == job.name)
        duration, code = script[min(index, len(script) - 1)]
        self.started.append((job.name, self.clock(), dict(env)))
        run = ScriptedRun(self.clock, job.name, self.clock(), duration, code)
        self.runs.append(run)
        return run

    def starts(self, job: str) -> list[dt.datetime]:
        return [when for name, when, _ in self.started if name == job]


def make_settings(project: Path, jobs: list[dict[str, Any]], **schedule: Any) -> Settings:
    """Settings of a project folder whose dataflow.yaml holds these jobs."""
    config = {"schedule": {"jobs": jobs, **schedule}}
    (project / "dataflow.yaml").write_text(yaml.safe_dump(config))
    return load_settings(project, env={})


@pytest.fixture
def sch_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sch_runner(sch_clock: FakeClock) -> ScriptedRunner:
    return ScriptedRunner(sch_clock)


@pytest.fixture
def sch_project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    return project


@pytest.fixture
def sch_store() -> Iterator[Any]:
    """Opens the FireStore of a settings object; closes all at the end."""
    opened: list[FireStore] = []

    def open_store(settings: Settings) -> FireStore:
        store = FireStore(open_metadata(settings.metadata_url))
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        store.db.dispose()


@pytest.fixture
def sch_cli_argv() -> list[str]:
    """argv prefix running the real `dataflow` CLI in a fresh interpreter."""
    return [sys.executable, "-m", "dataflow"]


@pytest.fixture
def sch_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAFLOW")}
    env["COLUMNS"] = "200"
    return env
