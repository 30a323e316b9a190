"""Faults of the API and of storage: nothing lost silently, nothing half-published, reruns heal.

API faults come from the simulator's fault injection (500, 502 HTML, truncated bodies, stalls,
slow answers, 429 storms, TCP connection resets), storage faults from
:class:`dataflow.faultio.FailingFileIO` (writes that fail with ENOSPC from the n-th file on, or at
random with EIO). After the faulty run, a run against a healthy source and storage must leave the
tables equal to a fault-free run (:meth:`Harness.check`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from dataflow.sources.twelvedata.simulator import SimulatorConfig, SimulatorServer
from dataflow.sources.twelvedata.simulator.app import EXTRA_FAULT_KINDS, FAULT_KINDS
from tests.reliability.harness import (
    API_KEY,
    LINEAGE,
    NOW,
    RUN_SPECIFIC,
    TIME_OF_RECEIPT,
    Harness,
    compare,
    dataflow,
    full_campaign,
    raw_files,
    read_tables,
    report,
    runs,
)


def _edit(project: Path, change: dict[str, Any]) -> None:
    path = project / "dataflow.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    for dotted, value in change.items():
        *parents, leaf = dotted.split(".")
        node = config
        for name in parents:
            node = node.setdefault(name, {})
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    path.write_text(yaml.safe_dump(config), encoding="utf-8")


def test_the_simulator_injects_429_storms_and_connection_resets() -> None:
    for kind in EXTRA_FAULT_KINDS:
        config = SimulatorConfig(error_rate=1.0, faults=(kind,), credits_per_minute=8)
        with SimulatorServer(config) as sim:
            if kind == "429":
                answer = httpx.get(f"{sim.url}/price?symbol=AAPL")
                assert answer.status_code == 429
                assert "run out of API credits" in answer.json()["message"]
            else:
                with pytest.raises(httpx.ReadError, match="reset"):
                    httpx.get(f"{sim.url}/price?symbol=AAPL")
            assert sim.stats()["faults"] == {kind: 1}
            assert sim.stats()["credits_used"] == 0  # a fault is never charged


PROFILES: dict[str, dict[str, Any]] = {
    "error_rate_20pct_every_kind": {
        "error_rate": 0.2, "faults": FAULT_KINDS + EXTRA_FAULT_KINDS, "timeout_seconds": 3.0,
    },
    "latency_300ms_and_slow": {"latency_ms": 300.0, "error_rate": 0.3, "faults": ("slow",)},
    "429_storm": {"error_rate": 0.6, "faults": ("429",)},
    "truncated_bodies": {"error_rate": 0.4, "faults": ("truncated",)},
    "connection_resets": {"error_rate": 0.4, "faults": ("reset",)},
    "500_and_502": {"error_rate": 0.5, "faults": ("500", "502")},
}  # fmt: skip
QUICK_PROFILES = ("error_rate_20pct_every_kind",)


def _profiles() -> list[str]:
    return list(PROFILES) if full_campaign() else list(QUICK_PROFILES)


def _ingest_errors(project: Path, run_id: str) -> dict[str, int]:
    record = next(r for r in runs(project) if r.run_id == run_id)
    stage = next(s for s in record.stages if s.stage == "ingest")
    return {name: int(v.get("errors", 0)) for name, v in stage.details["endpoints"].items()}


@pytest.mark.parametrize("profile", _profiles())
def test_api_faults_are_reported_and_the_next_run_fills_the_gaps(
    harness: Harness, profile: str
) -> None:
    from dataflow.transform.models import discover_models

    # The default seed: the same market data as the reference run (it also seeds the faults).
    config = SimulatorConfig(api_key=API_KEY, now=NOW, **PROFILES[profile])
    project = harness.project(
        read_timeout=1.5, retries={"max_attempts": 2, "backoff_base": 0.05, "backoff_max": 0.1},
        minute_seconds=1.0,
    )  # fmt: skip
    with SimulatorServer(config) as faulty:
        _edit(project, {"sources.twelvedata.base_url": faulty.url})
        first = dataflow(project, "run")
        injected = faulty.stats()["faults"]
    # Today a run with failed requests ends `succeeded` (exit 0); issue 11 §1 makes it `partial`
    # (exit 1). Both are accepted here: this test is about the data.
    assert first.returncode in (0, 1), first.explain()
    assert "Traceback" not in first.stderr, first.explain()
    run_id = runs(project)[0].run_id
    errors = _ingest_errors(project, run_id)
    # Nothing is missing silently: a table short of rows has a source endpoint that reported
    # failed requests in the run's record (`dataflow runs show`).
    short = compare(
        read_tables(project), harness.reference(), LINEAGE | RUN_SPECIFIC, skip=TIME_OF_RECEIPT
    )
    sources = {m.target: m.sources for m in discover_models(project).values()}
    silent = {t: d for t, d in short.items() if not any(errors.get(e) for e in sources.get(t, ()))}
    _edit(project, {"sources.twelvedata.base_url": harness.url})
    before = raw_files(project)
    second = dataflow(project, "run")
    assert second.returncode == 0, second.explain()
    found = harness.check(project, before)
    report(
        "api_faults", profile=profile, injected=injected, first_exit=first.returncode,
        first_status=runs(project)[1].status, failed_requests=sum(errors.values()),
        tables_short_after_faulty_run=sorted(short), silently_short=sorted(silent),
        **found.as_dict(),
    )  # fmt: skip
    assert sum(injected.values()) > 0
    assert not silent, silent
    assert found.clean, found.as_dict()


WRITE_FAILURES = [3, 25, 60, 90, 110, 114]
"""The n-th Iceberg file write fails, and every later one: a clean run writes ~120 files, the
last ones in the publish stage."""
QUICK_WRITE_FAILURES = [25]


def _write_failures() -> list[str]:
    chosen = WRITE_FAILURES if full_campaign() else QUICK_WRITE_FAILURES
    return [f"from:{n}" for n in chosen] + (["rate:0.05", "rate:0.15"] if full_campaign() else [])


@pytest.mark.parametrize("failure", _write_failures())
def test_storage_write_failures_publish_nothing_half_done(harness: Harness, failure: str) -> None:
    """A full disk or failing writes under the Iceberg tables: each table's ``main`` is either
    untouched or complete, never a partial snapshot; the next healthy run is clean."""
    from dataflow.faultio import FROM, RATE, SEED

    mode, _, value = failure.partition(":")
    project = harness.project()
    props = {"py-io-impl": "dataflow.faultio.FailingFileIO", SEED: "5"}
    props[FROM if mode == "from" else RATE] = value
    _edit(project, {"catalog.properties": props})
    first = dataflow(project, "run")
    assert first.returncode == 1, first.explain()
    last = first.stderr.strip().splitlines()[-1]
    assert "injected" in last, last  # the cause is named on the last line
    failed_stage = next((s.stage for s in runs(project)[0].stages if s.status == "failed"), "none")
    # Each table as readers see it now: nothing, or exactly what a complete run publishes.
    _edit(project, {"catalog.properties": None})
    reference = harness.reference()
    half = {}
    for name, table in read_tables(project).items():
        if table.num_rows == 0 or name in TIME_OF_RECEIPT:
            continue
        diff = compare({name: table}, {name: reference[name]}, LINEAGE | RUN_SPECIFIC)
        if diff:
            half[name] = diff[name]
    before = raw_files(project)
    second = dataflow(project, "run")
    assert second.returncode == 0, second.explain()
    found = harness.check(project, before)
    report(
        "storage_faults", failure=failure, failed_stage=failed_stage, message=last[-200:],
        half_published=half, **found.as_dict(),
    )  # fmt: skip
    assert not half, half
    assert found.clean, found.as_dict()


def test_a_full_disk_is_reported_without_a_traceback(harness: Harness) -> None:
    from dataflow.faultio import FROM

    project = harness.project()
    _edit(project, {"catalog.properties": {"py-io-impl": "dataflow.faultio.FailingFileIO",
                                           FROM: "25"}})  # fmt: skip
    done = dataflow(project, "run")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr + done.stdout
