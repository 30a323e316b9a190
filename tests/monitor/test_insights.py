"""Logs Insights queries: each case of fixtures/insights_cases.yaml over two fixed log files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from dataflow.errors import ConfigError
from dataflow.monitor.insights import (
    AGGREGATE_FUNCTIONS,
    SCALAR_FUNCTIONS,
    compile_query,
)
from dataflow.monitor.insights_parser import glob_to_regex, tokenize
from dataflow.monitor.logquery import parse_since, query_logs, select_files

CASES = yaml.safe_load((Path(__file__).parent / "fixtures" / "insights_cases.yaml").read_text())

# Run r1 on 2026-01-05 fails in transform; run r2 on 2026-01-06 succeeds.
R1 = [
    ("10:00:00.000", "INFO", "pipeline", "run r1 started", {}),
    ("10:00:01.000", "INFO", "ingest", "[quote] fetched 14 rows",
     {"ms": 120, "endpoint": "quote", "size": "1400"}),
    ("10:00:02.000", "WARNING", "ingest", "[time_series] rate limited, retrying",
     {"ms": 900, "endpoint": "time_series", "http": {"status": 429}}),
    ("10:03:00.000", "INFO", "transform", "table quotes: 1 new raw file(s)", {"ms": 300}),
    ("10:06:00.000", "ERROR", "transform", "table prices: Exception in model",
     {"exc": "Traceback (most recent call last):\nValueError: bad model"}),
    ("10:07:00.000", "INFO", "pipeline", "run r1 failed", {}),
]  # fmt: skip
R2 = [
    ("09:00:00.000", "INFO", "pipeline", "run r2 started", {}),
    ("09:00:00.500", "INFO", "ingest", "[quote] fetched 7 rows", {"ms": 80, "endpoint": "quote"}),
    ("09:00:01.000", "DEBUG", "ingest", "[quote] response 200",
     {"ms": 15, "endpoint": "quote", "size": "15"}),
    ("09:01:00.000", "INFO", "pipeline", "run r2 succeeded", {}),
]  # fmt: skip


def write_run(log_dir: Path, day: str, run_id: str, records: list[Any], tail: str = "") -> None:
    folder = log_dir / day
    folder.mkdir(parents=True)
    lines = [
        json.dumps({"ts": f"{day}T{time}Z", "level": level, "logger": f"dataflow.{stage}",
                    "message": message, "run_id": run_id, "stage": stage, **extra})
        for time, level, stage, message, extra in records
    ]  # fmt: skip
    (folder / f"{run_id}.jsonl").write_text("\n".join(lines) + "\n" + tail, encoding="utf-8")


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("insights") / "logs"
    write_run(root, "2026-01-05", "r1", R1)
    # A process killed mid-write leaves half a line; it is skipped, not fatal.
    write_run(root, "2026-01-06", "r2", R2, tail='{"ts": "2026-01-06T09:02:00.000Z", "lev')
    (root / "not-a-day").mkdir()
    return root


def rounded(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()} for r in rows]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_case(case: dict[str, Any], log_dir: Path) -> None:
    options = dict(case.get("options", {}))
    if "since" in options:
        options["since"] = parse_since(options["since"])
    if "error" in case:
        with pytest.raises(ConfigError) as caught:
            query_logs(log_dir, case["query"], log_group="testproject", **options)
        message = str(caught.value)
        assert "\n" not in message
        for part in [case["error"]] if isinstance(case["error"], str) else case["error"]:
            assert part in message
        return
    result = query_logs(log_dir, case["query"], log_group="testproject", **options)
    for part in case.get("sql", []):
        assert part in result.sql, result.sql
    if "columns" in case:
        assert list(result.columns) == case["columns"]
    if "rows" in case:
        assert rounded(result.rows) == case["rows"], result.sql
    if "count" in case:
        assert len(result.rows) == case["count"]


def test_every_function_in_the_tables_runs(log_dir: Path) -> None:
    samples = {
        "abs": "abs(ms)", "ceil": "ceil(ms / 7)", "floor": "floor(ms / 7)",
        "round": "round(ms / 7)",
        "sqrt": "sqrt(ms)", "log": "log(ms)", "exp": "exp(1)", "pow": "pow(ms, 2)",
        "greatest": "greatest(ms, 100)", "least": "least(ms, 100)", "coalesce": "coalesce(ms, 0)",
        "concat": "concat(stage, '/', level)", "strlen": "strlen(message)",
        "toupper": "toupper(level)", "tolower": "tolower(level)", "trim": "trim(message)",
        "ltrim": "ltrim(message)", "rtrim": "rtrim(message)", "substr": "substr(message, 1)",
        "replace": "replace(message, 'run', 'RUN')", "strcontains": "strcontains(message, 'run')",
        "ispresent": "ispresent(ms)", "isempty": "isempty(endpoint)",
        "isblank": "isblank(endpoint)", "bin": "bin(1h)", "datefloor": "datefloor(@timestamp, 1h)",
        "dateceil": "dateceil(@timestamp, 1h)", "frommillis": "frommillis(1767600000000)",
        "tomillis": "tomillis(@timestamp)",
    }  # fmt: skip
    assert set(samples) == set(SCALAR_FUNCTIONS), "give each new function a sample here"
    query = "fields " + ", ".join(f"{call} as {name}" for name, call in samples.items())
    rows = query_logs(log_dir, query + " | filter @message like 'fetched 14'").rows
    assert rows[0]["substr"] == "quote] fetched 14 rows"
    assert rows[0]["strcontains"] == 0
    assert rows[0]["pow"] == 14400.0
    assert (rows[0]["datefloor"], rows[0]["dateceil"]) == (
        "2026-01-05T10:00:00.000Z",
        "2026-01-05T11:00:00.000Z",
    )
    assert rows[0]["frommillis"] == "2026-01-05T08:00:00.000Z"
    aggs = ", ".join(f"{name}(ms) as {name}" for name in AGGREGATE_FUNCTIONS if name != "pct")
    stats = query_logs(log_dir, f"stats {aggs}, pct(ms, 90) as pct").rows[0]
    assert set(stats) == set(AGGREGATE_FUNCTIONS)
    assert (stats["earliest"], stats["latest"], stats["pct"]) == (120, 15, 900.0)


@pytest.mark.parametrize(
    ("query", "texts"),
    [
        ("a / b", ["a", "/", "b"]),
        ("filter x like /a\\/b/", ["filter", "x", "like", "a\\/b"]),
        ("parse @message /(?<x>.)/", ["parse", "@message", "(?<x>.)"]),
        ("bin(5m) 10ms 2.5 `odd name`", ["bin", "(", "5m", ")", "10ms", "2.5", "`odd name`"]),
    ],
)
def test_slash_divides_after_an_operand_and_starts_a_regex_elsewhere(
    query: str, texts: list[str]
) -> None:
    assert [t.text for t in tokenize(query)][:-1] == texts


@pytest.mark.parametrize(
    ("glob", "regex"),
    [
        ("[*] *", r"\[(.*?)\] (.*)"),
        ("user=*, id=*;", r"user=(.*?), id=(.*?);"),
        ("a.b *", r"a\.b (.*)"),
    ],
)
def test_glob_to_regex(glob: str, regex: str) -> None:
    assert glob_to_regex(glob) == regex


def test_compiles_without_a_schema_for_shape_checks() -> None:
    compiled = compile_query("filter anyfield > 3 | stats max(anyfield) as m by bin(1h) as t")
    assert 'TRY_CAST("anyfield" AS DOUBLE) > 3' in compiled.sql
    assert compiled.columns == ("t", "m")
    assert compiled.limit == 1000


def test_since_selects_day_folders_before_reading(log_dir: Path) -> None:
    assert [p.name for p in select_files(log_dir)] == ["r1.jsonl", "r2.jsonl"]
    assert [p.name for p in select_files(log_dir, since=parse_since("2026-01-06T23:00Z"))] == [
        "r2.jsonl"
    ]
    assert [p.name for p in select_files(log_dir, run_id="r1")] == ["r1.jsonl"]


def test_no_logs_gives_empty_results_and_still_checks_the_query(tmp_path: Path) -> None:
    assert query_logs(tmp_path / "none", "fields @message").rows == []
    with pytest.raises(ConfigError, match="unknown command"):
        query_logs(tmp_path / "none", "select *")


@pytest.mark.parametrize("text", ["yesterday", "5 parsecs", ""])
def test_bad_since_and_level_fail_with_a_hint(text: str, log_dir: Path) -> None:
    with pytest.raises(ConfigError, match="15m, 2h"):
        parse_since(text)
    with pytest.raises(ConfigError, match="DEBUG, INFO, WARNING"):
        query_logs(log_dir, level="LOUD")


def test_a_query_duckdb_rejects_is_a_one_line_config_error(log_dir: Path) -> None:
    with pytest.raises(ConfigError, match="the log query failed") as caught:
        query_logs(log_dir, 'filter @timestamp > "last tuesday"')
    assert "\n" not in str(caught.value)
