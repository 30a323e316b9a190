"""Print the figures of a reliability campaign from its JSON-lines report (``make reliability``).

Usage::

    python tests/reliability/summarize.py reliability-report.jsonl
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any


def _differing(case: dict[str, Any]) -> int:
    return len(case["differences_replay"]) + len(case["differences_reference"])


def summarize(lines: list[dict[str, Any]]) -> str:
    """A Markdown table of the campaign's figures, one row per kind of case."""
    kinds: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        kinds.setdefault(line["kind"], []).append(line)
    out = [
        "| cases | count | clean | states checked (rows) | raw files checked | lost | changed "
        "| corrupt | duplicates | differing tables |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, cases in sorted(kinds.items()):
        checked = [c for c in cases if "clean" in c]
        if not checked:
            continue
        out.append(
            f"| {kind} | {len(checked)} | {sum(c['clean'] for c in checked)} "
            f"| {sum(c['rows'] for c in checked)} | {sum(c['raw_files'] for c in checked)} "
            f"| {sum(len(c['lost_raw']) for c in checked)} "
            f"| {sum(len(c['changed_raw']) for c in checked)} "
            f"| {sum(len(c['corrupt_raw']) for c in checked)} "
            f"| {sum(sum(c['duplicates'].values()) for c in checked)} "
            f"| {sum(_differing(c) for c in checked)} |"
        )
    kills = [c for c in lines if c["kind"] in ("crash_point", "random_kill")]
    stages = Counter(str(c.get("stage")) for c in kills)
    out.append("")
    live = len(kills) - stages.get("finished", 0)
    out.append(
        f"kill -9: {len(kills)}, {live} of them into a live run "
        f"({', '.join(f'{s} {n}' for s, n in sorted(stages.items()))})"
    )
    faults: Counter[str] = Counter()
    for case in lines:
        for name, count in (case.get("injected") or {}).items():
            faults[name] += count
    if faults:
        out.append(
            f"API faults injected: {sum(faults.values())} "
            f"({', '.join(f'{k} {n}' for k, n in sorted(faults.items()))})"
        )
    for case in kinds.get("storage_faults", []):
        out.append(f"storage {case['failure']}: failed in {case['failed_stage']}, "
                   f"half-published tables {len(case['half_published'])}")  # fmt: skip
    for case in kinds.get("readers", []):
        out.append(
            f"readers: {case['readers']} readers, {case['reads']} reads, "
            f"torn {case['torn_reads']}, "
            f"errors {case['errors']}; counts seen {case['distinct_counts']}, "
            f"published {case['published_counts']}, audit-only {case['intermediate_counts']}"
        )
    for case in kinds.get("scheduler", []):
        fires = case["fires"]
        out.append(f"scheduler: {len(fires)} fire(s): " + "; ".join(
            f"{f.get('status')} ({f.get('message')})" for f in fires))  # fmt: skip
    return "\n".join(out)


if __name__ == "__main__":
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "reliability-report.jsonl")
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    print(summarize([json.loads(line) for line in text.splitlines() if line.strip()]))
