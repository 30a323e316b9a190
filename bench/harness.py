"""Shared pieces of the benchmarks: the simulator in its own process, temporary projects, stats.

The simulator runs as ``python -m dataflow simulator`` in a separate process so that the CPU time
measured in the benchmark process is the client's alone. It binds 127.0.0.1 on a port the OS
picks (``--port 0``); the port is read from its "listening on" line.

Example:
    >>> with SimulatorProcess(api_key="benchkey") as sim:       # doctest: +SKIP
    ...     sim.stats()["requests"]
    0
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
"""The interpreter running the benchmarks is the project's (``.venv/bin/python``)."""
API_KEY = "benchkey"
"""A throwaway key shared by the simulator and the client (not a secret: loopback only)."""
_LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")
_START_TIMEOUT = 30.0


def log(message: str) -> None:
    """Progress goes to stderr: stdout carries only the JSON document."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def median(values: Sequence[float]) -> float:
    """The median, or 0.0 for no values."""
    return float(statistics.median(values)) if values else 0.0


def ratio(value: float, baseline: float) -> float | None:
    """``value / baseline`` rounded to 3 places, ``None`` when the baseline is 0."""
    return round(value / baseline, 3) if baseline else None


class SimulatorProcess:
    """``dataflow simulator`` in a child process on 127.0.0.1; stopped on exit (Ctrl-C, then kill).

    Args:
        api_key: the key the simulator requires.
        extra: more CLI flags, e.g. ``["--credits-per-minute", "30"]``.
    """

    def __init__(self, api_key: str = API_KEY, extra: Sequence[str] = ()) -> None:
        self.api_key = api_key
        self.extra = list(extra)
        self.url = ""
        self._proc: subprocess.Popen[str] | None = None
        self._output: list[str] = []

    def start(self) -> SimulatorProcess:
        """Start the process and return once it answers ``GET /simulator/stats``."""
        cmd = [
            sys.executable, "-m", "dataflow", "simulator",
            "--host", "127.0.0.1", "--port", "0", *self.extra,
        ]  # fmt: skip
        env = dict(os.environ, DATAFLOW_SIMULATOR_API_KEY=self.api_key)
        # the key travels in the environment, not on the command line (visible in `ps`)
        self._proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=REPO,
        )
        found: list[str] = []
        reader = threading.Thread(target=self._read, args=(found,), daemon=True)
        reader.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not found:
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("simulator did not start: " + "".join(self._output)[-2000:])
            time.sleep(0.02)
        self.url = found[0]
        while True:
            try:
                httpx.get(f"{self.url}/simulator/stats", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise
                time.sleep(0.05)
        return self

    def _read(self, found: list[str]) -> None:
        assert self._proc is not None
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self._output.append(line)
            match = _LISTENING.search(line)
            if match and not found:
                found.append(match.group(1))

    def stats(self) -> dict[str, Any]:
        """``GET /simulator/stats`` (costs no credits)."""
        answer = httpx.get(f"{self.url}/simulator/stats", timeout=10)
        answer.raise_for_status()
        data: dict[str, Any] = answer.json()
        return data

    def cpu_seconds(self) -> float | None:
        """CPU (user + system) the simulator process used so far; ``None`` off Linux."""
        if self._proc is None:
            return None
        try:
            fields = Path(f"/proc/{self._proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        # utime and stime are fields 14 and 15 of stat(5); fields[0] here is field 3
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def reset(self) -> None:
        """``POST /simulator/reset``: zero the stats and credit windows."""
        httpx.post(f"{self.url}/simulator/reset", timeout=10).raise_for_status()

    def stop(self) -> None:
        """Ctrl-C the process, then kill it if it lingers."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> SimulatorProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@contextmanager
def temp_project(config: dict[str, Any]) -> Iterator[Path]:
    """A temporary project folder holding ``dataflow.yaml`` = ``config``; removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="dataflow-bench-"))
    try:
        (root / "dataflow.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def universe() -> dict[str, list[str]]:
    """Every symbol the simulator knows, grouped as the settings expect (ETFs with stocks)."""
    import json

    path = REPO / "dataflow" / "sources" / "twelvedata" / "simulator" / "universe.json"
    data = json.loads(path.read_text())

    def symbols(*groups: str) -> list[str]:
        return [item["symbol"] for group in groups for item in data[group]]

    return {
        "stocks": symbols("stocks", "etfs"),
        "forex": symbols("forex_pairs"),
        "crypto": symbols("cryptocurrencies"),
    }


def cpu_seconds() -> float:
    """CPU (user + system) of this process, all threads."""
    return time.process_time()
