"""A real workspace in a real browser (Debian's Chromium through Playwright): log in
with the portal's form, load JupyterLab through the proxy, run a notebook cell over
the kernel's WebSocket; other users and strangers are turned away, and the
server's token never reaches the browser."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Locator,
    Page,
    Response,
    expect,
    sync_playwright,
)

from balsam.context import AppContext
from tests.fixtures.app import PASSWORD, TestUser, _make_user
from tests.fixtures.workspaces import wait_state

CHROMIUM = Path("/usr/bin/chromium")
#: JupyterLab's first load through the proxy fetches a few MB of scripts.
LOAD_MS = 90_000
LAB = "#jp-main-dock-panel"
NOTEBOOK = {
    "cells": [{"id": "first", "cell_type": "code", "source": "", "metadata": {},
               "outputs": [], "execution_count": None}],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                "language": "python"}},
    "nbformat": 4, "nbformat_minor": 5,
}

if not CHROMIUM.exists() and os.environ.get("CI") != "true":
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing; CI must install chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                             args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def site(app: FastAPI) -> FastAPI:
    return app


def _user(ctx: AppContext, app: FastAPI, stem: str) -> TestUser:
    return _make_user(ctx, app, f"{stem}-{secrets.token_hex(3)}", False)


@pytest.fixture(scope="module")
def owner(ctx: AppContext, site: FastAPI) -> Iterator[TestUser]:
    user = _user(ctx, site, "browser-owner")
    yield user
    user.client.close()


@pytest.fixture(scope="module")
def ws_project(owner: TestUser) -> dict[str, Any]:
    response = owner.client.post("/api/v1/projects", json={
        "name": f"Webbläsare {secrets.token_hex(3)}", "description": "", "branchName": "main"})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture(scope="module")
def colleague(ctx: AppContext, site: FastAPI, owner: TestUser,
              ws_project: dict[str, Any]) -> Iterator[TestUser]:
    """A member of the project who does not own the workspace."""
    user = _user(ctx, site, "browser-colleague")
    response = owner.client.post(f"/api/v1/projects/{ws_project['id']}/members",
                                 json={"username": user.username})
    assert response.status_code == 201, response.text
    yield user
    user.client.close()


@pytest.fixture(scope="module")
def workspace(owner: TestUser, ws_project: dict[str, Any],
              supervisor: Any) -> Iterator[dict[str, Any]]:
    response = owner.client.post("/api/v1/workspaces", json={
        "name": "I webbläsaren", "templateId": "python", "projectId": ws_project["id"],
        "branchId": "main"})
    assert response.status_code == 201, response.text
    yield wait_state(owner, response.json()["id"], "running")
    owner.client.delete(f"/api/v1/workspaces/{response.json()['id']}")


@contextlib.contextmanager
def screenshot_on_failure(page: Page, path: Path) -> Iterator[None]:
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            page.screenshot(path=str(path), full_page=True)
        print(f"screenshot of the failure: {path}")
        raise


def log_in(page: Page, live_url: str, user: TestUser, next_path: str) -> Response | None:
    """Fill in and submit the login form; the response the browser ends up on."""
    page.goto(f"{live_url}/login?next={next_path}")
    page.fill("#username", user.username)
    page.fill("#password", PASSWORD)
    with page.expect_navigation(timeout=LOAD_MS) as navigation:
        page.click("button[type=submit]")
    return navigation.value


def keep_html_bodies(page: Page) -> list[tuple[str, bytes]]:
    """A list that fills with ``(url, body)`` of every HTML response the page receives
    (read on arrival: a body is gone once the page navigates away)."""
    bodies: list[tuple[str, bytes]] = []

    def keep(response: Response) -> None:
        html = response.headers.get("content-type", "").startswith("text/html")
        if html and not 300 <= response.status < 400:
            bodies.append((response.url, response.body()))

    page.on("response", keep)
    return bodies


def create_notebook(page: Page, base: str, name: str, origin: str) -> None:
    """Create an empty Python notebook through the proxy with the browser's cookie
    (a write: it must come from Balsam's origin)."""
    url, body = f"{base}api/contents/{name}", {"type": "notebook", "content": NOTEBOOK}
    assert page.request.put(url, data=body).status == 403  # no Origin: refused
    created = page.request.put(url, data=body, headers={"Origin": origin})
    assert created.status == 201, created.text()


def open_notebook(page: Page, url: str) -> None:
    """Open a notebook and wait until its kernel answers over its WebSocket (run
    earlier, JupyterLab may start a second kernel, or drop the run and ask for one)."""
    with page.expect_websocket(lambda ws: "/channels" in ws.url, timeout=LOAD_MS) as socket:
        page.goto(url)
    socket.value.wait_for_event("framereceived", timeout=LOAD_MS)


def run_first_cell(page: Page, code: str) -> Locator:
    """Type ``code`` into the open notebook's first cell and run it; its output area."""
    page.locator(".jp-NotebookPanel .jp-Cell .cm-content").first.click()
    page.keyboard.type(code)
    page.keyboard.press("Shift+Enter")
    return page.locator(".jp-NotebookPanel .jp-Cell").first.locator(".jp-OutputArea-output")


def log_out_from_home(page: Page, live_url: str, workspace: dict[str, Any]) -> None:
    """The home page links the workspace; its button logs out, and the workspace
    is closed to the browser from then on."""
    page.goto(f"{live_url}/")
    link = page.get_by_role("link", name=workspace["name"])
    expect(link).to_have_attribute("href", workspace["url"])
    with page.expect_navigation():
        page.get_by_role("button", name="Log out").click()
    assert page.url == f"{live_url}/login"
    page.goto(f"{live_url}{workspace['url']}lab")
    assert page.url.startswith(f"{live_url}/login?next=")  # sent to log in again
    assert page.locator(LAB).count() == 0


def test_owner_runs_a_notebook(chromium: Browser, live_url: str, ctx: AppContext,
                               owner: TestUser, workspace: dict[str, Any],
                               tmp_path_factory: pytest.TempPathFactory) -> None:
    shots = tmp_path_factory.mktemp("browser")
    secret = ctx.workspace_secrets.load(workspace["id"])
    assert secret is not None
    context: BrowserContext = chromium.new_context()
    page = context.new_page()
    received = keep_html_bodies(page)
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    with screenshot_on_failure(page, shots / "failure.png"):
        lab = log_in(page, live_url, owner, f"{workspace['url']}lab")
        assert lab is not None and lab.status == 200
        assert page.url == f"{live_url}{workspace['url']}lab"
        expect(page.locator(".jp-Launcher")).to_be_visible(timeout=LOAD_MS)
        base = f"{live_url}{workspace['url']}"
        create_notebook(page, base, "browser.ipynb", live_url)
        open_notebook(page, f"{base}lab/tree/browser.ipynb")
        expect(run_first_cell(page, "print(6*7)")).to_have_text("42", timeout=LOAD_MS)
        page.screenshot(path=str(shots / "notebook.png"))
        print(f"screenshot of the notebook: {shots / 'notebook.png'}")
        token = secret.server_token
        assert token not in page.content()
        assert token not in page.url
        assert {url for url, _ in received} == {
            f"{live_url}/login?next={workspace['url']}lab", f"{base}lab",
            f"{base}lab/tree/browser.ipynb"}
        for url, body in received:
            assert token.encode() not in body, url
        assert all(token not in c["value"] for c in context.cookies())
        assert not failed, failed
        log_out_from_home(page, live_url, workspace)
    context.close()


def test_a_colleague_is_forbidden(chromium: Browser, live_url: str, colleague: TestUser,
                                  workspace: dict[str, Any]) -> None:
    context = chromium.new_context()
    page = context.new_page()
    response = log_in(page, live_url, colleague, f"{workspace['url']}lab")
    assert any(c["name"] == "balsam_session" for c in context.cookies())
    assert response is not None and response.status == 403
    assert json.loads(response.body())["reason"] == "forbidden"
    assert page.locator(LAB).count() == 0
    context.close()


def test_a_stranger_must_log_in(chromium: Browser, live_url: str,
                                workspace: dict[str, Any]) -> None:
    context = chromium.new_context()
    page = context.new_page()
    response = page.goto(f"{live_url}{workspace['url']}lab")
    assert response is not None and response.status == 200  # the login form
    assert page.url == f"{live_url}/login?next=" + quote(f"{workspace['url']}lab", safe="")
    assert page.locator("input[name=password]").count() == 1
    assert page.locator(LAB).count() == 0
    context.close()
