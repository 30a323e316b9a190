"""Spark tests run where the `spark` extra and Java are installed (`make test` installs both)."""

from __future__ import annotations

import shutil

import pytest

pytest.importorskip("pyspark", reason="the spark extra is not installed")
if shutil.which("java") is None:
    pytest.skip("Java 17 is not installed (scripts/system-deps.sh)", allow_module_level=True)
