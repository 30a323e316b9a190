"""Running the simulator: in a background thread for tests and embedding, or blocking for the CLI.

The listening socket is bound before :meth:`SimulatorServer.start` returns (and handed to uvicorn),
so the URL is usable at once, and port 0 picks a free port.

Example:
    >>> import httpx
    >>> with SimulatorServer(SimulatorConfig(seed=1)) as sim:
    ...     httpx.get(f"{sim.url}/price?symbol=AAPL").status_code
    200
"""

from __future__ import annotations

import importlib.util
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import uvicorn

from dataflow.sources.twelvedata.simulator.app import SimulatorConfig, create_app, simulator_of

_START_TIMEOUT = 10.0


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns Nagle's algorithm off only for sockets that say TCP, and
    # with it on, small answers wait ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)  # connections made before uvicorn is ready wait in the backlog
    except OSError:
        sock.close()
        raise
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _uvicorn_config(app: Any) -> uvicorn.Config:
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        http=http,
        loop="asyncio",
        lifespan="off",
        timeout_graceful_shutdown=2,
    )


class SimulatorServer:
    """A simulator on a loopback port, served by uvicorn in a daemon thread."""

    def __init__(
        self, config: SimulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.config = config if config is not None else SimulatorConfig()
        self.host = host
        self.port = port
        self.app = create_app(self.config)
        self.url = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    def start(self) -> SimulatorServer:
        """Bind, start serving in the background, and return once requests are answered."""
        if self._thread is not None:
            return self
        self._socket = _bind(self.host, self.port)
        self.url = _url(self._socket)
        self._server = uvicorn.Server(_uvicorn_config(self.app))
        simulator_of(self.app).connections = self._server.server_state.connections.copy
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name=f"twelvedata-simulator-{self.url}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the Twelve Data simulator did not start on {self.url}")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        """Stop serving (stalled requests are released) and wait for the thread to end."""
        simulator_of(self.app).stopping.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def stats(self) -> dict[str, Any]:
        """The same JSON as ``GET /simulator/stats``."""
        return simulator_of(self.app).stats()

    def reset(self) -> None:
        """Zero stats and credit windows (as ``POST /simulator/reset``)."""
        simulator_of(self.app).reset()

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve(
    config: SimulatorConfig,
    host: str,
    port: int,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve in the foreground until interrupted (Ctrl-C); ``on_ready`` gets the URL once bound.

    Example:
        >>> serve(SimulatorConfig(), "127.0.0.1", 8765, print)  # doctest: +SKIP
        http://127.0.0.1:8765
    """
    sock = _bind(host, port)
    try:
        if on_ready is not None:
            on_ready(_url(sock))
        app = create_app(config)
        server = uvicorn.Server(_uvicorn_config(app))
        simulator_of(app).connections = server.server_state.connections.copy
        server.run(sockets=[sock])
    finally:
        sock.close()
