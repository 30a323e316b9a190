"""The ``Host`` check that keeps DNS rebinding out of a server bound to loopback.

A page on another site can point its own host name at 127.0.0.1 (DNS rebinding) and then talk
to ``dataflow serve`` as if it were that site — same origin, so the browser lets it read the
answers. The one thing it cannot change is the ``Host`` header, which names *its* host. So a
server bound to loopback answers only requests for ``127.0.0.1``, ``localhost`` or ``[::1]``
(any port), plus the names it is told to accept (``dataflow serve --allow-host NAME``), and 400
to anything else.

Example:
    >>> host_name("127.0.0.1:8080"), host_name("[::1]:8080"), host_name("LocalHost.")
    ('127.0.0.1', '::1', 'localhost')
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Collection, MutableMapping
from typing import Any

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
"""The names a loopback server always answers to."""

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def host_name(header: str) -> str:
    """The host of a ``Host`` header, without port, brackets or a trailing dot, lower case."""
    text = header.strip().lower()
    if text.startswith("["):
        return text[1 : text.find("]")] if "]" in text else text
    name = text.rsplit(":", 1)[0] if text.count(":") == 1 else text
    return name.rstrip(".")


class HostCheck:
    """ASGI middleware: 400 for a request whose ``Host`` is not one of ``allowed``."""

    def __init__(
        self, app: Callable[[Scope, Receive, Send], Awaitable[None]], allowed: Collection[str]
    ) -> None:
        self.app = app
        self.allowed = frozenset(host_name(name) for name in allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"host", b"").decode("latin-1")
        if host_name(given) in self.allowed:
            await self.app(scope, receive, send)
            return
        shown = given[:100] or "(none)"
        body = json.dumps(
            {
                "error": f"Host {shown!r} is not served here — open http://127.0.0.1:<port>/, "
                "or start `dataflow serve --allow-host NAME` to accept that name"
            }
        ).encode()
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await send(
            {
                "type": "http.response.start",
                "status": 400,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


__all__ = ["LOOPBACK_HOSTS", "HostCheck", "host_name"]
