"""A circuit breaker per host: stop sending once a host cannot even be connected to.

A connection that cannot open (refused, a name that does not resolve, a failed TLS handshake, a
connect timeout) says nothing about one request and everything about the host: every other
request would fail the same way. So after ``threshold`` consecutive attempts to a host that could
not connect, its circuit *opens*: :meth:`CircuitBreaker.check` raises
:class:`~dataflow.errors.UnreachableError` at once, before credits are reserved or anything is
sent. After ``cooldown`` seconds one attempt may probe the host again (half-open); a connection
that opens closes the circuit, another failure opens it for a new cooldown.

Example:
    >>> breaker = CircuitBreaker(threshold=2, cooldown=60)
    >>> breaker.failure("http://127.0.0.1:9", "connection refused")
    False
    >>> breaker.failure("http://127.0.0.1:9", "connection refused")
    True
    >>> breaker.check("http://127.0.0.1:9")
    Traceback (most recent call last):
    ...
    dataflow.errors.UnreachableError: cannot connect to http://127.0.0.1:9: connection refused \
— is the API reachable? check sources.twelvedata.base_url / your network
"""

from __future__ import annotations

import errno
import re
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from dataflow.errors import UnreachableError

#: httpx errors raised before a request could be sent: the host, not the request, is the problem.
CONNECT_ERRORS: tuple[type[Exception], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.UnsupportedProtocol,
)

_DNS_HINTS = (
    "name or service not known",
    "nodename nor servname",
    "temporary failure in name resolution",
    "no address associated",
    "getaddrinfo failed",
    "name resolution",
)


@dataclass
class _Host:
    failures: int = 0
    opened_at: float | None = None
    reason: str = ""


class CircuitBreaker:
    """Consecutive connection failures per host, and whether its circuit is open.

    Args:
        threshold: consecutive attempts that could not connect before the circuit opens.
        cooldown: seconds an open circuit refuses everything before one probe may go through.
        clock: monotonic time (a fake clock in tests).
    """

    def __init__(
        self,
        threshold: int = 3,
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = max(1, threshold)
        self.cooldown = cooldown
        self._clock = clock
        self._hosts: dict[str, _Host] = {}

    def check(self, host: str) -> None:
        """Raise :class:`UnreachableError` while ``host``'s circuit is open."""
        state = self._hosts.get(host)
        if state is None or state.opened_at is None:
            return
        if self._clock() - state.opened_at >= self.cooldown:
            return  # half-open: let an attempt probe the host
        raise unreachable(host, state.reason)

    def failure(self, host: str, reason: str) -> bool:
        """Count an attempt that could not connect; True when this one opened the circuit."""
        state = self._hosts.setdefault(host, _Host())
        state.failures += 1
        state.reason = reason
        if state.failures < self.threshold:
            return False
        was_open = state.opened_at is not None
        state.opened_at = self._clock()
        return not was_open

    def success(self, host: str) -> None:
        """A connection to ``host`` opened: its circuit closes."""
        self._hosts.pop(host, None)

    def is_open(self, host: str) -> bool:
        """Whether ``host``'s circuit is open now (half-open counts as closed)."""
        try:
            self.check(host)
        except UnreachableError:
            return True
        return False


def unreachable(host: str, reason: str) -> UnreachableError:
    """The one error a run reports for a host it cannot connect to: cause, then what to check."""
    return UnreachableError(
        f"cannot connect to {host}: {reason} — is the API reachable? "
        "check sources.twelvedata.base_url / your network"
    )


def connect_reason(exc: BaseException, *, connect_timeout: float | None = None) -> str:
    """Why a connection could not open, in a few words (no secrets: none are in these errors).

    Example:
        >>> connect_reason(httpx.ConnectError("[Errno 111] Connection refused"))
        'connection refused'
        >>> connect_reason(httpx.ConnectError("[Errno -2] Name or service not known"))
        'the host name does not resolve (DNS)'
    """
    if isinstance(exc, httpx.ConnectTimeout):
        limit = f" {connect_timeout:g} s" if connect_timeout is not None else ""
        return f"no connection within{limit} (sources.twelvedata.connect_timeout)"
    if isinstance(exc, httpx.UnsupportedProtocol):
        return f"unsupported URL scheme ({exc})"
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return _tls(cause)
        if isinstance(cause, ConnectionRefusedError) or getattr(cause, "errno", None) == (
            errno.ECONNREFUSED
        ):
            return "connection refused"
        cause = cause.__cause__ or cause.__context__
    text = str(exc)
    lower = text.lower()
    if "connection refused" in lower:
        return "connection refused"
    if any(hint in lower for hint in _DNS_HINTS):
        return "the host name does not resolve (DNS)"
    if "ssl" in lower or "tls" in lower or "certificate" in lower:
        return _tls(exc)
    if "network is unreachable" in lower:
        return "network unreachable"
    return _first_line(exc) or type(exc).__name__


def _tls(exc: BaseException) -> str:
    detail = re.sub(r"\s*\(_ssl\.c:\d+\)", "", _first_line(exc))
    return f"TLS handshake failed ({detail}; does the server speak https?)"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


__all__ = ["CONNECT_ERRORS", "CircuitBreaker", "connect_reason", "unreachable"]
