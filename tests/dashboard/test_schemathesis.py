"""The HTTP API fuzzed from its own /openapi.json with schemathesis, in process (ASGI).

Every operation gets generated requests (names with spaces and control characters, odd
numbers, wrong types, ...): no answer may be a 5xx, and each must conform to the schema
(documented status codes, content types and bodies). Bounded so that the whole run stays well
under 90 s in CI (:data:`EXAMPLES` cases per operation, :data:`BUDGET` seconds in all).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

from dataflow.config import load_settings
from dataflow.dashboard import create_app
from dataflow.pipeline import RunOptions, run_pipeline

EXAMPLES = 15
"""Generated cases per operation."""
BUDGET = 75.0
"""Seconds the whole fuzzing may take (the project's run is set up before)."""


# Whether a request is *accepted* depends on more than its shape (a SQL text that parses, a
# table that exists), so schemathesis' positive/negative data checks do not apply; every
# answer must still be no 5xx and be what the schema says.
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.response_headers_conformance,
]


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The app over a project of its own (named queries are written, queries recorded)."""
    project = tmp_path_factory.mktemp("fuzz") / "project"
    settings = load_settings(project, env={})
    result = run_pipeline(settings, RunOptions(endpoints=["quote"]))
    assert result.status == "succeeded", result.results
    return create_app(settings)


def test_the_api_conforms_to_its_openapi_schema(fuzz_app: Any) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    started = time.monotonic()
    failures: list[str] = []
    operations = 0
    for found in schema.get_all_operations():
        operation = found.ok()
        operations += 1

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            case.call_and_validate(checks=CHECKS)

        try:
            check()
        except (Exception, BaseExceptionGroup) as exc:  # every operation tried, all shown
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
        assert time.monotonic() - started < BUDGET, f"fuzzing took over {BUDGET} s"
    assert operations >= 30
    assert not failures, "\n\n".join(failures)
