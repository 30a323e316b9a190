"""A FileIO that fails writes on purpose, for the reliability suite (test-only).

pyiceberg picks a table's FileIO from the catalog property ``py-io-impl``, so a project selects
this one in ``dataflow.yaml`` without any code path of its own::

    catalog:
      properties:
        py-io-impl: dataflow.faultio.FailingFileIO
        dataflow.fail-writes-from: "12"    # the 12th file written and every later one fail
        dataflow.fail-writes-rate: "0.2"   # or: each write fails with this probability...
        dataflow.fail-writes-seed: "7"     # ...drawn from this seed

A failing write raises ``OSError`` when the file is opened for writing, so no byte of it lands:
``ENOSPC`` ("No space left on device", a full disk) for ``fail-writes-from``, ``EIO`` for the
random ones. Everything else (reads, deletes, the writes that pass) is pyiceberg's own
``PyArrowFileIO``. Counts are per process, i.e. per ``dataflow`` command.

Example:
    >>> io = FailingFileIO({"dataflow.fail-writes-from": "1"})
    >>> io.new_output("/tmp/never-written.parquet").create()
    Traceback (most recent call last):
    ...
    OSError: [Errno 28] No space left on device (injected, write 1): /tmp/never-written.parquet
"""

from __future__ import annotations

import errno
import random
import threading
from typing import Any

from pyiceberg.io.pyarrow import PyArrowFile, PyArrowFileIO

FROM = "dataflow.fail-writes-from"
RATE = "dataflow.fail-writes-rate"
SEED = "dataflow.fail-writes-seed"


class _Writes:
    """The write counter and fault draws shared by every FileIO of the process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count = 0
        self.rng: random.Random | None = None


_WRITES = _Writes()


class FailingFileIO(PyArrowFileIO):
    """``PyArrowFileIO`` whose writes fail as its properties say (see the module docstring)."""

    def new_output(self, location: str) -> PyArrowFile:
        """The output file of ``location``; opening it fails when this write is chosen."""
        output = super().new_output(location)
        return _FailingFile(output, self.properties)


class _FailingFile(PyArrowFile):
    def __init__(self, inner: PyArrowFile, properties: Any) -> None:
        self.__dict__.update(inner.__dict__)
        self._fault_properties = dict(properties)

    def create(self, overwrite: bool = False) -> Any:
        props = self._fault_properties
        with _WRITES.lock:
            _WRITES.count += 1
            number = _WRITES.count
            first = int(props.get(FROM, "0") or 0)
            rate = float(props.get(RATE, "0") or 0)
            if _WRITES.rng is None:
                _WRITES.rng = random.Random(int(props.get(SEED, "0") or 0))
            draw = _WRITES.rng.random()
        if first and number >= first:
            raise OSError(
                errno.ENOSPC,
                f"No space left on device (injected, write {number}): {self.location}",
            )
        if rate and draw < rate:
            raise OSError(errno.EIO, f"I/O error (injected, write {number}): {self.location}")
        return super().create(overwrite=overwrite)


__all__ = ["FROM", "RATE", "SEED", "FailingFileIO"]
