"""Signing in to the pages of a server with a token: the form, the cookie, CSRF, redirects."""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.exceptions import StarletteDeprecationWarning

from dataflow.config import Settings
from dataflow.dashboard import create_app
from dataflow.dashboard.auth import (
    MAX_FAILURES,
    SESSION_COOKIE,
    SESSION_SECONDS,
    session_ok,
    session_value,
)
from dataflow.dashboard.live import LiveServer
from tests.dashboard.conftest import expect_no_errors

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

TOKEN = "page-t0ken-for-tests"


@pytest.fixture
def client(web_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(web_settings, token=TOKEN)) as test_client:
        yield test_client


def _csrf(client: TestClient, path: str = "/login?next=/sql") -> str:
    page = client.get(path)
    assert page.status_code == 200
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match, page.text
    return match.group(1)


def test_a_signed_out_browser_is_sent_to_login_with_its_page(client: TestClient) -> None:
    for path in ("/pipeline", "/sql", "/dashboards/market"):
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"] == f"/login?next={path}"
    assert client.get("/api/runs").status_code == 401


def test_the_right_token_sets_a_cookie_that_is_not_the_token(client: TestClient) -> None:
    csrf = _csrf(client)
    answer = client.post(
        "/login", data={"token": TOKEN, "csrf": csrf, "next": "/sql"}, follow_redirects=False
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/sql"
    cookie = answer.headers["set-cookie"]
    value = re.search(rf"{SESSION_COOKIE}=([^;]+)", cookie)
    assert value is not None, cookie
    assert session_ok(TOKEN, value.group(1))
    assert f"Max-Age={SESSION_SECONDS}" in cookie
    assert TOKEN not in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie.replace("Strict", "strict")
    assert client.get("/sql").status_code == 200
    assert client.get("/api/runs").status_code == 200  # the API accepts the session too


def test_the_session_expires_on_the_server_too(client: TestClient) -> None:
    # A cookie past its time is refused even if the browser kept it (Max-Age is advice).
    old = session_value(TOKEN, now=time.time() - SESSION_SECONDS - 1)
    client.cookies.set(SESSION_COOKIE, old)
    assert client.get("/sql", follow_redirects=False).status_code == 303
    assert client.get("/api/runs").status_code == 401
    # Nor can a client stretch it: the expiry is signed.
    expires, _, mac = session_value(TOKEN).partition(".")
    client.cookies.set(SESSION_COOKIE, f"{int(expires) + 10 * SESSION_SECONDS}.{mac}")
    assert client.get("/api/runs").status_code == 401
    client.cookies.set(SESSION_COOKIE, session_value(TOKEN))
    assert client.get("/api/runs").status_code == 200


def test_failed_sign_ins_are_limited_per_client(client: TestClient) -> None:
    for _ in range(MAX_FAILURES):
        wrong = client.post(
            "/login",
            data={"token": "guess", "csrf": _csrf(client), "next": "/sql"},
            follow_redirects=False,
        )
        assert wrong.status_code == 303
    # Now even the right token is refused for a while: guessing cannot go on.
    blocked = client.post("/login", data={"token": TOKEN, "csrf": _csrf(client), "next": "/sql"})
    assert blocked.status_code == 429, blocked.text
    assert "Too many failed sign-ins" in blocked.text
    api = client.get("/api/runs", headers={"Authorization": f"Bearer {TOKEN}"})
    assert api.status_code == 429, api.text
    assert int(api.headers["retry-after"]) > 0


def test_wrong_bearer_tokens_are_limited_too(client: TestClient) -> None:
    for _ in range(MAX_FAILURES):
        assert client.get("/api/runs", headers={"Authorization": "Bearer x"}).status_code == 401
    refused = client.get("/api/runs", headers={"Authorization": f"Bearer {TOKEN}"})
    assert refused.status_code == 429
    assert TOKEN not in refused.text


def test_a_wrong_token_or_a_missing_csrf_value_signs_nobody_in(client: TestClient) -> None:
    csrf = _csrf(client)
    wrong = client.post(
        "/login", data={"token": "guess", "csrf": csrf, "next": "/sql"}, follow_redirects=False
    )
    assert wrong.headers["location"] == "/login?next=/sql&error=wrong"
    assert "set-cookie" not in wrong.headers or SESSION_COOKIE not in wrong.headers["set-cookie"]
    assert "Wrong token" in client.get(wrong.headers["location"]).text
    forged = client.post(
        "/login",
        data={"token": TOKEN, "csrf": "not-the-cookie", "next": "/sql"},
        follow_redirects=False,
    )
    assert forged.headers["location"] == "/login?next=/sql&error=expired"
    assert client.get("/sql", follow_redirects=False).status_code == 303


def test_next_never_leaves_the_server(client: TestClient) -> None:
    csrf = _csrf(client, "/login?next=//evil.example/x")
    answer = client.post(
        "/login",
        data={"token": TOKEN, "csrf": csrf, "next": "https://evil.example/"},
        follow_redirects=False,
    )
    assert answer.headers["location"] == "/"


def test_error_codes_only_show_our_own_words(client: TestClient) -> None:
    page = client.get("/login?error=Call+555-0100+to+unlock")
    assert "555-0100" not in page.text


def test_pages_carry_a_strict_content_security_policy(client: TestClient) -> None:
    headers = client.get("/login").headers
    policy = headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy.split("script-src", 1)[1].split(";", 1)[0]
    assert headers["x-frame-options"] == "DENY"


def test_a_browser_signs_in_and_sees_the_pipeline(page: Any, web_settings: Settings) -> None:
    with LiveServer(create_app(web_settings, token=TOKEN)) as server:
        page.goto(server.url + "/pipeline")
        assert page.url == server.url + "/login?next=/pipeline"
        page.fill("input[name=token]", TOKEN)
        page.click("button[type=submit]")
        page.wait_for_url(server.url + "/pipeline")
        page.wait_for_selector("header nav a.active[href='/pipeline']")
        expect_no_errors(page)
        cookies = {c["name"]: c for c in page.context.cookies()}
        assert cookies[SESSION_COOKIE]["httpOnly"] is True
        assert TOKEN not in cookies[SESSION_COOKIE]["value"]
