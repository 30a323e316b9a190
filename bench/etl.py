"""ETL throughput: our transform into Iceberg against hand-written DuckDB and pandas baselines.

Input: ``--rows`` bars of ``/time_series`` made by the simulator's own generator (``Market`` and
the ``time_series`` endpoint function, no HTTP), in pages of up to 5000 bars for every instrument
of its universe and the intervals ``1min 5min 15min 1h 1day`` (paging back in time with
``end_date``), wrapped with ``make_envelope`` exactly as ingest does (``timezone=UTC`` asked) and
written by ``RawWriter`` with the raw-zone defaults (500 envelopes or 8 MB per gzip file) into the
warehouse of a temporary project. Every contender reads the same files, each in a fresh child
process (``python bench/etl.py --child NAME``) that reports its own wall time, CPU time and peak
RSS (``VmHWM``), so memory figures are per contender and imports are not timed.

* ``ours``: ``run_pipeline(settings, RunOptions(), stages=[TransformStage(["time_series"])])``
  on an empty catalog: flatten, the ``time_series.sql`` model, quarantine split, upsert into the
  Iceberg table with its bookmark (lock, run record and metrics included).
* ``duckdb``: one ``COPY (SELECT ...) TO 'out.parquet'`` over ``read_json`` of the same files:
  unnest ``payload.values``, ``TRY_CAST`` the strings to DOUBLE/BIGINT, the datetime to
  TIMESTAMPTZ, zstd Parquet like Iceberg's; no catalog, no upsert, no quarantine.
* ``pandas``: ``json.loads`` per envelope, ``pandas.json_normalize`` per file, ``to_numeric`` and
  ``to_datetime``, ``to_parquet``. Skipped (and said so) when pandas is not installed: it is not
  a dependency of Dataflow.
* ``incremental``: after ``ours``, about 1% more rows land as new raw files of a later run (the
  bars since the newest one, that one included: it was still open, so it is an update), and
  ``ours`` runs again; its wall time over the full run's is the figure (target <= 0.05).

Throughput is rows/s of output and MB/s of raw JSON (the uncompressed envelopes, read from the
gzip trailers). Targets: ours >= 0.8x DuckDB's rows/s at 5M rows, peak RSS < 1.5 GB, incremental
<= 5% of the full run. ``python bench/etl.py --rows 5000000`` runs the full-size check;
``--profile`` also prints a cProfile of ``ours`` to stderr; ``--input DIR`` keeps the generated
raw files in ``DIR`` and reuses them on the next run of the same size; ``--no-pandas`` skips the
pandas baseline.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import REPO, log, ratio, temp_project

ROWS = 1_000_000
ROWS_QUICK = 200_000
ROWS_TARGET = 5_000_000
"""The input size the throughput target is stated for."""
TARGET_RATIO = 0.8
TARGET_RSS_MB = 1500.0
TARGET_INCREMENTAL = 0.05
INCREMENTAL_SHARE = 0.01
INTERVALS = ("1min", "5min", "15min", "1h", "1day")
PAGE = 5000
"""The API's largest ``outputsize``: one response per page."""
NOW = dt.datetime(2024, 6, 14, 18, tzinfo=dt.UTC)
"""Fixed clock of the generator (a Friday, US market open): the same input on every run."""
MB = 1_000_000
RAW_GLOB = "raw/twelvedata/time_series/*/*.jsonl.gz"
META = (
    "symbol", "interval", "currency", "exchange_timezone", "exchange", "mic_code", "type",
    "currency_base", "currency_quote",
)  # fmt: skip
VALUES = ("datetime", "open", "high", "low", "close", "volume")
STAGE_FIGURES = ("files", "rows_in", "rows_out", "replaced", "quarantined", "commits", "seconds")


# --- input --------------------------------------------------------------------------------------


@dataclass
class _Series:
    symbol: str
    interval: str
    newest: str | None = None
    oldest: str | None = None
    done: bool = False


class Generator:
    """Simulator bars -> envelopes -> raw files, in the warehouse ``root`` (a folder)."""

    def __init__(self, root: Path) -> None:
        from dataflow.sources.twelvedata.simulator.catalog import default_catalog
        from dataflow.sources.twelvedata.simulator.market import Market
        from dataflow.storage import LocalStore

        self.store = LocalStore(str(root))
        self.catalog = default_catalog()
        self.market = Market(seed=42)
        self.series = [
            _Series(inst.symbol, interval)
            for interval in INTERVALS
            for inst in self.catalog.instruments
        ]
        self._requests = 0

    def _payload(self, series: _Series, params: dict[str, str], now: dt.datetime) -> Any:
        from dataflow.sources.twelvedata.simulator.endpoints import Context, time_series
        from dataflow.sources.twelvedata.simulator.params import ApiProblem, Query

        inst = self.catalog.lookup(series.symbol)
        assert inst is not None
        try:
            return time_series(inst, Query(params), Context(self.catalog, self.market, now))
        except ApiProblem:
            return None  # no bars before the instrument's listing date: the series is exhausted

    def _land(self, writer: Any, params: dict[str, str], payload: Any, now: dt.datetime) -> None:
        from dataflow.storage import make_envelope

        self._requests += 1
        writer.add(
            make_envelope(
                source="twelvedata", endpoint="time_series", path="/time_series", params=params,
                status_code=200, headers={"api-credits-used": "1", "content-type":
                "application/json; charset=utf-8"}, body=b"", parsed=payload,
                received_at=now + dt.timedelta(milliseconds=self._requests), run_id=writer.run_id,
                request_id=f"q{self._requests:07d}", symbols=[params["symbol"]],
            )
        )  # fmt: skip

    def full(self, rows: int, run_id: str) -> int:
        """Land ``rows`` bars, pages taken round-robin over the series; returns the rows landed."""
        from dataflow.storage import RawWriter

        writer = RawWriter(self.store, source="twelvedata", run_id=run_id, ingest_date=NOW.date())
        left = rows
        while left > 0 and any(not s.done for s in self.series):
            for series in self.series:
                if left <= 0:
                    break
                if series.done:
                    continue
                params = {"symbol": series.symbol, "interval": series.interval,
                          "outputsize": str(min(PAGE, left)), "timezone": "UTC"}  # fmt: skip
                if series.oldest is not None:
                    params["end_date"] = series.oldest  # exclusive: pages do not overlap
                payload = self._payload(series, params, NOW)
                values = payload["values"] if payload else []
                if len(values) < int(params["outputsize"]):
                    series.done = True
                if not values:
                    continue
                series.newest = series.newest or values[0]["datetime"]
                series.oldest = values[-1]["datetime"]
                left -= len(values)
                self._land(writer, params, payload, NOW)
        writer.flush()
        return rows - left

    def incremental(self, rows: int, run_id: str) -> int:
        """Land about ``rows`` bars newer than each landed series' newest, that one included.

        The clock moves on until the series together have about ``rows`` new bars (the markets'
        hours make it a search); the newest bar landed before is re-sent completed: an update.
        """
        from dataflow.storage import RawWriter

        landed = [s for s in self.series if s.newest is not None]
        hours = 1.0
        answers: list[tuple[dict[str, str], Any]] = []
        for _ in range(12):
            now = NOW + dt.timedelta(hours=hours)
            answers = []
            for series in landed:
                assert series.newest is not None
                params = {"symbol": series.symbol, "interval": series.interval,
                          "start_date": series.newest, "timezone": "UTC"}  # fmt: skip
                payload = self._payload(series, params, now)
                if payload:
                    answers.append((params, payload))
            count = sum(len(payload["values"]) for _, payload in answers)
            if abs(count - rows) <= 0.1 * rows:
                break
            hours *= min(8.0, max(0.125, rows / max(count, 1)))
        writer = RawWriter(self.store, source="twelvedata", run_id=run_id, ingest_date=now.date())
        for params, payload in answers:
            self._land(writer, params, payload, now)
        writer.flush()
        return sum(len(payload["values"]) for _, payload in answers)


def raw_sizes(warehouse: Path) -> tuple[int, int, int]:
    """(files, gzip bytes, uncompressed JSON bytes) of the time_series raw files."""
    files = sorted(warehouse.glob(RAW_GLOB))
    packed = plain = 0
    for path in files:
        packed += path.stat().st_size
        with path.open("rb") as stream:
            stream.seek(-4, 2)  # gzip trailer: uncompressed size mod 2**32 (files are < 4 GB)
            plain += int.from_bytes(stream.read(4), "little")
    return len(files), packed, plain


# --- contenders, each in its own child process --------------------------------------------------


def _peak_rss_mb() -> float:
    """This process's peak resident set (``VmHWM``), in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / MB
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB


def _child_ours(project: Path, profile: bool) -> dict[str, Any]:
    import importlib

    # The libraries are imported before the clock starts, as the baselines' are (pyiceberg's
    # Arrow file IO, which pulls in pyarrow.dataset, included: ~0.2 s, once per process).
    for module in (
        "pyiceberg.catalog.sql", "pyiceberg.io.pyarrow", "dataflow.engines.duckdb",
        "dataflow.transform.writer",
    ):  # fmt: skip
        importlib.import_module(module)
    from dataflow.catalog.iceberg import load_table, open_catalog
    from dataflow.config import load_settings
    from dataflow.pipeline import RunOptions, run_pipeline
    from dataflow.transform.stage import TransformStage

    settings = load_settings(project, env={})
    stages = [TransformStage(tables=["time_series"])]
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if profiler is not None:
        profiler.enable()
    result = run_pipeline(settings, RunOptions(), stages=stages)
    if profiler is not None:
        profiler.disable()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    if profiler is not None:
        import pstats

        for order in ("cumulative", "tottime"):
            pstats.Stats(profiler, stream=sys.stderr).sort_stats(order).print_stats(30)
    stage = result.results["transform"]
    table_stats = stage.details["tables"].get("time_series", {})
    table = load_table(open_catalog(settings), settings.catalog.namespace, "time_series")
    snapshot = table.current_snapshot() if table is not None else None
    summary = snapshot.summary if snapshot is not None and snapshot.summary else None
    return {
        "status": result.status,
        "wall_s": wall,
        "cpu_s": cpu,
        "rows": int(stage.rows),
        "stage": {k: table_stats.get(k) for k in STAGE_FIGURES},
        "table_rows": int(str(summary["total-records"])) if summary else None,
        "table_data_files": int(str(summary["total-data-files"])) if summary else None,
    }  # fmt: skip


DUCKDB_SQL = """
COPY (
    SELECT
        e.payload.meta.symbol AS symbol,
        e.payload.meta.interval AS interval,
        timezone('UTC', TRY_CAST(v.datetime AS TIMESTAMP)) AS ts,
        TRY_CAST(v.open AS DOUBLE) AS open,
        TRY_CAST(v.high AS DOUBLE) AS high,
        TRY_CAST(v.low AS DOUBLE) AS low,
        TRY_CAST(v.close AS DOUBLE) AS close,
        TRY_CAST(v.volume AS BIGINT) AS volume,
        e.payload.meta.exchange AS exchange,
        e.payload.meta.mic_code AS mic_code,
        e.payload.meta.currency AS currency,
        e.payload.meta.type AS instrument_type,
        e.payload.meta.currency_base AS currency_base,
        e.payload.meta.currency_quote AS currency_quote,
        e.payload.meta.exchange_timezone AS exchange_timezone,
        e.filename AS _raw_key,
        CAST(e.received_at AS TIMESTAMPTZ) AS _received_at
    FROM read_json(
        $glob, format = 'newline_delimited', compression = 'gzip', filename = true,
        columns = {received_at: 'VARCHAR', payload: $payload}
    ) AS e, unnest(e.payload."values") AS u(v)
) TO $out (FORMAT parquet, COMPRESSION zstd)
"""
"""The DuckDB baseline: what one would write by hand for this one shape (UTC asked by ingest)."""


def _duckdb_payload_type() -> str:
    meta = ", ".join(f'"{name}" VARCHAR' for name in META)
    values = ", ".join(f'"{name}" VARCHAR' for name in VALUES)
    return f'STRUCT(meta STRUCT({meta}), "values" STRUCT({values})[], status VARCHAR)'


def _child_duckdb(project: Path) -> dict[str, Any]:
    import duckdb

    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    out = project / "baseline-duckdb.parquet"
    params = {
        "glob": str(project / "warehouse" / RAW_GLOB),
        "payload": _duckdb_payload_type(),
        "out": str(out),
    }
    cpu0, wall0 = time.process_time(), time.perf_counter()
    found = con.execute(DUCKDB_SQL, params).fetchone()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    rows = int(found[0]) if found else 0
    return {"wall_s": wall, "cpu_s": cpu, "rows": rows, "parquet_bytes": out.stat().st_size}


def _child_pandas(project: Path) -> dict[str, Any]:
    import gzip

    import pandas as pd  # type: ignore[import-not-found,import-untyped,unused-ignore]

    files = sorted((project / "warehouse").glob(RAW_GLOB))
    out = project / "baseline-pandas.parquet"
    cpu0, wall0 = time.process_time(), time.perf_counter()
    frames = []
    for path in files:
        envelopes = [json.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()]
        frame = pd.json_normalize(
            envelopes,
            record_path=["payload", "values"],
            meta=["received_at", *(["payload", "meta", name] for name in META)],
            errors="ignore",
        )
        frame["_raw_key"] = str(path)
        frames.append(frame)
    data = pd.concat(frames, ignore_index=True)
    data = data.rename(columns={f"payload.meta.{name}": name for name in META})
    data = data.rename(columns={"type": "instrument_type"})
    data["_received_at"] = pd.to_datetime(data.pop("received_at"), utc=True)
    for name in ("open", "high", "low", "close"):
        data[name] = pd.to_numeric(data[name], errors="coerce")
    data["volume"] = pd.to_numeric(data["volume"], errors="coerce").astype("Int64")
    data["ts"] = pd.to_datetime(data.pop("datetime"), format="mixed", utc=True)
    data.to_parquet(out, engine="pyarrow", compression="zstd", index=False)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {"wall_s": wall, "cpu_s": cpu, "rows": len(data), "parquet_bytes": out.stat().st_size}


def child_main(name: str, project: Path, profile: bool) -> None:
    """Run one contender and print its figures (one JSON line) on stdout."""
    if name == "ours":
        figures = _child_ours(project, profile)
    elif name == "duckdb":
        figures = _child_duckdb(project)
    else:
        figures = _child_pandas(project)
    figures["peak_rss_mb"] = round(_peak_rss_mb(), 1)
    print(json.dumps(figures))


def _run_child(name: str, project: Path, *, profile: bool = False) -> dict[str, Any]:
    """Run a contender in a fresh interpreter; its figures, or ``{"error": ...}``."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        name,
        "--project",
        str(project),
    ]
    cmd += ["--profile"] if profile else []
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True, check=False)
    process_s = round(time.perf_counter() - started, 3)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"error": f"exit status {done.returncode}", "process_s": process_s}
    figures: dict[str, Any] = json.loads(lines[-1])
    figures["process_s"] = process_s
    return figures


def _pandas_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("pandas") is not None


# --- the benchmark ------------------------------------------------------------------------------


def _rates(figures: dict[str, Any], raw_bytes: int) -> dict[str, Any]:
    if "error" in figures or "skipped" in figures:
        return figures
    wall = figures["wall_s"]
    return {
        **figures,
        "wall_s": round(wall, 3),
        "cpu_s": round(figures["cpu_s"], 3),
        "rows_per_s": round(figures["rows"] / wall),
        "raw_mb_per_s": round(raw_bytes / wall / MB, 2),
    }


def run(
    *,
    quick: bool = False,
    rows: int | None = None,
    profile: bool = False,
    input_dir: Path | None = None,
    pandas: bool = True,
) -> dict[str, Any]:
    """Generate the input, run the contenders and the incremental run; returns the figures.

    ``input_dir``: keep the generated raw files there and reuse them on the next run with the
    same ``rows`` (generating 5M rows takes ~2.5 min; the input is the same on every run, the
    generator's clock and seed being fixed). ``pandas=False`` skips the pandas baseline.

    Example:
        >>> run(rows=20_000)["pass"]  # doctest: +SKIP
        {'ratio_to_duckdb': False, 'peak_rss': True, 'incremental': True}
    """
    rows = rows or (ROWS_QUICK if quick else ROWS)
    config = {"name": "bench-etl", "warehouse": "warehouse", "logging": {"level": "WARNING"}}
    with temp_project(config) as project:
        warehouse = project / "warehouse"
        source = input_dir if input_dir is not None else project / "input"
        landed, added, generate_s = _input(source, rows)
        shutil.copytree(source / "full" / "raw", warehouse / "raw", dirs_exist_ok=True)
        files, packed, plain = raw_sizes(warehouse)
        log(f"etl: {files} raw files, {plain / MB:.0f} MB of JSON ({packed / MB:.0f} MB gzip)")
        _warm_up(project)
        results: dict[str, Any] = {}
        log("etl: duckdb baseline")
        results["duckdb"] = _rates(_run_child("duckdb", project), plain)
        if pandas and _pandas_available():
            log("etl: pandas baseline")
            results["pandas"] = _rates(_run_child("pandas", project), plain)
        else:
            log("etl: pandas baseline skipped")
            results["pandas"] = {"skipped": "pandas is not installed (not a Dataflow dependency)"
                                 if pandas else "--no-pandas"}  # fmt: skip
        log("etl: ours (TransformStage into Iceberg, empty table)")
        results["ours"] = _rates(_run_child("ours", project, profile=profile), plain)
        shutil.copytree(source / "incr" / "raw", warehouse / "raw", dirs_exist_ok=True)
        files2, _, plain2 = raw_sizes(warehouse)
        log(f"etl: incremental: {added:,} more bars in {files2 - files} raw file(s)")
        incremental = _rates(_run_child("ours", project), plain2 - plain)
    return _figures(
        rows=landed, files=files, packed=packed, plain=plain, generate_s=generate_s,
        results=results, incremental=incremental, added=added, added_files=files2 - files,
        added_bytes=plain2 - plain,
    )  # fmt: skip


def _input(folder: Path, rows: int) -> tuple[int, int, float]:
    """(rows landed, incremental rows, seconds generating): the raw files under ``folder``.

    ``folder/full`` holds the first run's raw files, ``folder/incr`` the incremental run's
    (both generated up front: the generator's state does not depend on the transform), and
    ``folder/input.json`` what they are; an existing folder made for the same ``rows`` is
    reused as it is.
    """
    from dataflow.storage import LocalStore

    described = folder / "input.json"
    if described.exists():
        found = json.loads(described.read_text())
        if found.get("rows") == rows:
            log(f"etl: reusing the input in {folder} ({found['landed']:,} bars)")
            return int(found["landed"]), int(found["added"]), float(found["generate_s"])
    shutil.rmtree(folder, ignore_errors=True)
    log(f"etl: generating {rows:,} bars of time_series (simulator, no HTTP)")
    t0 = time.perf_counter()
    generator = Generator(folder / "full")
    landed = generator.full(rows, run_id="20240614T180000Z-full")
    generate_s = time.perf_counter() - t0
    log(f"etl: generated in {generate_s:.1f} s")
    generator.store = LocalStore(str(folder / "incr"))
    wanted = max(1, math.ceil(landed * INCREMENTAL_SHARE))
    added = generator.incremental(wanted, run_id="20240614T190000Z-incr")
    described.write_text(
        json.dumps({"rows": rows, "landed": landed, "added": added, "generate_s": generate_s})
    )
    return landed, added, generate_s


def _warm_up(project: Path) -> None:
    """Create the metadata database (migrations) outside the timed runs, as ingest would have."""
    from dataflow.config import load_settings
    from dataflow.pipeline import run_pipeline

    run_pipeline(load_settings(project, env={}), stages=[])


def _figures(
    *,
    rows: int,
    files: int,
    packed: int,
    plain: int,
    generate_s: float,
    results: dict[str, Any],
    incremental: dict[str, Any],
    added: int,
    added_files: int,
    added_bytes: int,
) -> dict[str, Any]:
    ours, duck = results["ours"], results["duckdb"]
    ok = "error" not in ours and "error" not in duck
    speed = ratio(ours["rows_per_s"], duck["rows_per_s"]) if ok else None
    pandas = results["pandas"]
    peak = max((r["peak_rss_mb"] for r in (ours, incremental) if "peak_rss_mb" in r), default=None)
    share = (
        ratio(incremental["wall_s"], ours["wall_s"])
        if "error" not in incremental and "error" not in ours
        else None
    )
    return {
        "rows": rows,
        "raw_files": files,
        "raw_json_bytes": plain,
        "raw_gzip_bytes": packed,
        "responses_per_file": "up to 500 envelopes / 8 MB of JSON (raw-zone defaults)",
        "generate_s": round(generate_s, 1),
        "ours": ours,
        "baseline_duckdb": duck,
        "baseline_pandas": pandas,
        "ratio_rows_per_s_to_duckdb": speed,
        "ratio_rows_per_s_to_pandas": (
            ratio(ours["rows_per_s"], pandas["rows_per_s"])
            if "rows_per_s" in pandas and "rows_per_s" in ours
            else None
        ),
        "ratio_peak_rss_to_duckdb": (
            ratio(ours["peak_rss_mb"], duck["peak_rss_mb"]) if ok else None
        ),
        "incremental": {
            **incremental,
            "rows_added": added,
            "raw_files_added": added_files,
            "raw_json_bytes_added": added_bytes,
            "share_of_input": ratio(added, rows),
            "fraction_of_full_run": share,
        },
        "targets": {
            "ratio_to_duckdb": f">= {TARGET_RATIO:g} at {ROWS_TARGET:,} rows (this run: {rows:,})",
            "peak_rss_mb": f"< {TARGET_RSS_MB:g}",
            "incremental_fraction": f"<= {TARGET_INCREMENTAL:g}",
        },
        "pass": {
            "ratio_to_duckdb": speed is not None and speed >= TARGET_RATIO,
            "peak_rss": peak is not None and peak < TARGET_RSS_MB,
            "incremental": share is not None and share <= TARGET_INCREMENTAL,
        },
    }


def main(argv: list[str] | None = None) -> int:
    """``python bench/etl.py [--rows N] [--quick] [--profile]``: print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, help=f"bars to generate (default {ROWS:,})")
    parser.add_argument("--quick", action="store_true", help=f"{ROWS_QUICK:,} bars")
    parser.add_argument("--profile", action="store_true", help="cProfile ours (to stderr)")
    parser.add_argument(
        "--input", type=Path, help="keep the generated raw files in this folder and reuse them"
    )
    parser.add_argument("--no-pandas", action="store_true", help="skip the pandas baseline")
    parser.add_argument("--child", choices=("ours", "duckdb", "pandas"), help=argparse.SUPPRESS)
    parser.add_argument("--project", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_main(args.child, args.project, args.profile)
        return 0
    figures = run(
        quick=args.quick,
        rows=args.rows,
        profile=args.profile,
        input_dir=args.input.resolve() if args.input else None,
        pandas=not args.no_pandas,
    )
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
