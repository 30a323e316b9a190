"""FastAPI dependencies of the app: settings, the metadata database, the token, JSON-only posts.

Settings come from :func:`get_settings`, which reads what :func:`~dataflow.dashboard.create_app`
was given; a test points the whole app at another project with
``app.dependency_overrides[get_settings] = lambda: other_settings``. Everything else (the
metadata database, the catalog, the query runner) is derived from the settings per request, so
the override reaches every route.

Example:
    >>> pool = DatabasePool()
    >>> db = pool.get("sqlite://")
    >>> pool.get("sqlite://") is db
    True
    >>> pool.close()
"""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from dataflow.config import Settings
from dataflow.dashboard.auth import SESSION_COOKIE, SignInLimiter, session_ok, token_ok
from dataflow.metadata.db import MetadataDB

_bearer = HTTPBearer(auto_error=False, description="The token `dataflow serve` was given.")

JSON_TYPES = ("application/json",)
"""Content types a POST may have (``+json`` suffixes too, e.g. ``application/problem+json``)."""


class DatabasePool:
    """One open :class:`MetadataDB` per metadata URL, shared by the requests of an app.

    Opening the metadata database migrates it, which is too slow to do per request; engines
    are thread-safe, so the sync routes (run in FastAPI's thread pool) share one.
    """

    def __init__(self) -> None:
        self._open: dict[str, MetadataDB] = {}
        self._lock = threading.Lock()

    def get(self, url: str) -> MetadataDB:
        """The database at ``url``, opened (and migrated) on first use."""
        with self._lock:
            db = self._open.get(url)
            if db is None:
                from dataflow.metadata import open_metadata

                db = self._open[url] = open_metadata(url)
            return db

    def close(self) -> None:
        """Dispose every engine (the app's shutdown)."""
        with self._lock:
            for db in self._open.values():
                db.dispose()
            self._open.clear()


def get_settings(request: Request) -> Settings:
    """The project's settings, as given to ``create_app`` (override this in tests)."""
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_db(request: Request, settings: SettingsDep) -> MetadataDB:
    """The metadata database of the project the settings name."""
    pool: DatabasePool = request.app.state.databases
    return pool.get(settings.metadata_url)


DbDep = Annotated[MetadataDB, Depends(get_db)]


def client_key(request: Request) -> str:
    """The address failed sign-ins are counted against."""
    return request.client.host if request.client is not None else "unknown"


def check_sign_in_limit(request: Request) -> None:
    """429 when this client failed too many sign-ins lately (see :class:`.auth.SignInLimiter`)."""
    limiter: SignInLimiter = request.app.state.sign_ins
    wait = limiter.retry_after(client_key(request))
    if wait is not None:
        raise HTTPException(
            status_code=429,
            detail=f"too many failed sign-ins from this address: try again in {wait} s",
            headers={"Retry-After": str(wait)},
        )


def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Refuse the request unless it carries ``Authorization: Bearer <token>`` (when one is set),
    or the session cookie of a browser signed in on ``/login``.

    The comparison takes the same time whatever the guess (``secrets.compare_digest``), and
    the token is never echoed back or logged. A wrong bearer token is a failed sign-in: after
    too many, the client gets 429 for a while, right token or not.
    """
    token: str | None = request.app.state.token
    if token is None:
        return
    if credentials is None and session_ok(token, request.cookies.get(SESSION_COOKIE)):
        return  # a browser signed in on /login (the cookie is SameSite=Strict)
    if credentials is not None:
        check_sign_in_limit(request)
        if token_ok(token, credentials.credentials):
            return
        request.app.state.sign_ins.failed(client_key(request))
    raise HTTPException(
        status_code=401,
        detail="missing or wrong token: send the header 'Authorization: Bearer <token>'",
        headers={"WWW-Authenticate": "Bearer"},
    )


def require_json(request: Request) -> None:
    """Accept only JSON request bodies.

    Browsers send cross-site form posts (``application/x-www-form-urlencoded``,
    ``multipart/form-data``, ``text/plain``) without asking; a JSON post from another origin
    needs a CORS preflight, which this app never grants. So refusing everything but JSON here
    makes the POST routes safe from cross-site request forgery.
    """
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind not in JSON_TYPES and not (kind.startswith("application/") and kind.endswith("+json")):
        raise HTTPException(
            status_code=415,
            detail=f"send the body as JSON with 'Content-Type: application/json' (got {kind!r})",
        )


__all__ = [
    "DatabasePool",
    "DbDep",
    "SettingsDep",
    "get_db",
    "get_settings",
    "require_json",
    "require_token",
]
