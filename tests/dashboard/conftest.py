"""Shared fixtures of the web tests: one real pipeline run, a live server, a real browser.

``web_settings`` is a project after one full default pipeline run (simulator, local
warehouse). ``live_server`` serves it with uvicorn on 127.0.0.1 (a free port) in a thread that
stops with the session. ``browser`` is Debian's Chromium driven by Playwright — launched by
path, headless, with the flags that keep it off the network; Playwright never downloads a
browser here. ``page`` is a fresh tab that fails the test on any script error or failed
request, and leaves a screenshot in ``test-artifacts/screenshots/`` when its test fails.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dataflow.config import Settings, load_settings
from dataflow.dashboard.live import LiveServer, chromium
from dataflow.pipeline import RunOptions, run_pipeline

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


@pytest.fixture(scope="session")
def web_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A project after one full default pipeline run."""
    settings = load_settings(tmp_path_factory.mktemp("web") / "project", env={})
    # In a thread of its own: Playwright's sync API keeps an event loop running on this one,
    # and the ingest stage runs its own (asyncio.run).
    outcome: list[Any] = []
    worker = threading.Thread(target=lambda: outcome.append(run_pipeline(settings, RunOptions())))
    worker.start()
    worker.join()
    assert outcome, "the pipeline run raised (see the log above)"
    assert outcome[0].status in {"succeeded", "partial"}, outcome[0].results
    return settings


@pytest.fixture(scope="session")
def live_server(web_settings: Settings) -> Iterator[str]:
    """The base URL of ``dataflow serve``'s app over ``web_settings`` (no token)."""
    from dataflow.dashboard import create_app

    with LiveServer(create_app(web_settings)) as server:
        yield server.url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium (Debian's package) through Playwright, for one test module.

    Per module, not per session: while Playwright's sync API is open, the main thread counts
    as running an event loop, and every other test that calls ``asyncio.run`` would fail.
    """
    try:
        with chromium() as launched:
            yield launched
    except RuntimeError as exc:
        if "make system-deps" in str(exc):
            pytest.fail(str(exc))
        raise


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


class PageErrors(list[str]):
    """Script errors and failed requests seen by a page (each a one-line description)."""


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A new tab (1400x900); fails the test on page script errors or failed requests."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    tab = context.new_page()
    errors = PageErrors()
    tab.on("pageerror", lambda exc: errors.append(f"script error: {exc}"))

    def on_console(msg: Any) -> None:
        if msg.type == "error":
            errors.append(f"console error: {msg.text}")

    tab.on("console", on_console)
    tab.on("requestfailed", lambda req: errors.append(f"request failed: {req.url}"))
    tab.page_errors = errors
    try:
        yield tab
        call = getattr(request.node, "report_call", None)
        if call is not None and call.failed:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            tab.screenshot(path=str(SCREENSHOTS / f"{request.node.name}.png"), full_page=True)
    finally:
        context.close()


def expect_no_errors(tab: Any, allowed: tuple[str, ...] = ()) -> None:
    """Assert the page had no script error or failed request (except ``allowed`` substrings)."""
    seen = [e for e in tab.page_errors if not any(part in e for part in allowed)]
    assert not seen, "\n".join(seen)
