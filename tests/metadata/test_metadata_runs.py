"""Run history: lifecycle, stages, listing, prefix look-up, interrupted runs."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataflow.errors import ConfigError, MetadataError
from dataflow.metadata import MetadataDB, RunStore, new_run_id, open_metadata


@pytest.fixture
def md_db(tmp_path: Path) -> Iterator[MetadataDB]:
    db = open_metadata(f"sqlite:///{tmp_path / 'dataflow.db'}")
    yield db
    db.dispose()


@pytest.fixture
def md_runs(md_db: MetadataDB) -> RunStore:
    return RunStore(md_db)


def test_new_run_id_is_sortable_and_file_safe() -> None:
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    run_id = new_run_id()
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{4}", run_id)
    stamp = dt.datetime.strptime(run_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    assert before <= stamp <= dt.datetime.now(dt.UTC)
    assert len({new_run_id() for _ in range(50)}) > 1


def test_run_lifecycle_with_stages(md_runs: RunStore) -> None:
    run = md_runs.start_run(
        "r1", pipeline="demo", trigger="schedule", params={"start": "2024-01-01"}
    )
    assert (run.status, run.trigger, run.params, run.finished_at) == (
        "running",
        "schedule",
        {"start": "2024-01-01"},
        None,
    )
    assert run.started_at.tzinfo == dt.UTC

    md_runs.start_stage("r1", "ingest")
    stage = md_runs.finish_stage(
        "r1",
        "ingest",
        status="succeeded",
        rows=120,
        bytes=4096,
        requests=3,
        errors=0,
        details={"endpoints": ["quote"]},
    )
    assert (stage.status, stage.rows, stage.bytes, stage.requests) == ("succeeded", 120, 4096, 3)
    assert stage.duration_s is not None
    assert stage.duration_s >= 0
    assert stage.finished_at is not None
    assert stage.finished_at >= stage.started_at

    md_runs.start_stage("r1", "transform")
    md_runs.finish_stage("r1", "transform", status="failed", errors=1, message="bad SQL")
    md_runs.finish_stage("r1", "quality", status="skipped", message="transform failed")
    done = md_runs.finish_run("r1", status="failed", message="transform failed")

    assert done.status == "failed"
    assert done.finished_at is not None
    assert done.duration_s is not None
    assert done.duration_s == pytest.approx((done.finished_at - done.started_at).total_seconds())
    assert [(s.stage, s.status) for s in done.stages] == [
        ("ingest", "succeeded"),
        ("transform", "failed"),
        ("quality", "skipped"),
    ]
    assert done.stages[0].details == {"endpoints": ["quote"]}
    assert done.stages[2].duration_s == 0.0
    assert md_runs.get("r1") == done


def test_restarted_stage_starts_over_and_keeps_its_place(md_runs: RunStore) -> None:
    md_runs.start_run("r1", pipeline="p")
    md_runs.start_stage("r1", "ingest")
    md_runs.finish_stage("r1", "ingest", status="failed", errors=2)
    md_runs.start_stage("r1", "transform")
    again = md_runs.start_stage("r1", "ingest")
    assert (again.status, again.errors, again.finished_at) == ("running", 0, None)
    assert [s.stage for s in md_runs.get("r1").stages] == ["ingest", "transform"]


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda s: s.start_run("r1", pipeline="p"), "exists already"),
        (lambda s: s.start_stage("nope", "ingest"), "no run nope"),
        (lambda s: s.finish_run("nope", status="failed"), "no run nope"),
    ],
)
def test_bad_writes_are_metadata_errors(md_runs: RunStore, call: object, error: str) -> None:
    md_runs.start_run("r1", pipeline="p")
    with pytest.raises(MetadataError, match=error):
        call(md_runs)  # type: ignore[operator]


def test_unknown_statuses_are_refused(md_runs: RunStore) -> None:
    md_runs.start_run("r1", pipeline="p")
    with pytest.raises(ValueError, match="unknown run status 'done'"):
        md_runs.finish_run("r1", status="done")
    with pytest.raises(ValueError, match="unknown stage status 'running'"):
        md_runs.finish_stage("r1", "ingest", status="running")
    with pytest.raises(ConfigError, match="unknown run status 'ok'"):
        md_runs.list(status="ok")


def test_list_newest_first_with_limit_and_status(md_runs: RunStore) -> None:
    ids = ["20260101T000000Z-0001", "20260101T000001Z-0002", "20260101T000002Z-0003"]
    for run_id in ids:
        md_runs.start_run(run_id, pipeline="p")
        md_runs.start_stage(run_id, "ingest")
    md_runs.finish_run(ids[1], status="succeeded")

    assert [r.run_id for r in md_runs.list()] == ids[::-1]
    assert [r.run_id for r in md_runs.list(limit=2)] == ids[:0:-1]
    assert [r.run_id for r in md_runs.list(status="succeeded")] == [ids[1]]
    assert [len(r.stages) for r in md_runs.list()] == [1, 1, 1]


def test_get_by_unique_prefix(md_runs: RunStore) -> None:
    for run_id in ["20260101T000000Z-aaaa", "20260101T000000Z-aabb", "20260102T000000Z-cccc"]:
        md_runs.start_run(run_id, pipeline="p")
    assert md_runs.get("20260102").run_id == "20260102T000000Z-cccc"
    assert md_runs.get("20260101T000000Z-aab").run_id == "20260101T000000Z-aabb"
    with pytest.raises(MetadataError, match="ambiguous") as info:
        md_runs.get("20260101T000000Z-aa")
    assert "20260101T000000Z-aaaa" in str(info.value)
    with pytest.raises(MetadataError) as missing:
        md_runs.get("2027")
    assert str(missing.value) == "no run 2027 — see `dataflow runs`"


def test_prefix_treats_like_wildcards_literally(md_runs: RunStore) -> None:
    md_runs.start_run("a_b", pipeline="p")
    md_runs.start_run("axb", pipeline="p")
    md_runs.start_run("c%d", pipeline="p")
    assert md_runs.get("a_").run_id == "a_b"
    assert md_runs.get("c%").run_id == "c%d"
    with pytest.raises(MetadataError, match="no run %"):
        md_runs.get("%")


CHILD_START_RUN = textwrap.dedent(
    """
    import sys
    from dataflow.metadata import RunStore, open_metadata
    db = open_metadata(sys.argv[1])
    store = RunStore(db)
    store.start_run("dead-run", pipeline="p")
    store.start_stage("dead-run", "ingest")
    db.dispose()
    """
)


def test_mark_interrupted_only_touches_runs_of_dead_processes(
    md_db: MetadataDB, md_runs: RunStore
) -> None:
    url = md_db.url.render_as_string(hide_password=False)
    subprocess.run([sys.executable, "-c", CHILD_START_RUN, url], check=True, timeout=60)
    md_runs.start_run("live-run", pipeline="p")  # this process: alive
    md_runs.start_run("done-run", pipeline="p")
    md_runs.finish_run("done-run", status="succeeded")

    assert md_runs.mark_interrupted() == 1
    dead = md_runs.get("dead-run")
    assert dead.status == "interrupted"
    assert dead.message is not None
    assert "ended before the run did" in dead.message
    assert [(s.stage, s.status, s.message) for s in dead.stages] == [
        ("ingest", "failed", "interrupted")
    ]
    assert md_runs.get("live-run").status == "running"
    assert md_runs.get("done-run").status == "succeeded"
    assert md_runs.mark_interrupted() == 0
