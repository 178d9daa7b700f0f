"""The administrators' status page: every part's state; nobody else sees it."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.fixtures.app import TestUser
from tests.web.pages.browsing import browser


def _browser(app: FastAPI, user: TestUser) -> TestClient:
    return browser(app, user)


def test_an_admin_sees_each_part(app: FastAPI, admin: TestUser) -> None:
    with _browser(app, admin) as client:
        r = client.get("/admin/status", headers={"Accept-Language": "en"})
    assert r.status_code == 200, r.text
    for part in ("Database", "Storage server", "Git repositories", "Workspace supervisor"):
        assert part in r.text
    assert "Operations waiting for repair" in r.text


def test_others_get_the_error_page(app: FastAPI, alice: TestUser) -> None:
    with _browser(app, alice) as client:
        r = client.get("/admin/status", headers={"Accept": "text/html"})
    assert r.status_code == 403 and r.headers["content-type"].startswith("text/html")
    assert "Database" not in r.text


def test_strangers_go_to_login(app: FastAPI) -> None:
    with TestClient(app, follow_redirects=False) as client:
        r = client.get("/admin/status")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/admin/status"


def test_admin_leads_to_the_status_which_still_decides_who_sees_it(
    app: FastAPI, alice: TestUser
) -> None:
    with _browser(app, alice) as client:
        start = client.get("/admin")
        assert start.status_code == 303 and start.headers["location"] == "/admin/status"
        assert client.get("/admin/status").status_code == 403  # a non-admin, still
        assert client.post("/admin").status_code == 405  # no other method
