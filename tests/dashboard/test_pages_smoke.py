"""Every page loads in a real browser, signed in or not, without a script error."""

from __future__ import annotations

from typing import Any

import pytest

from tests.dashboard.conftest import expect_no_errors

PAGES = ["/pipeline", "/quality", "/catalog", "/sql", "/monitoring"]


@pytest.mark.parametrize("path", PAGES)
def test_page_loads_with_navigation(page: Any, live_server: str, path: str) -> None:
    page.goto(live_server + path)
    assert page.title().endswith("· Dataflow")
    active = page.locator("header nav a.active")
    assert active.count() == 1
    assert active.get_attribute("href") == path
    expect_no_errors(page)
