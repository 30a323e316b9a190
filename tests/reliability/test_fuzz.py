"""Fuzz: thousands of generated API payloads through ``raw import`` + ``transform``.

A seeded generator (no extra dependency) writes payloads of every kind the API — or a broken
proxy, disk or editor — could hand us: valid bars, wrong types, NaN/Infinity, huge numbers, odd
timestamps (offsets, DST, impossible dates), missing fields, unicode, deep nesting, wrong
shapes, error bodies, truncated JSON, empty files, and one large file (50 MB in the full run).
Every bar carries a ``fuzz_id`` and the generator labels it ``good`` (must land, with the
right UTC time and close), ``bad`` (must be quarantined, with a reason) or ``either``.

The quick run (``make test``) fuzzes ``QUICK_PAYLOADS`` payloads and a 5 MB file;
``DATAFLOW_FUZZ_PAYLOADS=N`` (and ``DATAFLOW_FUZZ_BIG_MB``) raise both — the full
``make reliability`` run uses >= 10,000 payloads and 50 MB. The figures are printed (``-s``)
as one JSON line ``fuzz-figures``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dataflow.catalog.iceberg import open_catalog
from dataflow.config import Settings, load_settings
from dataflow.errors import ConfigError
from dataflow.pipeline import RunOptions, run_pipeline
from dataflow.storage import import_responses, open_store
from dataflow.transform import TransformStage

pytestmark = pytest.mark.reliability

QUICK_PAYLOADS = 2000
FULL_PAYLOADS = int(os.environ.get("DATAFLOW_FUZZ_PAYLOADS", QUICK_PAYLOADS))
BIG_MB = float(os.environ.get("DATAFLOW_FUZZ_BIG_MB", "5"))
SEED = int(os.environ.get("DATAFLOW_FUZZ_SEED", "20261207"))
GROUP = 250
"""Payloads per ``import_responses`` call (one import run each)."""

UTC = dt.UTC
BASE = dt.datetime(2025, 1, 6, tzinfo=UTC)


@dataclass
class Bar:
    fuzz_id: int
    label: str  # good | bad | either
    symbol: str
    ts: dt.datetime | None = None
    close: float | None = None


@dataclass
class Payload:
    name: str
    body: bytes
    endpoint: str = "time_series"
    params: dict[str, str] = field(default_factory=dict)
    importable: bool = True
    bars: list[Bar] = field(default_factory=list)


class Generator:
    """Seeded payloads (see the module docstring)."""

    def __init__(self, seed: int) -> None:
        self.rnd = random.Random(seed)
        self.next_id = 0
        self.count = 0

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id

    # --- one bar ---------------------------------------------------------------------------

    def _bar(self, symbol: str, minute: int) -> tuple[dict[str, Any], Bar]:
        rnd = self.rnd
        ts = BASE + dt.timedelta(minutes=minute)
        close = round(rnd.uniform(1, 500), 4)
        fuzz_id = self._id()
        record: dict[str, Any] = {
            "datetime": ts.strftime("%Y-%m-%d %H:%M:%S"),
            "open": f"{close:.4f}",
            "high": f"{close + 1:.4f}",
            "low": f"{close - 0.5:.4f}",
            "close": f"{close:.4f}",
            "volume": str(rnd.randint(0, 10**7)),
            "fuzz_id": fuzz_id,
        }
        bar = Bar(fuzz_id, "good", symbol, ts, close)
        roll = rnd.random()
        if roll < 0.45:
            return record, bar
        kind = rnd.choice(MUTATIONS)
        kind(self, record, bar)
        return record, bar

    # --- one payload -----------------------------------------------------------------------

    def payload(self) -> Payload:
        self.count += 1
        number = self.count
        rnd = self.rnd
        symbol = f"FZ{number}"
        roll = rnd.random()
        if roll < 0.06:
            return self._broken(number)
        if roll < 0.10:
            return self._odd_shape(number, symbol)
        if roll < 0.14:
            return self._other_endpoint(number, symbol)
        records: list[dict[str, Any]] = []
        bars: list[Bar] = []
        for index in range(rnd.randint(0, 12)):
            record, bar = self._bar(symbol, index * 7)
            records.append(record)
            bars.append(bar)
        meta: dict[str, Any] = {"symbol": symbol, "interval": "1min"}
        if rnd.random() < 0.05:
            meta["symbol"] = rnd.choice(["ÅÄÖ😀", "א/ב", "A\u0000B", "e\u0301"]) + str(number)
            for bar in bars:
                bar.symbol = meta["symbol"]
        body: Any = {"meta": meta, "values": records, "status": "ok"}
        if rnd.random() < 0.08:
            # A multi-symbol answer keyed by ticker, META among them, one symbol failing.
            body = {
                symbol: body,
                "META": {"code": 404, "message": "not found", "status": "error"},
            }
            for bar in bars:
                bar.symbol = symbol  # the answer's key names the symbol
        # No symbol in the request: the body names it (payloads are imported in groups).
        params = {"interval": "1min", "timezone": "UTC"}
        return Payload(f"p{number}.json", json.dumps(body).encode(), params=params, bars=bars)

    def _broken(self, number: int) -> Payload:
        rnd = self.rnd
        good = json.dumps({"meta": {"symbol": "X", "interval": "1min"}, "values": [{"a": 1}]})
        choice = rnd.randrange(6)
        if choice == 0:
            body = good[: rnd.randrange(1, len(good) - 1)].encode()  # truncated JSON
        elif choice == 1:
            body = b""
        elif choice == 2:
            body = b"<html>502 Bad Gateway</html>"
        elif choice == 3:
            depth = rnd.choice([2000, 5000, 50_000])
            body = ("[" * depth + "]" * depth).encode()
        elif choice == 4:
            body = b'{"values": [{"close": NaN}]}'  # NaN is not JSON
        else:
            body = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 64))) + b"\xff"
        return Payload(f"p{number}.json", body, importable=False)

    def _odd_shape(self, number: int, symbol: str) -> Payload:
        shapes: list[Any] = [
            {"meta": {"symbol": symbol, "interval": "1min"}, "values": "not a list"},
            {"meta": "not an object", "values": []},
            {"meta": {"symbol": symbol, "interval": "1min"}, "values": [1, "two", None, [3]]},
            [],
            "just a string",
            12345,
            None,
            {"meta": {"symbol": symbol}, "values": [{"datetime": "2025-01-06 10:00:00"}]},
            {"meta": {"symbol": symbol, "interval": "1min"}, "values": [{}]},
            {"status": "error", "code": 429, "message": "You have run out of API credits"},
            {"meta": {"symbol": symbol, "interval": "1min"},
             "values": [{"datetime": "2025-01-06 10:00:00", "close": self._deep(400)}]},
        ]  # fmt: skip
        body = self.rnd.choice(shapes)
        return Payload(f"p{number}.json", json.dumps(body).encode(), params={"interval": "1min"})

    def _other_endpoint(self, number: int, symbol: str) -> Payload:
        rnd = self.rnd
        value = rnd.choice(["1.5", "NaN", "1e999", "abc", None, 3, {"x": 1}])
        endpoint, body = rnd.choice(
            [
                ("price", {"price": value}),
                ("quote", {"symbol": symbol, "datetime": "2025-01-06", "close": value,
                           "volume": rnd.choice(["1e23", "NaN", "10", None]),
                           "timestamp": rnd.choice([1736160000, 10**20, "x"])}),
                ("exchange_rate", {"symbol": "EUR/USD", "rate": value,
                                   "timestamp": rnd.choice([1736160000, 10**19, -1])}),
                ("stocks", {"data": [{"symbol": symbol, "name": "ü" * rnd.randrange(5)},
                                     {"symbol": None}, 7]}),
            ]
        )  # fmt: skip
        return Payload(f"p{number}.json", json.dumps(body).encode(), endpoint=endpoint)

    def _deep(self, depth: int) -> Any:
        value: Any = "x"
        for _ in range(depth):
            value = {"a": value}
        return value

    def big(self, megabytes: float) -> Payload:
        symbol = "FZBIG"
        records: list[dict[str, Any]] = []
        bars: list[Bar] = []
        size = 0
        minute = 0
        while size < megabytes * 1_000_000:
            record, bar = self._bar(symbol, minute)
            minute += 1
            records.append(record)
            bars.append(bar)
            size += len(json.dumps(record)) + 1
        body = {"meta": {"symbol": symbol, "interval": "1min"}, "values": records}
        params = {"symbol": symbol, "interval": "1min", "timezone": "UTC"}
        return Payload("big.json", json.dumps(body).encode(), params=params, bars=bars)


# --- bar mutations: each sets the record and the bar's expected outcome --------------------


def _wrong_type(gen: Generator, record: dict[str, Any], bar: Bar) -> None:
    field_name = gen.rnd.choice(["open", "high", "low", "close"])
    record[field_name] = gen.rnd.choice([True, [1, 2], {"v": 1}, "abc", "", "١٢٣"])
    bar.label = "bad"


def _numeric_json(gen: Generator, record: dict[str, Any], bar: Bar) -> None:
    # Numbers as JSON numbers rather than strings: still numbers.
    record["close"] = bar.close
    record["volume"] = gen.rnd.randint(0, 1000)


def _non_finite(gen: Generator, record: dict[str, Any], bar: Bar) -> None:
    field_name = gen.rnd.choice(["open", "close", "volume"])
    record[field_name] = gen.rnd.choice(["NaN", "nan", "Infinity", "-Infinity", "inf", "1e999"])
    bar.label = "bad"


def _huge(gen: Generator, record: dict[str, Any], bar: Bar) -> None:
    choice = gen.rnd.randrange(3)
    if choice == 0:
        record["volume"] = gen.rnd.choice(["1e23", "1e99", "99999999999999999999", 1e300])
        bar.label = "bad"
    elif choice == 1:
        record["close"] = "1e300"
        bar.close = 1e300
    else:
        record["volume"] = "-5"  # negative, but a whole number: stored as given


def _missing(gen: Generator, record: dict[str, Any], bar: Bar) -> None:
    name = gen.rnd.choice(["datetime", "close", "volume", "open"])
    del record[name]
    if name == "datetime":
        bar.label = "bad"
    elif name == "close":
        bar.close = None


def _null(gen: Generator, record: dict[str, Any], bar: Bar) -> None:
    name = gen.rnd.choice(["datetime", "close"])
    record[name] = None
    if name == "datetime":
        bar.label = "bad"
    else:
        bar.close = None


def _odd_time(gen: Generator, record: dict[str, Any], bar: Bar) -> None:
    assert bar.ts is not None
    stamp = bar.ts
    choice = gen.rnd.randrange(8)
    if choice == 0:
        record["datetime"] = stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    elif choice == 1:
        # A stated offset wins over the request's zone: the local time shifts, the instant not.
        offset = dt.timezone(dt.timedelta(hours=gen.rnd.choice([-8, 5, 14]), minutes=30))
        record["datetime"] = stamp.astimezone(offset).isoformat()
    elif choice == 2:
        record["datetime"] = gen.rnd.choice(
            ["2025-13-45 10:00:00", "2025-02-30 10:00:00", "not a date", "", "１２:００",
             "2025-01-06 25:61:00", "0000-00-00 00:00:00"]
        )  # fmt: skip
        bar.label = "bad"
    elif choice == 3:
        record["datetime"] = gen.rnd.choice(["1700-01-01 00:00:00", "9999-12-31 23:59:59"])
        bar.label = "bad"
    elif choice == 4:
        record["datetime"] = gen.rnd.choice([1736160000, 20250106, [2025, 1, 6]])
        bar.label = "bad"
    elif choice == 5:
        record["datetime"] = stamp.strftime("%Y-%m-%d %H:%M:%S.%f")
    elif choice == 6:
        record["datetime"] = stamp.strftime("%Y-%m-%dT%H:%M:%S")
    else:
        record["datetime"] = stamp.strftime("%Y-%m-%d %H:%M:%S") + " +0000"
        bar.label = "either"


def _unicode(gen: Generator, record: dict[str, Any], bar: Bar) -> None:
    record["note"] = gen.rnd.choice(["😀" * 50, "\u202eRTL", "\x00", "e\u0301", "\ud7ff"])
    record["close\u00e9"] = "x"  # an unknown field: ignored


def _nested(gen: Generator, record: dict[str, Any], bar: Bar) -> None:
    record["extra"] = gen._deep(gen.rnd.choice([10, 200]))


MUTATIONS = [
    _wrong_type, _numeric_json, _non_finite, _huge, _missing, _null, _odd_time, _unicode,
    _nested,
]  # fmt: skip


# --- the run -------------------------------------------------------------------------------


@dataclass
class Figures:
    payloads: int = 0
    imported: int = 0
    refused: int = 0
    bars: int = 0
    good: int = 0
    bad: int = 0
    rows_in: int = 0
    rows_out: int = 0
    quarantined: int = 0
    tracebacks: int = 0
    big_mb: float = 0.0
    seconds: float = 0.0
    import_seconds: float = 0.0
    failures: list[str] = field(default_factory=list)


def _groups(items: list[Payload], size: int) -> Iterator[list[Payload]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _import(settings: Settings, folder: Path, payloads: list[Payload], figures: Figures) -> None:
    store = open_store(settings)
    for payload in payloads:
        (folder / payload.name).write_bytes(payload.body)
    importable = [p for p in payloads if p.importable]
    refused = [p for p in payloads if not p.importable]
    for payload in refused:
        try:
            import_responses(store, [folder / payload.name], endpoint=payload.endpoint)
        except ConfigError as exc:
            figures.refused += 1
            if payload.name not in str(exc) or "\n" in str(exc):
                figures.failures.append(f"unclear refusal of {payload.name}: {exc}")
        except Exception:
            figures.tracebacks += 1
            figures.failures.append(traceback.format_exc(limit=3))
        else:
            figures.failures.append(f"{payload.name}: accepted though it is not JSON")
    by_kind: dict[tuple[str, str], list[Payload]] = {}
    for payload in importable:
        kind = (payload.endpoint, json.dumps(payload.params, sort_keys=True))
        by_kind.setdefault(kind, []).append(payload)
    for (endpoint, params), members in sorted(by_kind.items()):
        for group in _groups(members, GROUP):
            try:
                import_responses(
                    store, [folder / p.name for p in group], endpoint=endpoint,
                    params=json.loads(params),
                )  # fmt: skip
                figures.imported += len(group)
            except Exception:
                figures.tracebacks += 1
                figures.failures.append(traceback.format_exc(limit=3))


def _check(settings: Settings, payloads: list[Payload], figures: Figures) -> None:
    catalog = open_catalog(settings)
    rows = catalog.load_table(("market", "time_series")).scan().to_arrow().to_pylist()
    landed = {(r["symbol"], r["ts"]): r for r in rows}
    parked = catalog.load_table(("market", "quarantine")).scan().to_arrow().to_pylist()
    parked_ids: dict[int, str] = {}
    for row in parked:
        if row["table_name"] != "time_series" or not row["record"]:
            continue
        try:
            record = json.loads(row["record"])
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("fuzz_id"), int):
            parked_ids[record["fuzz_id"]] = row["reason"]
    for payload in payloads:
        if not payload.importable:
            continue
        for bar in payload.bars:
            figures.bars += 1
            hit = landed.get((bar.symbol, bar.ts))
            reason = parked_ids.get(bar.fuzz_id)
            if bar.label == "good":
                figures.good += 1
                if hit is None:
                    figures.failures.append(f"good bar {bar} did not land ({reason})")
                elif bar.close is not None and hit["close"] != pytest.approx(bar.close):
                    figures.failures.append(f"bar {bar} landed with close {hit['close']}")
            elif bar.label == "bad":
                figures.bad += 1
                if not reason:
                    figures.failures.append(f"bad bar {bar} is not quarantined with a reason")
            elif hit is None and not reason:
                figures.failures.append(f"bar {bar} neither landed nor quarantined")


def test_fuzzed_payloads_import_and_transform_without_a_traceback(tmp_path: Path) -> None:
    started = time.perf_counter()
    settings = load_settings(tmp_path / "project", env={})
    gen = Generator(SEED)
    payloads = [gen.payload() for _ in range(max(FULL_PAYLOADS, 1))]
    payloads.append(gen.big(BIG_MB))
    figures = Figures(payloads=len(payloads), big_mb=round(len(payloads[-1].body) / 1e6, 1))
    folder = tmp_path / "payloads"
    folder.mkdir()

    _import(settings, folder, payloads, figures)
    imported = time.perf_counter()
    try:
        result = run_pipeline(settings, RunOptions(), stages=[TransformStage()])
    except Exception:
        figures.tracebacks += 1
        figures.failures.append(traceback.format_exc(limit=5))
        result = None
    if result is not None:
        details = result.results["transform"].details
        figures.quarantined = details["quarantined"]
        figures.rows_in = sum(t["rows_in"] for t in details["tables"].values())
        figures.rows_out = sum(t["rows_out"] for t in details["tables"].values())
        for name, table in details["tables"].items():
            accounted = (
                table["rows_out"] + table["quarantined"] - table["set_aside"]
                + table["duplicates"] + table["superseded"] + table["skipped"]
            )  # fmt: skip
            if accounted != table["rows_in"]:
                figures.failures.append(f"{name}: {table['rows_in']} rows in, {accounted} out")
        if result.status != "succeeded":
            figures.failures.append(f"transform ended {result.status}: {result.results}")
        _check(settings, payloads, figures)
        # A second run over the same raw zone has nothing left to do and does not fail.
        again = run_pipeline(settings, RunOptions(), stages=[TransformStage()])
        if again.status != "succeeded" or again.results["transform"].rows:
            figures.failures.append(f"second transform: {again.status} {again.results}")
    figures.seconds = round(time.perf_counter() - started, 1)
    figures.import_seconds = round(imported - started, 1)
    summary = {k: v for k, v in figures.__dict__.items() if k != "failures"}
    print("fuzz-figures " + json.dumps(summary))

    assert figures.tracebacks == 0, "\n".join(figures.failures[:5])
    assert not figures.failures, "\n".join(figures.failures[:10])
    assert figures.good > 0
    assert figures.bad > 0
    assert figures.quarantined >= figures.bad


def test_cli_import_of_unusable_files_says_one_line_and_exits_2(tmp_path: Path) -> None:
    project = tmp_path / "project"
    cases = {
        "empty.json": b"",
        "truncated.json": b'{"meta": {"symbol": "A"}, "values": [{"datetime": "2025-01-0',
        "deep.json": b"[" * 100_000 + b"]" * 100_000,
        "binary.json": b"\x00\xff\xfe garbage",
    }
    for name, body in cases.items():
        path = tmp_path / name
        path.write_bytes(body)
        done = subprocess.run(
            [sys.executable, "-m", "dataflow", "raw", "import", str(path), "--endpoint",
             "time_series", "--project", str(project)],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 2, (name, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr + done.stdout
        message = done.stderr.strip()
        assert name in message
        assert len(message.splitlines()) == 1, message
