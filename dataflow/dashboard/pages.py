"""The web pages of ``dataflow serve``: server-side templates, data fetched from ``/api``.

Every page is a Jinja2 template (autoescaped) extending ``base.html``; its script, from
``/static``, fetches JSON from the API routes and renders it with ``textContent`` (never
``innerHTML`` with data). Charts are drawn by Apache ECharts, shipped in ``static/vendor`` —
nothing is loaded from another host, so the pages work offline.

When the server has a token, a page asks for it once on ``/login`` (see :mod:`.auth`).

Example:
    >>> [route.path for route in router.routes][:3]
    ['/', '/login', '/login']
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from dataflow.dashboard.auth import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    SESSION_SECONDS,
    SignInLimiter,
    csrf_ok,
    new_csrf,
    session_ok,
    session_value,
    token_ok,
)
from dataflow.dashboard.deps import client_key

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
TEMPLATES_DIR = HERE / "templates"

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self' data: blob:; "
    # ECharts writes style attributes into its tooltips; styles cannot run code.
    "style-src 'self' 'unsafe-inline'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
"""No script from anywhere but this server, and no inline script at all."""

NAV = (
    ("market", "Market", "/dashboards/market"),
    ("dashboards", "Dashboards", "/dashboards"),
    ("pipeline", "Pipeline", "/pipeline"),
    ("quality", "Data quality", "/quality"),
    ("catalog", "Catalog", "/catalog"),
    ("sql", "SQL editor", "/sql"),
    ("monitoring", "Monitoring", "/monitoring"),
)
"""The navigation bar: (page id, label, path)."""

LOGIN_ERRORS = {
    "wrong": "Wrong token: use the token the server was started with (DATAFLOW_TOKEN).",
    "expired": "The form expired: please sign in again.",
    "throttled": "Too many failed sign-ins from this address: wait a minute and try again.",
}
"""Messages of ``/login?error=...`` (codes, so a link cannot put its own words on the page)."""

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
router = APIRouter(include_in_schema=False)


def security_headers(response: Response) -> Response:
    """Add the page headers: CSP, no framing, no sniffing, no referrer."""
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def render_page(request: Request, template: str, page: str, title: str, **context: Any) -> Response:
    """A page from ``templates/<template>`` — or a redirect to ``/login`` when signed out.

    Args:
        request: the request (its app holds the token).
        template: the template file, e.g. ``"pipeline.html"``.
        page: the navigation id that is highlighted (one of :data:`NAV`).
        title: the page title.
        context: more template variables.
    """
    token: str | None = request.app.state.token
    if not session_ok(token, request.cookies.get(SESSION_COOKIE)):
        target = quote(_local_path(request.url.path), safe="/")
        return RedirectResponse(f"/login?next={target}", status_code=303)
    from dataflow import __version__

    response = templates.TemplateResponse(
        request,
        template,
        {
            "page": page,
            "title": title,
            "nav": NAV,
            "version": __version__,
            "project": request.app.state.settings.project_dir.name,
            "signed_in": token is not None,
            **context,
        },
    )
    return security_headers(response)


def _local_path(path: str) -> str:
    """``path`` when it is a path on this server, else ``/`` (no open redirects).

    Example:
        >>> _local_path("/sql"), _local_path("//evil.example/x"), _local_path("https://x")
        ('/sql', '/', '/')
    """
    if not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


@router.get("/")
def home() -> RedirectResponse:
    """The default dashboard."""
    return RedirectResponse("/dashboards/market", status_code=307)


@router.get("/login")
def login_form(request: Request, next: str = "/", error: str | None = None) -> Response:
    """The sign-in form (only useful when the server has a token)."""
    csrf = new_csrf()
    response = templates.TemplateResponse(
        request,
        "login.html",
        {
            "page": "login",
            "title": "Sign in",
            "nav": (),
            "next": _local_path(next),
            "csrf": csrf,
            "error": LOGIN_ERRORS.get(error or ""),
            "signed_in": False,
            "project": request.app.state.settings.project_dir.name,
        },
    )
    response.set_cookie(CSRF_COOKIE, csrf, httponly=True, samesite="strict", path="/login")
    return security_headers(response)


@router.post("/login")
def login(
    request: Request,
    token: Annotated[str, Form()],
    csrf: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/",
) -> Response:
    """Check the token and set the session cookie; back to the form with a message otherwise."""
    target = _local_path(next)
    if not csrf_ok(request.cookies.get(CSRF_COOKIE), csrf):
        return RedirectResponse(
            f"/login?next={quote(target, safe='/')}&error=expired",
            status_code=303,
        )
    expected: str | None = request.app.state.token
    if expected is not None:
        limiter: SignInLimiter = request.app.state.sign_ins
        if limiter.retry_after(client_key(request)) is not None:
            response = login_form(request, next=target, error="throttled")
            response.status_code = 429
            return response
        if not token_ok(expected, token):
            limiter.failed(client_key(request))
            return RedirectResponse(
                f"/login?next={quote(target, safe='/')}&error=wrong", status_code=303
            )
    response = RedirectResponse(target, status_code=303)
    if expected is not None:
        response.set_cookie(
            SESSION_COOKIE,
            session_value(expected),
            max_age=SESSION_SECONDS,
            httponly=True,
            samesite="strict",
            path="/",
        )
    response.delete_cookie(CSRF_COOKIE, path="/login")
    return response


@router.get("/pipeline")
def pipeline_page(request: Request) -> Response:
    """Runs, stages, freshness, DQ score trend, active alarms."""
    return render_page(request, "pipeline.html", "pipeline", "Pipeline")


@router.get("/quality")
def quality_page(request: Request) -> Response:
    """Rulesets, latest outcomes, failing rules, quarantine counts, history."""
    return render_page(request, "quality.html", "quality", "Data quality")


@router.get("/catalog")
def catalog_page(request: Request) -> Response:
    """Databases, tables, columns, partitions, schema versions, snapshots, sample rows."""
    return render_page(request, "catalog.html", "catalog", "Catalog")


@router.get("/sql")
def sql_page(request: Request) -> Response:
    """The SQL editor: run, results, history, saved queries, CSV, dry-run cost."""
    return render_page(request, "sql.html", "sql", "SQL editor")


@router.get("/monitoring")
def monitoring_page(request: Request) -> Response:
    """Metric charts, alarm states and history, log search."""
    return render_page(request, "monitoring.html", "monitoring", "Monitoring")


__all__ = ["CONTENT_SECURITY_POLICY", "NAV", "STATIC_DIR", "render_page", "router", "templates"]
