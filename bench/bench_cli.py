"""CLI start time: ``dataflow --help`` against a bare interpreter, in the same run.

Each command is run ``repeats`` times as a subprocess (wall time, output discarded), interleaved
so that noise from other processes on the machine hits every command alike; medians are
reported. ``python -X importtime`` then lists the slowest imports of ``dataflow --help``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from typing import Any

from harness import REPO, VENV_BIN, log, median, ratio

TARGET_MS = 300.0
_IMPORTTIME = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def _commands() -> dict[str, list[str]]:
    python = sys.executable
    dataflow = str(VENV_BIN / "dataflow")
    return {
        "python_pass": [python, "-c", "pass"],
        "python_import_typer": [python, "-c", "import typer"],
        "dataflow_help": [dataflow, "--help"],
    }


def _env() -> dict[str, str]:
    # a wide terminal and no colours: the help renders the same way on every run
    return dict(os.environ, COLUMNS="100", NO_COLOR="1", TERM="dumb")


def _time_once(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env()
    )
    return (time.perf_counter() - started) * 1000


def import_offenders(top: int = 5) -> dict[str, Any]:
    """The ``top`` imports of ``dataflow --help`` by cumulative and by self time (ms)."""
    script = str(VENV_BIN / "dataflow")
    done = subprocess.run(
        [sys.executable, "-X", "importtime", script, "--help"],
        check=True,
        capture_output=True,
        text=True,
        env=_env(),
        cwd=REPO,
    )
    rows = []
    for line in done.stderr.splitlines():
        match = _IMPORTTIME.match(line)
        if match:
            self_us, cumulative_us, indent, name = match.groups()
            depth = len(indent) // 2
            rows.append((name, int(self_us) / 1000, int(cumulative_us) / 1000, depth))

    def pick(index: int) -> list[dict[str, Any]]:
        chosen = sorted(rows, key=lambda row: row[index], reverse=True)[:top]
        return [
            {"module": n, "self_ms": round(s, 1), "cumulative_ms": round(c, 1), "depth": d}
            for n, s, c, d in chosen
        ]

    total_ms = sum(row[1] for row in rows)
    return {
        "by_cumulative": pick(2),
        "by_self": pick(1),
        "total_ms": round(total_ms, 1),
        "modules": len(rows),
    }


def run(*, quick: bool = False) -> dict[str, Any]:
    """Run the CLI start-time benchmark; returns its figures."""
    repeats = 5 if quick else 11
    commands = _commands()
    for cmd in commands.values():
        _time_once(cmd)  # warm the page cache and .pyc files: every command starts warm
    samples: dict[str, list[float]] = {name: [] for name in commands}
    log(f"cli: {repeats} interleaved runs of {', '.join(commands)}")
    for _ in range(repeats):
        for name, cmd in commands.items():
            samples[name].append(_time_once(cmd))
    medians = {name: round(median(values), 1) for name, values in samples.items()}
    log("cli: python -X importtime dataflow --help")
    offenders = import_offenders()
    help_ms = medians["dataflow_help"]
    return {
        "repeats": repeats,
        "median_ms": medians,
        "min_ms": {name: round(min(values), 1) for name, values in samples.items()},
        "max_ms": {name: round(max(values), 1) for name, values in samples.items()},
        "dataflow_help_ms": help_ms,
        "ratio_to_python_pass": ratio(help_ms, medians["python_pass"]),
        "ratio_to_import_typer": ratio(help_ms, medians["python_import_typer"]),
        "overhead_over_import_typer_ms": round(help_ms - medians["python_import_typer"], 1),
        "target_ms": TARGET_MS,
        "pass": help_ms < TARGET_MS,
        "import_offenders": offenders["by_cumulative"],
        "import_offenders_by_self": offenders["by_self"],
        "import_total_ms": offenders["total_ms"],
        "import_modules": offenders["modules"],
    }
