"""The ingest spool: every answer paid for is on disk the moment it lands.

The raw writer groups envelopes into files (up to ``file_max_lines`` per endpoint or
``flush_seconds``), so a process killed between two flushes would lose the answers still
buffered, and the next run would pay their credits again. The spool closes that gap: each
envelope is appended to ``<state_dir>/spool/<run_id>.spool`` *before* it is buffered (one
``write`` to the operating system, so it survives the process being killed), followed by a
record when raw files make envelopes durable and when a request's watermark may advance::

    R <envelope fields JSON>\n<body bytes>\n  an answer, numbered 0, 1, 2 … in file order
    D [0, 1, 5]                              these answers are in raw files now
    A {"run_id": …, "advances": [[endpoint, symbol, interval, iso-time], …]}

An answer is kept as the fields of its envelope plus the body *as received* (``body_len``
bytes), not as the envelope's JSON: encoding every payload a second time would cost the ingest
about a tenth of its CPU; the envelope is rebuilt with :func:`~dataflow.storage.make_envelope`
only for what a recovery needs.

A run that ends normally deletes its spool. The next ingest (under the project lock, so no
other ingest is writing one) :func:`recover`\\ s any spool left behind: the envelopes not yet in
a raw file are written to the raw zone under the dead run's id, then the watermarks it earned
advance, so nothing paid for is fetched twice. A line cut short by the kill is ignored: its
envelope never reached the raw writer, and no watermark depends on it.

Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> spool = Spool.open(folder, "r1")
    >>> spool.response({"endpoint": "quote"}, b'{"price":"1.0"}')
    0
    >>> spool.response({"endpoint": "price"}, b'{"price":"2.0"}')
    1
    >>> spool.durable([0])
    >>> spool.close(delete=False)
    >>> [(e.number, e.body) for e in read_spool(folder / "r1.spool").pending]
    [(1, b'{"price":"2.0"}')]
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dataflow.metadata import WatermarkKey, WatermarkStore
    from dataflow.storage import ObjectStore, RawFile

log = logging.getLogger("dataflow.sources.twelvedata.ingest")

SUFFIX = ".spool"


class Spool:
    """An append-only journal of one ingest (see the module docstring).

    Args:
        path: the spool file.
        fd: its descriptor, opened for appending.
    """

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd
        self._next = 0

    @classmethod
    def open(cls, folder: Path, run_id: str) -> Spool:
        """Create ``folder/<run_id>.spool`` (appending if it exists)."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{run_id}{SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return cls(path, fd)

    def response(self, fields: Mapping[str, Any], body: bytes) -> int:
        """Append one answer: its envelope's fields (JSON-able) and its body; return its number."""
        header = json.dumps({**fields, "body_len": len(body)}, separators=(",", ":"))
        self._write(b"R " + header.encode() + b"\n" + body + b"\n")
        number = self._next
        self._next += 1
        return number

    def durable(self, numbers: Sequence[int]) -> None:
        """These envelopes are in raw files now."""
        if numbers:
            self._write(b"D " + json.dumps(list(numbers)).encode() + b"\n")

    def advance(self, run_id: str, advances: Mapping[WatermarkKey, dt.datetime]) -> None:
        """The watermarks a finished request earns once its envelopes are durable."""
        rows = [
            [key.source, key.endpoint, key.symbol, key.interval, when.isoformat()]
            for key, when in advances.items()
        ]
        self._write(b"A " + json.dumps({"run_id": run_id, "advances": rows}).encode() + b"\n")

    def close(self, *, delete: bool) -> None:
        """Close the file; ``delete`` once everything it holds is durable and advanced."""
        if self._fd < 0:
            return
        os.close(self._fd)
        self._fd = -1
        if delete:
            self.path.unlink(missing_ok=True)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]


@dataclass
class SpoolEntry:
    """One answer kept in a spool: its envelope's fields and its body."""

    number: int
    fields: dict[str, Any]
    body: bytes


@dataclass
class SpoolContents:
    """What a spool left behind holds: envelopes not yet in raw files, watermarks earned."""

    run_id: str
    answers: int = 0
    """Answers the spool holds in full, durable or not."""
    pending: list[SpoolEntry] = field(default_factory=list)
    advances: dict[WatermarkKey, dt.datetime] = field(default_factory=dict)


def read_spool(path: Path) -> SpoolContents:
    """Parse a spool; lines cut short (the process was killed mid-write) are skipped."""
    from dataflow.metadata import WatermarkKey

    answers: dict[int, SpoolEntry] = {}
    durable: set[int] = set()
    contents = SpoolContents(run_id=path.name.removesuffix(SUFFIX))
    number = 0
    with path.open("rb") as handle:
        for line in handle:
            kind, _, rest = line.partition(b" ")
            try:
                data = json.loads(rest)
            except ValueError:
                continue  # the last line, cut by the kill
            if kind == b"R" and isinstance(data, dict):
                size = int(data.pop("body_len", -1))
                body = handle.read(size + 1)
                if size < 0 or len(body) != size + 1 or not body.endswith(b"\n"):
                    break  # the body was cut by the kill: nothing follows it
                answers[number] = SpoolEntry(number, data, body[:-1])
                number += 1
            elif kind == b"D" and isinstance(data, list):
                durable.update(int(n) for n in data)
            elif kind == b"A" and isinstance(data, dict):
                for source, endpoint, symbol, interval, when in data.get("advances", []):
                    key = WatermarkKey(source, endpoint, symbol, interval)
                    value = dt.datetime.fromisoformat(when)
                    contents.advances[key] = max(value, contents.advances.get(key, value))
    contents.answers = number
    contents.pending = [entry for n, entry in answers.items() if n not in durable]
    return contents


def leftover_spools(folder: Path, *, current: str) -> list[Path]:
    """Spools of earlier runs still on disk (their process died before deleting them)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(f"*{SUFFIX}") if p.name != f"{current}{SUFFIX}")


def recover(
    folder: Path, *, current: str, store: ObjectStore, source: str, marks: WatermarkStore,
    max_lines: int = 500, max_bytes: int = 8_000_000,
) -> list[RawFile]:  # fmt: skip
    """Land what killed runs left in their spools, advance what they earned; return new files.

    An envelope already in one of the dead run's raw files (the kill fell between a file's write
    and its ``D`` record) is recognised by its request id and receive time and not written
    twice. A spool is deleted only after its envelopes are durable and its watermarks advanced,
    so a kill during recovery is recovered by the next run.
    """
    from dataflow.storage import RawWriter, iter_envelopes, list_raw

    written: list[RawFile] = []
    for path in leftover_spools(folder, current=current):
        contents = read_spool(path)
        envelopes = [_envelope(entry) for entry in contents.pending]
        if envelopes:
            landed = {
                (env.get("request_id"), env.get("received_at"))
                for info in list_raw(store, source=source)
                if info.run_id == contents.run_id
                for env in iter_envelopes(store, info.key)
            }
            envelopes = [
                env for env in envelopes
                if (env.get("request_id"), env.get("received_at")) not in landed
            ]  # fmt: skip
        if envelopes:
            writer = RawWriter(
                store, source=source, run_id=contents.run_id, max_lines=max_lines,
                max_bytes=max_bytes,
            )  # fmt: skip
            for envelope in envelopes:
                done = writer.add(envelope)
                if done is not None:
                    written.append(done)
            written.extend(writer.flush())
        marks.advance(contents.advances, run_id=contents.run_id)
        log.warning(
            "run %s was stopped before its answers were all in the raw zone: %d landed now from "
            "its spool, %d watermark(s) advanced; nothing is fetched twice",
            contents.run_id, len(envelopes), len(contents.advances),
        )  # fmt: skip
        path.unlink()
    return written


def _envelope(entry: SpoolEntry) -> dict[str, Any]:
    """The envelope the live ingest would have written for a spooled answer."""
    from dataflow.storage import make_envelope

    fields = dict(entry.fields)
    fields["received_at"] = dt.datetime.fromisoformat(fields["received_at"])
    # how the live ingest's classifier decoded the body (None: make_envelope parses it)
    decoded = fields.pop("parsed", None)
    if decoded == "json":
        fields["parsed"] = json.loads(entry.body)
    elif decoded == "text":  # a CSV answer
        fields["parsed"] = entry.body.decode("utf-8", "replace")
    elif decoded == "none":
        fields["parsed"] = None
    return make_envelope(body=entry.body, **fields)


__all__ = [
    "SUFFIX",
    "Spool",
    "SpoolContents",
    "SpoolEntry",
    "leftover_spools",
    "read_spool",
    "recover",
]
