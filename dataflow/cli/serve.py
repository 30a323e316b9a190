"""`dataflow serve`: the web app (dashboards and pages) and the HTTP API of a project, with uvicorn.

Safety: the server binds to 127.0.0.1 unless told otherwise. Bound to any address other than a
loopback one (127.0.0.0/8, ``::1``, ``localhost``) it refuses to start without a token; with a
token, every ``/api`` route and ``/metrics`` needs ``Authorization: Bearer <token>``, and a
browser signs in once on ``/login`` (an HttpOnly, SameSite=Strict session cookie). Give the
token through the environment (``DATAFLOW_TOKEN``) rather than ``--token``: command lines are
visible to every user of the machine in ``ps``. The token is never printed or logged, and a
weak one is refused (at least 16 characters and ~64 bits: see ``dataflow.dashboard.auth``).
POST routes accept JSON bodies only, so a page on another site cannot post a form to them
(CSRF). Bound to loopback, the server answers only requests whose ``Host`` is 127.0.0.1,
localhost or [::1] (or a name given with ``--allow-host``): DNS rebinding gets 400.
SIGTERM/SIGINT stop every running query, so the server exits within seconds.
"""

from __future__ import annotations

import ipaddress
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from dataflow.cli.common import ProjectOption, handle_errors, settings_for

if TYPE_CHECKING:
    from types import FrameType

    import uvicorn

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def register(app: typer.Typer) -> None:
    """Add the `serve` command."""
    app.command("serve")(serve)


def is_loopback(host: str) -> bool:
    """True when ``host`` only accepts connections from this machine.

    Example:
        >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("localhost")
        (True, True, True)
        >>> is_loopback("0.0.0.0"), is_loopback("192.168.1.5"), is_loopback("example.org")
        (False, False, False)
    """
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


@handle_errors
def serve(
    host: Annotated[
        str, typer.Option("--host", help="Address to bind; not loopback needs a token.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port (0: any free port).")
    ] = 8080,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="DATAFLOW_TOKEN",
            show_default=False,
            help="Require 'Authorization: Bearer TOKEN' on /api and /metrics "
            "(prefer env DATAFLOW_TOKEN: command lines are visible in ps).",
        ),
    ] = None,
    allow_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-host",
            help="Also answer requests for this host name (repeat for more); on loopback only "
            "127.0.0.1, localhost and [::1] are answered otherwise (DNS rebinding).",
        ),
    ] = None,
    project: ProjectOption = None,
) -> None:
    """Serve the web app (Market dashboard, pipeline, data quality, catalog, SQL editor,
    monitoring) and the HTTP API (/docs), with Prometheus /metrics."""
    from dataflow.errors import ConfigError

    token = token or None  # an empty DATAFLOW_TOKEN is no token
    if token is None and not is_loopback(host):
        raise ConfigError(
            f"--host {host} is not a loopback address: a token is required — set "
            "DATAFLOW_TOKEN (or pass --token), or bind to 127.0.0.1"
        )
    if token is not None:
        from dataflow.dashboard.auth import TOKEN_ADVICE, weak_token

        problem = weak_token(token)
        if problem is not None:
            raise ConfigError(f"the token is too weak: {problem} — make one with {TOKEN_ADVICE}")
    _check_port_free(host, port)
    import uvicorn

    from dataflow.dashboard import create_app
    from dataflow.dashboard.hosts import LOOPBACK_HOSTS

    allowed: set[str] | None = set(allow_host or ()) or None
    if is_loopback(host):
        allowed = {*LOOPBACK_HOSTS, host.strip("[]"), *(allow_host or ())}
    settings = settings_for(project)
    app = create_app(settings, token=token, warm_up=True, allowed_hosts=allowed)
    shown = f"[{host}]" if ":" in host else host
    where = f"http://{shown}:{port}" if port else f"http://{shown} on a free port (below)"
    access = (
        "token required (browsers sign in at /login; API clients send "
        "'Authorization: Bearer <token>' to /api and /metrics)"
        if token
        else "no token: reachable from this machine only"
    )
    # stderr, like uvicorn's own lines; never the token itself.
    print(
        f"dataflow serve: project {settings.project_dir} at {where} — {access}; "
        "dashboards at /, API docs at /docs",
        file=sys.stderr,
        flush=True,
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="info",
        server_header=False,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
    )
    stopping_server(config).run()


def _check_port_free(host: str, port: int) -> None:
    """A port another process holds is one line and exit 2, not uvicorn's exit 3."""
    import socket

    from dataflow.errors import ConfigError

    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}) — another server may "
                "be using it: pass --port P (or --port 0 for any free port)"
            ) from None


SHUTDOWN_GRACE_SECONDS = 5
"""How long a stopping server waits for open requests (their queries are stopped at once)."""


def stopping_server(config: uvicorn.Config) -> uvicorn.Server:
    """uvicorn's server, which on SIGTERM/SIGINT first stops every running query.

    uvicorn waits for open requests before it exits; a query running in one of them would hold
    the server for as long as it runs. Stopping them (CANCELLED, "the server is shutting
    down") lets the server exit within a few seconds.
    """
    import uvicorn

    from dataflow.query.stop import stop_all

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            stop_all()
            super().handle_exit(sig, frame)

    return Server(config)


__all__ = ["is_loopback", "register", "serve", "stopping_server"]
