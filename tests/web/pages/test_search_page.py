"""Search from the header: library documents with their snippets, and my projects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from tests.fixtures.app import TestUser
from tests.web.pages.browsing import browser


def test_library_hits_and_my_projects_are_found(
    app: FastAPI,
    alice: TestUser,
    bob: TestUser,
    scb_library: dict[str, Any],
    unique: Callable[[str], str],
) -> None:
    name = unique("Bearbetningsmiljö ")
    mine = alice.client.post("/api/v1/projects", json={"name": name, "branchName": "main"}).json()
    with browser(app, alice, "sv") as client:
        page = client.get("/search", params={"q": "bearbetningsmiljö"})
        assert 'id="header-search"' in page.text
    assert page.status_code == 200
    assert f'href="/library/{scb_library["id"]}/file/' in page.text and "<mark>" in page.text
    assert f'href="/projects/{mine["id"]}">' in page.text
    with browser(app, bob) as client:  # not bob's project
        assert mine["id"] not in client.get("/search", params={"q": "bearbetningsmiljö"}).text


def test_a_hostile_query_is_shown_escaped(app: FastAPI, alice: TestUser) -> None:
    with browser(app, alice) as client:
        page = client.get("/search", params={"q": "<script>alert(1)</script>"})
        empty = client.get("/search")
    assert page.status_code == 200 and "<script>alert" not in page.text
    assert "&lt;script&gt;" in page.text
    assert empty.status_code == 200 and "<mark>" not in empty.text
