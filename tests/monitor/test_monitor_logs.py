"""Structured logs: JSON lines per run with run id and stage, redaction, pruning, reading."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dataflow.monitor import (
    configure_logging,
    get_logger,
    prune_logs,
    read_logs,
    run_log,
    stage_context,
)

FAKE_KEY = "td-FAKE-0123456789abcdef"


@pytest.fixture(autouse=True)
def md_clean_logging() -> Iterator[None]:
    """Leave the `dataflow` logger as the test found it."""
    logger = logging.getLogger("dataflow")
    handlers, level = list(logger.handlers), logger.level
    yield
    for handler in logger.handlers:
        if handler not in handlers:
            logger.removeHandler(handler)
            handler.close()
    logger.setLevel(level)


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_records_carry_run_id_and_stage(tmp_path: Path) -> None:
    log = get_logger("pipeline")
    with run_log(tmp_path / "logs", "r1") as path:
        log.info("run starts")
        with stage_context("ingest"):
            get_logger("dataflow.sources").info("fetched %d rows", 5, extra={"endpoint": "quote"})
        log.debug("too detailed for INFO")
    log.info("after the run")

    day = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    assert path == tmp_path / "logs" / day / "r1.jsonl"
    first, second = lines(path)
    assert {k: first[k] for k in ("level", "logger", "message", "run_id", "stage")} == {
        "level": "INFO",
        "logger": "dataflow.pipeline",
        "message": "run starts",
        "run_id": "r1",
        "stage": None,
    }
    assert (second["stage"], second["message"], second["endpoint"]) == (
        "ingest",
        "fetched 5 rows",
        "quote",
    )
    ts = dt.datetime.fromisoformat(second["ts"])
    assert ts.utcoffset() == dt.timedelta(0)
    assert abs(dt.datetime.now(dt.UTC) - ts) < dt.timedelta(minutes=1)
    handlers = logging.getLogger("dataflow").handlers
    assert not any(isinstance(h, logging.FileHandler) for h in handlers)  # removed on exit


def test_stage_follows_asyncio_tasks(tmp_path: Path) -> None:
    log = get_logger("ingest")

    async def fetch(symbol: str) -> None:
        await asyncio.sleep(0.01)
        log.info("fetched %s", symbol)

    async def stage(name: str, symbols: list[str]) -> None:
        with stage_context(name):
            await asyncio.gather(*(asyncio.create_task(fetch(s)) for s in symbols))

    async def main() -> None:
        await asyncio.gather(stage("ingest", ["AAPL", "MSFT"]), stage("crawl", ["SPY"]))

    with run_log(tmp_path, "r2") as path:
        asyncio.run(main())
    got = sorted((r["message"], r["stage"], r["run_id"]) for r in lines(path))
    assert got == [
        ("fetched AAPL", "ingest", "r2"),
        ("fetched MSFT", "ingest", "r2"),
        ("fetched SPY", "crawl", "r2"),
    ]


def test_a_run_ending_does_not_silence_another_still_running(tmp_path: Path) -> None:
    """Run A starts, run B starts, A ends, then B logs: B's records must still be written."""
    log = get_logger("pipeline")
    logging.getLogger("dataflow").setLevel(logging.NOTSET)
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    paths: dict[str, Path] = {}

    def run_a() -> None:
        with run_log(tmp_path, "a") as path:
            paths["a"] = path
            a_in.set()
            b_in.wait(5)
        a_out.set()

    def run_b() -> None:
        a_in.wait(5)
        with run_log(tmp_path, "b") as path:
            paths["b"] = path
            b_in.set()
            a_out.wait(5)
            log.info("after a ended")

    threads = [threading.Thread(target=run_a), threading.Thread(target=run_b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r["message"] for r in lines(paths["b"])] == ["after a ended"]
    assert lines(paths["a"]) == []


def test_two_runs_in_one_process_keep_their_own_files(tmp_path: Path) -> None:
    log = get_logger("pipeline")
    paths: dict[str, Path] = {}

    def run(run_id: str) -> None:
        with run_log(tmp_path, run_id) as path:
            paths[run_id] = path
            for i in range(20):
                log.info("step %d of %s", i, run_id)

    threads = [threading.Thread(target=run, args=(rid,)) for rid in ("ra", "rb")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for run_id, path in paths.items():
        records = lines(path)
        assert len(records) == 20
        assert {r["run_id"] for r in records} == {run_id}
        assert all(r["message"].endswith(run_id) for r in records)


def test_secrets_are_redacted_everywhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(level="INFO", console=True)
    log = get_logger("sources.twelvedata")
    with run_log(tmp_path, "r3") as path:
        log.info("GET https://api.twelvedata.com/quote?symbol=AAPL&apikey=%s", FAKE_KEY)
        log.info(
            "request",
            extra={
                "api_key": FAKE_KEY,
                "headers": {"Authorization": f"apikey {FAKE_KEY}", "Accept": "json"},
                "params": {"symbol": "AAPL", "token": FAKE_KEY},
                "url": f"postgresql://user:{FAKE_KEY}@db/x",
            },
        )
        log.warning("header was Authorization: apikey %s", FAKE_KEY)
        log.info("settings %s", {"password": FAKE_KEY, "secret_access_key": FAKE_KEY})
        try:
            raise RuntimeError(f"bad answer for apikey={FAKE_KEY}")
        except RuntimeError:
            log.exception("request failed")
    text = path.read_text(encoding="utf-8")
    console = capsys.readouterr().err
    assert FAKE_KEY not in text
    assert FAKE_KEY not in console
    assert FAKE_KEY[:10] not in text
    records = lines(path)
    assert records[0]["message"].endswith("symbol=AAPL&apikey=***")
    assert records[1]["api_key"] == "***"
    assert records[1]["headers"] == {"Authorization": "***", "Accept": "json"}
    assert records[1]["params"] == {"symbol": "AAPL", "token": "***"}
    assert records[1]["url"] == "postgresql://user:***@db/x"
    assert records[2]["message"] == "header was Authorization: apikey ***"
    assert "RuntimeError: bad answer for apikey=***" in records[4]["exc"]
    assert "symbol=AAPL&apikey=***" in console


def test_configure_logging_is_idempotent(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(level="INFO")
    configure_logging(level="INFO")
    logger = logging.getLogger("dataflow")
    consoles = [h for h in logger.handlers if getattr(h, "_dataflow_console", False)]
    assert len(consoles) == 1
    get_logger("x").info("hello console")
    get_logger("x").debug("hidden")
    err = capsys.readouterr().err
    assert err.count("hello console") == 1
    assert "hidden" not in err
    configure_logging(console=False)
    assert not [h for h in logger.handlers if getattr(h, "_dataflow_console", False)]


def test_file_level_independent_of_console(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(level="WARNING")
    with run_log(tmp_path, "r4", level="DEBUG") as path:
        get_logger("x").debug("debug detail")
        get_logger("x").warning("careful")
    assert [r["message"] for r in lines(path)] == ["debug detail", "careful"]
    err = capsys.readouterr().err
    assert "careful" in err
    assert "debug detail" not in err


def test_read_logs_filters(tmp_path: Path) -> None:
    log = get_logger("pipeline")
    with run_log(tmp_path, "20260101T000000Z-aaaa"):
        log.info("a1")
        with stage_context("ingest"):
            log.warning("a2")
    with run_log(tmp_path, "20260101T000001Z-bbbb"), stage_context("ingest"):
        log.error("b1")
    (tmp_path / "2020-01-01").mkdir()
    (tmp_path / "2020-01-01" / "20200101T000000Z-cccc.jsonl").write_text(
        '{"message": "old", "level": "INFO", "run_id": "20200101T000000Z-cccc", "stage": null}\n'
        '{"message": "trunc'  # a process killed mid-line
    )
    every = [r["message"] for r in read_logs(tmp_path)]
    assert every == ["old", "a1", "a2", "b1"]
    assert [r["message"] for r in read_logs(tmp_path, run_id="20260101T000000Z-a")] == ["a1", "a2"]
    assert [r["message"] for r in read_logs(tmp_path, stage="ingest")] == ["a2", "b1"]
    assert [r["message"] for r in read_logs(tmp_path, level="WARNING")] == ["a2", "b1"]
    assert [r["message"] for r in read_logs(tmp_path, level="error")] == ["b1"]
    assert list(read_logs(tmp_path / "missing")) == []


def test_prune_logs_keeps_recent_days(tmp_path: Path) -> None:
    today = dt.datetime.now(dt.UTC).date()
    for age in (0, 5, 29, 31, 400):
        folder = tmp_path / (today - dt.timedelta(days=age)).isoformat()
        folder.mkdir()
        (folder / f"run-{age}.jsonl").write_text("{}\n")
        (folder / f"run-{age}b.jsonl").write_text("{}\n")
    (tmp_path / "not-a-date").mkdir()
    (tmp_path / "notes.txt").write_text("keep")

    assert prune_logs(tmp_path, retention_days=30) == 4
    kept = sorted(p.name for p in tmp_path.iterdir())
    expected = [(today - dt.timedelta(days=age)).isoformat() for age in (29, 5, 0)]
    assert kept == sorted([*expected, "not-a-date", "notes.txt"])
    assert prune_logs(tmp_path, retention_days=30) == 0
    assert prune_logs(tmp_path / "missing", retention_days=1) == 0


def test_a_run_id_never_selects_files_outside_the_logs_folder(tmp_path: Path) -> None:
    from dataflow.monitor.logquery import select_files

    logs = tmp_path / "warehouse" / "logs"
    (logs / "2026-12-08").mkdir(parents=True)
    (logs / "2026-12-08" / "run-1.jsonl").write_text("{}\n")
    (tmp_path / "warehouse" / "secret.jsonl").write_text("{}\n")
    (tmp_path / "outside.jsonl").write_text("{}\n")
    assert select_files(logs, run_id="run-1") == [logs / "2026-12-08" / "run-1.jsonl"]
    for probe in ("../../secret", "../../../outside", "..", "../", "/etc/passwd", "..\\x"):
        assert select_files(logs, run_id=probe) == [], probe
