"""Ingest throughput against the simulator with unlimited credits, and its bare-httpx baseline.

``ours``: the real ingest path — ``run_pipeline`` on a temporary project whose
``sources.twelvedata.base_url`` is a simulator running in another process (plan ``unlimited``,
batch size 1, daily and intraday series with a backfill window, indicators and snapshots for the
simulator's whole universe). Measured: responses/s, payload MB/s received, compressed MB/s
landed in the raw zone, and client CPU seconds per response (``time.process_time`` of this
process: the simulator's CPU is not in it).

``baseline``: the very same HTTP requests (read back from the run's manifest) sent with a bare
``httpx.AsyncClient`` at the same concurrency: no classification, no envelopes, no raw-zone
writes, no metadata. ``ours / baseline`` shows what the pipeline adds on top of HTTP alone.

Runs alternate (ours, baseline, ours, baseline, ...) so that drift of a noisy machine hits both;
the medians are reported.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path
from typing import Any

import httpx
from harness import (
    API_KEY,
    SimulatorProcess,
    cpu_seconds,
    log,
    median,
    ratio,
    temp_project,
    universe,
)

CONCURRENCY = 4
"""``max_concurrency`` of the client (the default) and of the baseline."""
MB = 1_000_000


def project_config(base_url: str, *, quick: bool) -> dict[str, Any]:
    """A ``dataflow.yaml`` making a few hundred responses of realistic sizes (batch size 1)."""
    indicator = {"intervals": ["1day"]}
    endpoints: dict[str, Any] = {
        "time_series": {"intervals": ["1day", "1h"] if quick else ["1day", "4h", "1h"]},
        "quote": {},
        "price": {},
        "eod": {},
        "exchange_rate": {"asset_classes": ["forex", "crypto"]},
        "rsi": {**indicator, "params": {"time_period": 14}},
        "macd": indicator,
    }
    if not quick:
        endpoints |= {
            "sma": {**indicator, "params": {"time_period": 20}},
            "ema": {**indicator, "params": {"time_period": 20}},
            "bbands": {**indicator, "params": {"time_period": 20, "sd": 2}},
        }
    return {
        "name": "bench",
        "warehouse": "warehouse",
        "sources": {
            "twelvedata": {
                "base_url": base_url,
                "plan": "unlimited",
                "symbols": universe(),
                "batch_size": 1,
                "max_concurrency": CONCURRENCY,
                "history_start": (dt.date.today() - dt.timedelta(days=365)).isoformat(),
                "intraday_history_days": 60,
                "endpoints": endpoints,
            }
        },
        "logging": {"level": "INFO"},
    }


def _server_cpu(sim: SimulatorProcess, before: float | None) -> float | None:
    after = sim.cpu_seconds()
    return None if before is None or after is None else after - before


def _run_ours(project: Path, *, warmup: bool = False) -> dict[str, Any]:
    """One full-refresh ``run_pipeline``; returns its measures."""
    from dataflow.config import load_settings
    from dataflow.pipeline import RunOptions, run_pipeline

    # the key comes from TWELVEDATA_API_KEY, as a user would set it (only this variable is seen)
    settings = load_settings(project, env={"TWELVEDATA_API_KEY": API_KEY})
    options = RunOptions(full_refresh=True, endpoints=["price"] if warmup else None)
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    result = run_pipeline(settings, options)
    cpu, wall = cpu_seconds() - cpu0, time.perf_counter() - wall0
    ingest = result.results["ingest"]
    client = ingest.details["client"]
    landed = _landed_bytes(settings, result.run.run_id)
    responses = sum(client["responses_by_status"].values())
    return {
        "run_id": result.run.run_id,
        "status": result.status,
        "responses": responses,
        "responses_by_status": client["responses_by_status"],
        "wall_s": wall,
        "ingest_s": float(ingest.details["seconds"]),
        "cpu_s": cpu,
        "payload_bytes": int(client["bytes_received"]),
        "landed_bytes": landed,
        "landed_bytes_reported": int(ingest.bytes),
        "rows": int(ingest.rows),
        "files": int(ingest.details["files"]),
    }


def _landed_bytes(settings: Any, run_id: str) -> int:
    """Compressed bytes of the run's files in the raw zone, as listed by the store."""
    from dataflow.storage import list_raw, open_store

    return sum(info.size for info in list_raw(open_store(settings)) if info.run_id == run_id)


def _requests_of_run(project: Path, run_id: str) -> list[tuple[str, dict[str, str]]]:
    """(path, params) of every request of a run, read back from its manifest."""
    from dataflow.config import load_settings
    from dataflow.storage import open_store, read_manifest

    settings = load_settings(project, env={"TWELVEDATA_API_KEY": API_KEY})
    manifest = read_manifest(open_store(settings), "twelvedata", run_id)
    return [(r.path, {k: str(v) for k, v in r.params.items()}) for r in manifest.requests]


async def _bare_httpx(base_url: str, requests: list[tuple[str, dict[str, str]]]) -> dict[str, Any]:
    """Send ``requests`` with a plain pooled httpx client, ``CONCURRENCY`` at a time."""
    queue: asyncio.Queue[tuple[str, dict[str, str]]] = asyncio.Queue()
    for item in requests:
        queue.put_nowait(item)
    received = 0
    statuses: dict[str, int] = {}
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    headers = {"Authorization": f"apikey {API_KEY}", "Accept": "application/json"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits) as client:

        async def worker() -> None:
            nonlocal received
            while not queue.empty():
                path, params = queue.get_nowait()
                answer = await client.get(path, params=params)
                body = await answer.aread()
                received += len(body)
                key = str(answer.status_code)
                statuses[key] = statuses.get(key, 0) + 1

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return {"payload_bytes": received, "responses_by_status": statuses}


def _run_baseline(base_url: str, requests: list[tuple[str, dict[str, str]]]) -> dict[str, Any]:
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    out = asyncio.run(_bare_httpx(base_url, requests))
    out.update(
        responses=len(requests), wall_s=time.perf_counter() - wall0, cpu_s=cpu_seconds() - cpu0
    )
    return out


def run(*, quick: bool = False) -> dict[str, Any]:
    """Run the throughput benchmark; returns its figures (see the module docstring)."""
    rounds = 2 if quick else 5
    ours: list[dict[str, Any]] = []
    base: list[dict[str, Any]] = []
    with SimulatorProcess() as sim, temp_project(project_config("http://x", quick=quick)) as tmp:
        # the simulator's port is only known now: rewrite the config with its URL
        import yaml

        (tmp / "dataflow.yaml").write_text(
            yaml.safe_dump(project_config(sim.url, quick=quick), sort_keys=False)
        )
        log("ingest: warm-up run (imports, metadata DB migration)")
        _run_ours(tmp, warmup=True)
        requests: list[tuple[str, dict[str, str]]] = []
        for i in range(rounds):
            log(f"ingest: round {i + 1}/{rounds}: run_pipeline")
            server_cpu = sim.cpu_seconds()
            ours.append(_run_ours(tmp))
            ours[-1]["server_cpu_s"] = _server_cpu(sim, server_cpu)
            if not requests:
                requests = _requests_of_run(tmp, ours[-1]["run_id"])
            log(f"ingest: round {i + 1}/{rounds}: bare httpx, {len(requests)} requests")
            server_cpu = sim.cpu_seconds()
            base.append(_run_baseline(sim.url, requests))
            base[-1]["server_cpu_s"] = _server_cpu(sim, server_cpu)
        server = sim.stats()
    return _figures(ours, base, server)


def _figures(
    ours: list[dict[str, Any]], base: list[dict[str, Any]], server: dict[str, Any]
) -> dict[str, Any]:
    def med(runs: list[dict[str, Any]], key: str) -> float:
        return median([float(r[key]) for r in runs])

    responses = int(med(ours, "responses"))
    ours_rps = median([r["responses"] / r["wall_s"] for r in ours])
    base_rps = median([r["responses"] / r["wall_s"] for r in base])
    ours_cpu = median([r["cpu_s"] / r["responses"] for r in ours])
    base_cpu = median([r["cpu_s"] / r["responses"] for r in base])
    ours_payload_mbs = median([r["payload_bytes"] / r["wall_s"] / MB for r in ours])
    base_payload_mbs = median([r["payload_bytes"] / r["wall_s"] / MB for r in base])
    landed_mbs = median([r["landed_bytes"] / r["wall_s"] / MB for r in ours])

    def busy(runs: list[dict[str, Any]], key: str) -> float | None:
        """Median share of one core the process was busy during the runs."""
        shares = [r[key] / r["wall_s"] for r in runs if r.get(key) is not None]
        return round(median(shares), 3) if shares else None

    return {
        "rounds": len(ours),
        "concurrency": CONCURRENCY,
        "responses_per_run": responses,
        "responses_by_status": ours[-1]["responses_by_status"],
        "payload_bytes_per_run": int(med(ours, "payload_bytes")),
        "landed_bytes_per_run": int(med(ours, "landed_bytes")),
        "landed_bytes_reported_by_stage": int(med(ours, "landed_bytes_reported")),
        "compression_ratio": ratio(med(ours, "payload_bytes"), med(ours, "landed_bytes")),
        "rows_per_run": int(med(ours, "rows")),
        "raw_files_per_run": int(med(ours, "files")),
        "ours": {
            "wall_s": round(med(ours, "wall_s"), 3),
            "ingest_stage_s": round(med(ours, "ingest_s"), 3),
            "responses_per_s": round(ours_rps, 1),
            "payload_mb_per_s": round(ours_payload_mbs, 3),
            "landed_mb_per_s": round(landed_mbs, 3),
            "cpu_s": round(med(ours, "cpu_s"), 3),
            "cpu_ms_per_response": round(ours_cpu * 1000, 3),
            "client_cpu_busy": busy(ours, "cpu_s"),
            "simulator_cpu_busy": busy(ours, "server_cpu_s"),
        },
        "baseline_bare_httpx": {
            "wall_s": round(med(base, "wall_s"), 3),
            "responses_per_s": round(base_rps, 1),
            "payload_mb_per_s": round(base_payload_mbs, 3),
            "cpu_s": round(med(base, "cpu_s"), 3),
            "cpu_ms_per_response": round(base_cpu * 1000, 3),
            "client_cpu_busy": busy(base, "cpu_s"),
            "simulator_cpu_busy": busy(base, "server_cpu_s"),
            "responses_by_status": base[-1]["responses_by_status"],
        },
        "ratio_responses_per_s": ratio(ours_rps, base_rps),
        "ratio_cpu_per_response": ratio(ours_cpu, base_cpu),
        "simulator_requests_total": server.get("requests"),
        "simulator_responses_by_status": server.get("responses_by_status"),
        "rounds_detail": [
            {
                "ours_wall_s": round(o["wall_s"], 3),
                "ours_cpu_s": round(o["cpu_s"], 3),
                "baseline_wall_s": round(b["wall_s"], 3),
                "baseline_cpu_s": round(b["cpu_s"], 3),
            }
            for o, b in zip(ours, base, strict=True)
        ],
    }
