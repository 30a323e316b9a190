"""Signing in to the web pages when ``dataflow serve`` has a token.

API clients send ``Authorization: Bearer <token>``; a browser cannot, so the pages ask for the
token once on ``/login`` (a form post, never a URL parameter: URLs end up in histories and
logs) and set a session cookie. The cookie holds an HMAC of the token, not the token: it is
``HttpOnly`` (scripts cannot read it) and ``SameSite=Strict`` (other sites cannot make the
browser send it). The login form itself carries a CSRF token that must match a cookie set with
the form (double submit), so another site cannot sign a browser in with its own token.

Example:
    >>> session_value("s3cret") == session_value("s3cret") != session_value("other")
    True
    >>> len(session_value("s3cret"))
    64
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SESSION_COOKIE = "dataflow_session"
CSRF_COOKIE = "dataflow_csrf"


def session_value(token: str) -> str:
    """The session cookie's value for a token: an HMAC, so the cookie never holds the token."""
    return hmac.new(token.encode(), b"dataflow-session-v1", hashlib.sha256).hexdigest()


def session_ok(token: str | None, cookie: str | None) -> bool:
    """True when no token is set, or when the cookie is the session value of the token.

    Example:
        >>> session_ok(None, None), session_ok("t", session_value("t")), session_ok("t", "x")
        (True, True, False)
    """
    if token is None:
        return True
    return cookie is not None and secrets.compare_digest(cookie, session_value(token))


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


__all__ = ["CSRF_COOKIE", "SESSION_COOKIE", "csrf_ok", "new_csrf", "session_ok", "session_value"]
