"""A logged-in browser for page tests: the session cookie, and form posts as the
portal's pages send them (same origin, the session's CSRF token)."""

from __future__ import annotations

import re

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.fixtures.app import PASSWORD, TestUser

ORIGIN = "http://testserver"


def browser(app: FastAPI, user: TestUser | None = None, language: str = "en") -> TestClient:
    """A client that does not follow redirects, logged in as ``user`` (if given),
    asking for ``language``."""
    client = TestClient(
        app,
        follow_redirects=False,
        raise_server_exceptions=False,
        headers={"Accept-Language": language, "Accept": "text/html"},
    )
    if user is not None:
        r = client.post(
            "/login",
            data={"username": user.username, "password": PASSWORD, "next": "/"},
            headers={"Origin": ORIGIN},
        )
        assert r.status_code == 303, r.text
    return client


def csrf_of(client: httpx.Client) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/").text)
    assert found is not None, "no CSRF token on the home page"
    return found.group(1)


def post(client: httpx.Client, url: str, data: dict[str, str] | None = None) -> httpx.Response:
    """A form post from the portal's own page."""
    return client.post(
        url, data={**(data or {}), "csrf": csrf_of(client)}, headers={"Origin": ORIGIN}
    )


def followed(client: httpx.Client, answer: httpx.Response) -> httpx.Response:
    """The page a form's answer sends the browser to (post, redirect, get: a reload
    shows the page again instead of posting the form a second time)."""
    assert answer.status_code == 303, (answer.status_code, answer.text[:300])
    assert "done=" in answer.headers["location"]
    return client.get(answer.headers["location"])
