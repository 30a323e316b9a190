"""Signing in when ``dataflow serve`` has a token: sessions, token strength, failed sign-ins.

API clients send ``Authorization: Bearer <token>``; a browser cannot, so the pages ask for the
token once on ``/login`` (a form post, never a URL parameter: URLs end up in histories and
logs) and set a session cookie. The cookie holds its expiry and an HMAC of it keyed by the
token, not the token: it is ``HttpOnly`` (scripts cannot read it), ``SameSite=Strict`` (other
sites cannot make the browser send it) and lives :data:`SESSION_SECONDS` — the browser drops it
then (``Max-Age``) and the server refuses it after that time whatever the browser does. The
login form carries a CSRF token that must match a cookie set with the form (double submit), so
another site cannot sign a browser in with its own token.

A token must be at least :data:`MIN_TOKEN_LENGTH` characters and about :data:`MIN_TOKEN_BITS`
bits by a character-frequency estimate (:func:`weak_token`); ``secrets.token_urlsafe(32)``
gives ~200. A client that fails :data:`MAX_FAILURES` sign-ins (wrong bearer token or wrong
form token) within :data:`FAILURE_WINDOW` seconds is answered 429 until the window has passed
(:class:`SignInLimiter`), however right its next guess.

Example:
    >>> value = session_value("s3cret", now=1000.0)
    >>> session_ok("s3cret", value, now=1001.0), session_ok("other", value, now=1001.0)
    (True, False)
    >>> session_ok("s3cret", value, now=1000.0 + SESSION_SECONDS)  # expired
    False
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import math
import secrets
import threading
import time

SESSION_COOKIE = "dataflow_session"
CSRF_COOKIE = "dataflow_csrf"
SESSION_SECONDS = 12 * 3600
"""How long a browser stays signed in (then it signs in again)."""
MIN_TOKEN_LENGTH = 16
"""The shortest token ``dataflow serve`` accepts."""
MIN_TOKEN_BITS = 64
"""The least estimated entropy of a token (length x Shannon bits per character)."""
MAX_FAILURES = 5
"""Failed sign-ins a client may make per :data:`FAILURE_WINDOW` before it gets 429."""
FAILURE_WINDOW = 60.0
"""Seconds over which failed sign-ins are counted."""
TOKEN_ADVICE = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
"""How to make a good token (shown when one is refused)."""


def _mac(token: str, expires: int) -> str:
    message = f"dataflow-session-v2:{expires}".encode()
    return hmac.new(token.encode(), message, hashlib.sha256).hexdigest()


def session_value(token: str, *, now: float | None = None) -> str:
    """A new session cookie value for ``token``: ``<expiry>.<HMAC>`` (never the token)."""
    expires = int((time.time() if now is None else now) + SESSION_SECONDS)
    return f"{expires}.{_mac(token, expires)}"


def session_ok(token: str | None, cookie: str | None, *, now: float | None = None) -> bool:
    """True when no token is set, or the cookie is an unexpired session value of the token.

    Example:
        >>> session_ok(None, None), session_ok("t", session_value("t")), session_ok("t", "x")
        (True, True, False)
    """
    if token is None:
        return True
    if not cookie:
        return False
    expires, _, mac = cookie.partition(".")
    if not expires.isdigit() or len(expires) > 12:
        return False
    if int(expires) <= (time.time() if now is None else now):
        return False
    return secrets.compare_digest(mac.encode(), _mac(token, int(expires)).encode())


def token_ok(expected: str, given: str) -> bool:
    """Whether ``given`` is the token, in a time that does not depend on the guess."""
    return secrets.compare_digest(given.encode(), expected.encode())


def token_bits(token: str) -> float:
    """An estimate of a token's entropy: its length times the Shannon bits of its characters.

    Example:
        >>> round(token_bits("aaaaaaaaaaaaaaaa")), round(token_bits("abcdefghijklmnop"))
        (0, 64)
    """
    counts = collections.Counter(token)
    total = len(token)
    per_char = -sum(n / total * math.log2(n / total) for n in counts.values()) if total else 0.0
    return per_char * total


def weak_token(token: str) -> str | None:
    """Why ``token`` is too weak to guard a server, or None when it is strong enough.

    Example:
        >>> weak_token("s3cret")
        'it has 6 characters, fewer than 16'
        >>> weak_token("aaaaaaaabbbbbbbb")
        'it is too predictable (about 16 bits, fewer than 64)'
        >>> weak_token("kX9-vQ2_LmZ7pR4tWc8yHn3") is None
        True
    """
    if len(token) < MIN_TOKEN_LENGTH:
        return f"it has {len(token)} characters, fewer than {MIN_TOKEN_LENGTH}"
    bits = token_bits(token)
    if bits < MIN_TOKEN_BITS:
        return f"it is too predictable (about {bits:.0f} bits, fewer than {MIN_TOKEN_BITS})"
    return None


class SignInLimiter:
    """Failed sign-ins per client over a sliding window (thread-safe).

    Example:
        >>> limiter = SignInLimiter(max_failures=2, window=60.0)
        >>> limiter.failed("1.2.3.4", now=0.0); limiter.failed("1.2.3.4", now=1.0)
        >>> limiter.retry_after("1.2.3.4", now=2.0), limiter.retry_after("5.6.7.8", now=2.0)
        (58, None)
        >>> limiter.retry_after("1.2.3.4", now=61.0) is None
        True
    """

    MAX_CLIENTS = 10_000  # a flood of addresses cannot grow the table without bound

    def __init__(self, max_failures: int = MAX_FAILURES, window: float = FAILURE_WINDOW) -> None:
        self.max_failures = max_failures
        self.window = window
        self._failures: dict[str, collections.deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, client: str, *, now: float | None = None) -> int | None:
        """Seconds the client must wait before it may try again, or None if it may now."""
        now = time.monotonic() if now is None else now
        with self._lock:
            times = self._recent(client, now)
            if times is None or len(times) < self.max_failures:
                return None
            return max(1, math.ceil(times[0] + self.window - now))

    def failed(self, client: str, *, now: float | None = None) -> None:
        """Count a failed sign-in of ``client``."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if client not in self._failures and len(self._failures) >= self.MAX_CLIENTS:
                self._failures.pop(next(iter(self._failures)))
            times = self._failures.setdefault(client, collections.deque())
            times.append(now)
            while len(times) > self.max_failures:
                times.popleft()

    def _recent(self, client: str, now: float) -> collections.deque[float] | None:
        times = self._failures.get(client)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[client]
            return None
        return times


def new_csrf() -> str:
    """A fresh random CSRF value for the login form."""
    return secrets.token_urlsafe(24)


def csrf_ok(cookie: str | None, field: str | None) -> bool:
    """True when the form's CSRF field matches its cookie (both present).

    Example:
        >>> csrf_ok("abc", "abc"), csrf_ok("abc", "abd"), csrf_ok(None, None)
        (True, False, False)
    """
    if not cookie or not field:
        return False
    return secrets.compare_digest(cookie, field)


__all__ = [
    "CSRF_COOKIE",
    "FAILURE_WINDOW",
    "MAX_FAILURES",
    "MIN_TOKEN_BITS",
    "MIN_TOKEN_LENGTH",
    "SESSION_COOKIE",
    "SESSION_SECONDS",
    "TOKEN_ADVICE",
    "SignInLimiter",
    "csrf_ok",
    "new_csrf",
    "session_ok",
    "session_value",
    "token_bits",
    "token_ok",
    "weak_token",
]
