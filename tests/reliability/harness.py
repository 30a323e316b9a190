"""The reliability harness: real `dataflow` processes, a loopback simulator, and the invariants.

Every test here runs the `dataflow` CLI as a subprocess against a Twelve Data simulator on
127.0.0.1 with a fixed clock (so two ingests of the same window get the same bars), kills or
disturbs it, reruns it normally, and then checks the same invariants (:class:`Harness.check`):

* the published tables equal those a clean ``dataflow transform`` builds from a copy of the same
  raw zone — row by row, every column but the transform's run id;
* the deterministic tables equal those of an uninterrupted reference run (own ingest), on every
  business column (lineage columns name run-specific files and times);
* every raw file gunzips and every line is a JSON envelope; no raw file that existed before the
  rerun is gone or changed (the raw zone is immutable);
* no duplicate rows on any table's key;
* the project lock is free and names no holder; no run is left ``running``.

The figures each test gathers are appended as JSON lines to ``$DATAFLOW_RELIABILITY_REPORT`` when
set (``make reliability`` sets it; docs/reliability.md records them).
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dataflow.sources.twelvedata.simulator import SimulatorServer

API_KEY = "td-reliability-7c1e9b2a"
NOW = dt.datetime(2026, 9, 1, 20, 30, tzinfo=dt.UTC)  # a Tuesday, after the New York close
SYMBOLS = {"stocks": ["AAPL", "MSFT"], "forex": ["EUR/USD"], "crypto": ["BTC/USD"]}
RUN_TIMEOUT = 240.0

LINEAGE = frozenset({"_raw_key", "_raw_line", "_record_path", "_run_id", "_received_at"})
"""Columns naming the raw file, line and time a row came from: run-specific across ingests."""
RUN_SPECIFIC = frozenset({"_run_id", "run_id", "quarantined_at"})
"""Columns naming the run that wrote a row: differ even over the same raw files."""
TIME_OF_RECEIPT = frozenset({"prices"})
"""Tables whose key is the time an answer was received (/price has no time of its own): a rerun
that asks again adds a row, so they are compared with the reference on symbols, not rows."""


def full_campaign() -> bool:
    """``make reliability`` (env DATAFLOW_RELIABILITY=full) runs every case; `make test` a few."""
    return os.environ.get("DATAFLOW_RELIABILITY", "") == "full"


def report(kind: str, **figures: Any) -> None:
    """Append one JSON line of figures to ``$DATAFLOW_RELIABILITY_REPORT`` (when set)."""
    path = os.environ.get("DATAFLOW_RELIABILITY_REPORT")
    if not path:
        return
    line = json.dumps({"kind": kind, **figures}, sort_keys=True, default=str)
    with open(path, "a", encoding="utf-8") as out:
        out.write(line + "\n")


@dataclass
class Proc:
    """A finished `dataflow` process."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def explain(self) -> str:
        return f"{self.args} -> {self.returncode}\n{self.stdout[-3000:]}\n{self.stderr[-3000:]}"


@dataclass
class Findings:
    """What :meth:`Harness.check` counted on one project."""

    tables: int = 0
    rows: int = 0
    raw_files: int = 0
    envelopes: int = 0
    corrupt_raw: list[str] = field(default_factory=list)
    lost_raw: list[str] = field(default_factory=list)
    changed_raw: list[str] = field(default_factory=list)
    duplicates: dict[str, int] = field(default_factory=dict)
    differences_replay: dict[str, str] = field(default_factory=dict)
    differences_reference: dict[str, str] = field(default_factory=dict)
    stale_lock: str | None = None
    running_runs: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (
            self.corrupt_raw or self.lost_raw or self.changed_raw or self.duplicates
            or self.differences_replay or self.differences_reference or self.stale_lock
            or self.running_runs
        )  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "clean": self.clean}


def write_project(root: Path, url: str, **twelvedata: Any) -> Path:
    """A project folder whose dataflow.yaml ingests a small universe from the simulator at url."""
    td: dict[str, Any] = {
        "base_url": url,
        "plan": "unlimited",
        "history_start": "2026-06-01",
        "intraday_history_days": 30,
        "symbols": SYMBOLS,
        "retries": {"max_attempts": 4, "backoff_base": 0.05, "backoff_max": 0.2},
    }
    td.update(twelvedata)
    root.mkdir(parents=True, exist_ok=True)
    config = {"name": "reliability", "sources": {"twelvedata": td}}
    (root / "dataflow.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return root


def some_endpoints(*names: str) -> dict[str, Any]:
    """The ``endpoints`` setting with only these of the defaults enabled (a lighter project)."""
    from dataflow.config import default_endpoints

    return {
        name: {**spec.model_dump(mode="json", exclude_none=True), "enabled": name in names}
        for name, spec in default_endpoints().items()
    }


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAFLOW_")}
    env.update(TWELVEDATA_API_KEY=API_KEY, NO_COLOR="1", COLUMNS="200", **extra)
    return env


def dataflow(
    project: Path, *args: str, env: dict[str, str] | None = None, timeout: float = RUN_TIMEOUT
) -> Proc:
    """Run ``dataflow <args> --project <project>`` to its end."""
    cmd = [sys.executable, "-m", "dataflow", *args, "--project", str(project)]
    started = time.perf_counter()
    done = subprocess.run(
        cmd, env=env or base_env(), capture_output=True, text=True, timeout=timeout, check=False
    )
    return Proc(cmd, done.returncode, done.stdout, done.stderr, time.perf_counter() - started)


def spawn(project: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``dataflow <args> --project <project>`` without waiting."""
    cmd = [sys.executable, "-m", "dataflow", *args, "--project", str(project)]
    return subprocess.Popen(
        cmd, env=env or base_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def warehouse(project: Path) -> Path:
    return project / "warehouse"


def raw_files(project: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under the raw zone (manifests included)."""
    root = warehouse(project) / "raw"
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def check_raw(project: Path) -> tuple[int, int, list[str]]:
    """(files, envelopes, corrupt): every raw file must gunzip and every line parse as JSON."""
    root = warehouse(project) / "raw"
    files = envelopes = 0
    corrupt: list[str] = []
    for path in sorted(root.rglob("*.jsonl.gz")) if root.exists() else []:
        files += 1
        try:
            for line in gzip.decompress(path.read_bytes()).splitlines():
                envelope = json.loads(line)
                if not isinstance(envelope, dict) or "envelope_version" not in envelope:
                    raise ValueError("not an envelope")
                envelopes += 1
        except (OSError, EOFError, ValueError) as exc:
            corrupt.append(f"{path.relative_to(root)}: {exc}")
    for path in sorted(root.rglob("_manifests/*.json")) if root.exists() else []:
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            corrupt.append(f"{path.relative_to(root)}: {exc}")
    return files, envelopes, corrupt


def table_keys(project: Path) -> dict[str, tuple[str, ...]]:
    from dataflow.transform.models import discover_models
    from dataflow.transform.writer import QUARANTINE_KEY, QUARANTINE_TABLE

    keys = {m.target: m.key for m in discover_models(project).values()}
    keys[QUARANTINE_TABLE] = QUARANTINE_KEY
    return keys


def read_tables(project: Path) -> dict[str, Any]:
    """Table name -> its published (``main``) content as a pyarrow Table."""
    import pyarrow as pa

    from dataflow.catalog.iceberg import open_catalog
    from dataflow.config import load_settings

    settings = load_settings(project, env={})
    catalog = open_catalog(settings)
    namespace = settings.catalog.namespace
    out: dict[str, Any] = {}
    for ident in catalog.list_tables(namespace):
        table = catalog.load_table(ident)
        name = ident[-1]
        if table.current_snapshot() is None:
            out[name] = pa.table({f.name: [] for f in table.schema().fields})
        else:
            out[name] = table.scan().to_arrow()
    return out


def _rows(table: Any, drop: frozenset[str]) -> list[tuple[Any, ...]]:
    columns = sorted(c for c in table.column_names if c not in drop)
    data = table.select(columns).to_pylist()
    return sorted((tuple(repr(row[c]) for c in columns) for row in data), key=repr)


def compare(
    got: dict[str, Any],
    want: dict[str, Any],
    drop: frozenset[str],
    skip: frozenset[str] = frozenset(),
) -> dict[str, str]:
    """Table -> what differs (missing table, columns, or rows); empty when equal."""
    out: dict[str, str] = {}
    for name in sorted(set(got) | set(want)):
        if name in skip:
            continue
        a, b = got.get(name), want.get(name)
        if a is None or b is None:
            rows = (a or b).num_rows  # type: ignore[union-attr]
            if rows:
                out[name] = "missing in " + ("result" if a is None else "expected") + f" ({rows})"
            continue
        if set(a.column_names) - drop != set(b.column_names) - drop:
            out[name] = f"columns {sorted(a.column_names)} != {sorted(b.column_names)}"
            continue
        ra, rb = _rows(a, drop), _rows(b, drop)
        if ra != rb:
            extra = [r for r in ra if r not in set(rb)][:2]
            lost = [r for r in rb if r not in set(ra)][:2]
            out[name] = f"{len(ra)} rows vs {len(rb)}; extra {extra}; missing {lost}"
    return out


def duplicates(tables: dict[str, Any], keys: dict[str, tuple[str, ...]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, table in tables.items():
        key = keys.get(name)
        if not key or not table.num_rows:
            continue
        seen = table.select(list(key)).to_pylist()
        extra = len(seen) - len({tuple(repr(r[k]) for k in key) for r in seen})
        if extra:
            out[name] = extra
    return out


def lock_state(project: Path) -> str | None:
    """None when the project lock is free and names nobody; else what is wrong."""
    from dataflow.errors import LockTimeoutError
    from dataflow.metadata import ProjectLock

    path = warehouse(project) / "dataflow.lock"
    if not path.exists():
        return None
    lock = ProjectLock(path, timeout=0)
    try:
        holder = lock.holder()
        if holder is not None:
            return f"lock names a holder: {holder}"
        with lock:
            lock.acquire("reliability-check")
    except LockTimeoutError as exc:
        return f"lock held: {exc}"
    return None


def runs(project: Path) -> list[Any]:
    from dataflow.config import load_settings
    from dataflow.metadata import RunStore, open_metadata

    db = open_metadata(load_settings(project, env={}).metadata_url)
    try:
        return RunStore(db).list(limit=1000)
    finally:
        db.dispose()


def replay(project: Path, into: Path) -> dict[str, Any]:
    """The tables a clean ``dataflow transform`` builds from a copy of project's raw zone."""
    into.mkdir(parents=True)
    shutil.copy(project / "dataflow.yaml", into / "dataflow.yaml")
    shutil.copytree(warehouse(project) / "raw", warehouse(into) / "raw")
    done = dataflow(into, "transform")
    assert done.returncode == 0, done.explain()
    return read_tables(into)


class Harness:
    """A simulator, a reference run, and the checks (see the module docstring)."""

    def __init__(self, sim: SimulatorServer, root: Path) -> None:
        self.sim = sim
        self.root = root
        self._references: dict[str, dict[str, Any]] = {}
        self._configs: dict[Path, dict[str, Any]] = {}
        self.run_seconds: dict[str, float] = {}
        """How long each clean reference run took from its start to its record (this machine)."""
        self._count = 0

    @property
    def url(self) -> str:
        return self.sim.url

    def project(self, name: str | None = None, **twelvedata: Any) -> Path:
        self._count += 1
        path = write_project(self.root / (name or f"p{self._count:03d}"), self.url, **twelvedata)
        self._configs[path] = twelvedata
        return path

    def reference(self, **twelvedata: Any) -> dict[str, Any]:
        """The tables of one uninterrupted run of a project so configured (built once)."""
        key = json.dumps(twelvedata, sort_keys=True, default=str)
        if key not in self._references:
            project = self.project(f"reference{len(self._references)}", **twelvedata)
            done = dataflow(project, "run")
            assert done.returncode == 0, done.explain()
            self.run_seconds[key] = max(2.0, runs(project)[0].duration_s or 0.0)
            self._references[key] = read_tables(project)
        return self._references[key]

    def reference_of(self, project: Path) -> dict[str, Any]:
        return self.reference(**self._configs.get(project, {}))

    def check(self, project: Path, before: dict[str, str] | None = None) -> Findings:
        """Every invariant of the module docstring on project (after its clean rerun)."""
        found = Findings()
        tables = read_tables(project)
        found.tables = len(tables)
        found.rows = sum(t.num_rows for t in tables.values())
        found.raw_files, found.envelopes, found.corrupt_raw = check_raw(project)
        now = raw_files(project)
        for path, digest in (before or {}).items():
            if path.endswith(".json") and "_manifests/" in path:
                continue  # a run's manifest is rewritten as its files land
            if path not in now:
                found.lost_raw.append(path)
            elif now[path] != digest:
                found.changed_raw.append(path)
        found.duplicates = duplicates(tables, table_keys(project))
        self._count += 1
        replayed = replay(project, self.root / f"replay{self._count:03d}")
        found.differences_replay = compare(tables, replayed, RUN_SPECIFIC)
        found.differences_reference = compare(
            tables, self.reference_of(project), LINEAGE | RUN_SPECIFIC, skip=TIME_OF_RECEIPT
        )
        found.stale_lock = lock_state(project)
        found.running_runs = [r.run_id for r in runs(project) if r.status == "running"]
        return found
