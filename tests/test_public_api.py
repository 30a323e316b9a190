"""The curated public API of `import dataflow`."""

from __future__ import annotations

import subprocess
import sys

import pytest

import dataflow

HEAVY = ("duckdb", "pyiceberg", "httpx", "sqlalchemy", "pydantic")


def test_all_is_sorted_and_every_name_resolves() -> None:
    assert dataflow.__all__ == sorted(dataflow.__all__)
    for name in dataflow.__all__:
        assert getattr(dataflow, name) is not None, name


def test_importing_the_package_stays_cheap() -> None:
    code = f"import sys, dataflow; print([m for m in {HEAVY!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_names_are_attribute_errors() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = dataflow.nope  # type: ignore[attr-defined]
