"""The portal speaks Swedish to a Swedish browser, English otherwise, and the
switch in the header sticks."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient


def test_a_swedish_browser_gets_swedish(app: FastAPI) -> None:
    with TestClient(app, follow_redirects=False) as client:
        r = client.get("/login", headers={"Accept-Language": "sv-SE,sv;q=0.9,en;q=0.8"})
    assert r.status_code == 200 and '<html lang="sv">' in r.text
    assert "Logga in i Balsam" in r.text and "Log in to Balsam" not in r.text


def test_an_english_browser_gets_english(app: FastAPI) -> None:
    with TestClient(app, follow_redirects=False) as client:
        r = client.get("/login", headers={"Accept-Language": "de;q=1,en;q=0.5,sv;q=0.1"})
    assert '<html lang="en">' in r.text and "Log in to Balsam" in r.text


def test_the_switch_sticks(app: FastAPI) -> None:
    with TestClient(app, follow_redirects=False) as client:
        r = client.get("/language", params={"lang": "sv", "next": "//evil.example/"})
        assert r.status_code == 303 and r.headers["location"] == "/"
        r = client.get("/login", headers={"Accept-Language": "en"})
    assert '<html lang="sv">' in r.text


def test_a_browser_gets_the_error_page_and_a_program_problem_json(app: FastAPI) -> None:
    with TestClient(app, follow_redirects=False) as client:
        page = client.get("/no-such-page", headers={"Accept": "text/html", "Accept-Language": "sv"})
        api = client.get("/api/v1/no-such", headers={"Accept": "text/html"})
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "Det finns ingen sida på den här adressen." in page.text
    assert page.headers["x-request-id"] in page.text
    assert api.status_code == 404 and api.headers["content-type"] == "application/problem+json"
