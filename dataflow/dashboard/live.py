"""The app in a background thread, and Debian's Chromium to look at it — for the browser tests,
the dashboard benchmark and scripts that take screenshots.

:class:`LiveServer` runs an ASGI app under uvicorn on 127.0.0.1 (a free port) in a daemon
thread that stops with the ``with`` block. :func:`chromium` launches the system's Chromium
(``/usr/bin/chromium``, Debian's ``chromium`` package, or ``DATAFLOW_CHROMIUM``) headless through
Playwright's sync API, with the flags that keep it off the network; Playwright never downloads
a browser here. Playwright is a development dependency (the ``dev`` extra).

Example:
    >>> from dataflow.config import load_settings
    >>> from dataflow.dashboard import create_app
    >>> with LiveServer(create_app(load_settings("/nonexistent-project", env={}))) as server:
    ...     import httpx
    ...     httpx.get(server.url + "/healthz").status_code
    200
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("DATAFLOW_CHROMIUM", "/usr/bin/chromium")
"""The browser: Debian's package (installed by ``make system-deps``)."""

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
"""Headless in a container as root, and no connection attempts to the outside world."""


class LiveServer:
    """An ASGI app under uvicorn on 127.0.0.1 (a free port), in a daemon thread.

    Args:
        app: the app, e.g. :func:`~dataflow.dashboard.create_app`'s.
        start_timeout: seconds to wait for the server to listen.
    """

    def __init__(self, app: Any, *, start_timeout: float = 30.0) -> None:
        import uvicorn

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port: int = probe.getsockname()[1]
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{self.port}"
        self.start_timeout = start_timeout

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"the server on {self.url} did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@contextmanager
def chromium() -> Iterator[Any]:
    """Headless Chromium (the system's) through Playwright's sync API.

    While it is open, the calling thread counts as running an event loop (Playwright's sync
    API), so ``asyncio.run`` there fails: run such work in another thread.

    Raises:
        RuntimeError: no Chromium at :data:`CHROMIUM` (the fix: ``make system-deps``).
    """
    if not Path(CHROMIUM).exists():
        raise RuntimeError(
            f"{CHROMIUM} is missing: run 'make system-deps' (installs Debian's chromium)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "LiveServer", "chromium"]
