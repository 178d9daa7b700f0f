"""A real workspace in a real browser (Debian's Chromium through Playwright): log in
with the portal's form, load JupyterLab through the proxy, run a notebook cell over
the kernel's WebSocket; other users and strangers are turned away, and the
server's token never reaches the browser. A new user also manages a workspace from
the home page's forms alone: create, open, stop, start, delete."""

from __future__ import annotations

import contextlib
import secrets
import time
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
)

from balsam.context import AppContext
from tests.fixtures.app import PASSWORD, TestUser, _make_user
from tests.fixtures.chromium import skip_without_chromium
from tests.fixtures.workspaces import wait_state, ws_path

#: JupyterLab's first load through the proxy fetches a few MB of scripts.
LOAD_MS = 90_000
LAB = "#jp-main-dock-panel"
NOTEBOOK = {
    "cells": [
        {
            "id": "first",
            "cell_type": "code",
            "source": "",
            "metadata": {},
            "outputs": [],
            "execution_count": None,
        }
    ],
    "metadata": {
        "kernelspec": {
            "name": "python3",
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
        }
    },
    "nbformat": 4,
    "nbformat_minor": 5,
}

#: Run in a workspace page: open a portal page in a window and read it.
WINDOW_OPEN = """async path => {
  const w = window.open(path);
  await new Promise(r => setTimeout(r, 3000));
  let read;
  try { read = w.document.querySelector("input[name=csrf]").value; } catch (e) { read = "blocked"; }
  if (w) w.close();
  return {opened: w !== null, read};
}"""

skip_without_chromium()


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
    response = owner.client.post(
        "/api/v1/projects",
        json={
            "name": f"Webbläsare {secrets.token_hex(3)}",
            "description": "",
            "branchName": "main",
        },
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture(scope="module")
def colleague(
    ctx: AppContext, site: FastAPI, owner: TestUser, ws_project: dict[str, Any]
) -> Iterator[TestUser]:
    """A member of the project who does not own the workspace."""
    user = _user(ctx, site, "browser-colleague")
    response = owner.client.post(
        f"/api/v1/projects/{ws_project['id']}/members", json={"username": user.username}
    )
    assert response.status_code == 201, response.text
    yield user
    user.client.close()


@pytest.fixture(scope="module")
def workspace(
    owner: TestUser, ws_project: dict[str, Any], supervisor: Any
) -> Iterator[dict[str, Any]]:
    response = owner.client.post(
        "/api/v1/workspaces",
        json={
            "name": "I webbläsaren",
            "templateId": "python",
            "projectId": ws_project["id"],
            "branchId": "main",
        },
    )
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
        page.click("main button[type=submit]")
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
    link = page.get_by_role("link", name=workspace["name"], exact=True)
    expect(link).to_have_attribute("href", ws_path(workspace))
    with page.expect_navigation():
        page.get_by_role("button", name="Log out").click()
    assert page.url == f"{live_url}/login"
    page.goto(f"{live_url}{ws_path(workspace)}lab")
    assert page.url.startswith(f"{live_url}/login?next=")  # sent to log in again
    assert page.locator(LAB).count() == 0


def test_owner_runs_a_notebook(
    chromium: Browser,
    live_url: str,
    ctx: AppContext,
    owner: TestUser,
    workspace: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    shots = tmp_path_factory.mktemp("browser")
    secret = ctx.workspace_secrets.load(workspace["id"])
    assert secret is not None
    context: BrowserContext = chromium.new_context()
    page = context.new_page()
    received = keep_html_bodies(page)
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    with screenshot_on_failure(page, shots / "failure.png"):
        lab = log_in(page, live_url, owner, f"{ws_path(workspace)}lab")
        assert lab is not None and lab.status == 200
        assert page.url == f"{live_url}{ws_path(workspace)}lab"
        expect(page.locator(".jp-Launcher")).to_be_visible(timeout=LOAD_MS)
        base = f"{live_url}{ws_path(workspace)}"
        create_notebook(page, base, "browser.ipynb", live_url)
        open_notebook(page, f"{base}lab/tree/browser.ipynb")
        expect(run_first_cell(page, "print(6*7)")).to_have_text("42", timeout=LOAD_MS)
        page.screenshot(path=str(shots / "notebook.png"))
        print(f"screenshot of the notebook: {shots / 'notebook.png'}")
        token = secret.server_token
        assert token not in page.content()
        assert token not in page.url
        assert {url for url, _ in received} == {
            f"{live_url}/login?next={ws_path(workspace)}lab",
            f"{base}lab",
            f"{base}lab/tree/browser.ipynb",
        }
        for url, body in received:
            assert token.encode() not in body, url
        assert all(token not in c["value"] for c in context.cookies())
        assert not failed, failed
        log_out_from_home(page, live_url, workspace)
    context.close()


def test_a_colleague_is_forbidden(
    chromium: Browser, live_url: str, colleague: TestUser, workspace: dict[str, Any]
) -> None:
    context = chromium.new_context()
    page = context.new_page()
    response = log_in(page, live_url, colleague, f"{ws_path(workspace)}lab")
    assert any(c["name"] == "balsam_session" for c in context.cookies())
    assert response is not None and response.status == 403
    # A person reads why, on the portal's error page (a script gets problem+json).
    assert response.headers["content-type"].startswith("text/html")
    expect(page.get_by_role("alert")).to_be_visible()
    assert page.locator(LAB).count() == 0
    context.close()


def test_a_stranger_must_log_in(
    chromium: Browser, live_url: str, workspace: dict[str, Any]
) -> None:
    context = chromium.new_context()
    page = context.new_page()
    response = page.goto(f"{live_url}{ws_path(workspace)}lab")
    assert response is not None and response.status == 200  # the login form
    assert page.url == f"{live_url}/login?next=" + quote(f"{ws_path(workspace)}lab", safe="")
    assert page.locator("input[name=password]").count() == 1
    assert page.locator(LAB).count() == 0
    context.close()


# -- a new user, from the home page alone -----------------------------------------------

#: The first start of a template builds its environment (kept under .cache/environments).
START_S = 600
S3_CELL = """import os, boto3
s3 = boto3.client('s3')
key = os.environ['BALSAM_DATA_PREFIX'] + 'from-browser.txt'
s3.put_object(Bucket=os.environ['BALSAM_BUCKET'], Key=key, Body=b'hej')
print(s3.get_object(Bucket=os.environ['BALSAM_BUCKET'], Key=key)['Body'].read().decode())
written = open(os.path.expanduser('~/kvar.txt'), 'w').write('kvar')"""
GIT_CELL = """import os, subprocess
repo = os.path.expanduser('~/' + os.environ['BALSAM_PROJECT'])
open(os.path.join(repo, 'webbläsare.txt'), 'w').write('från webbläsaren\\n')
for cmd in (['git', 'add', 'webbläsare.txt'], ['git', 'commit', '-qm', 'Från webbläsaren'],
            ['git', 'push', '-q', 'origin', 'main']):
    done = subprocess.run(cmd, cwd=repo, capture_output=True, text=True)
    assert done.returncode == 0, (cmd, done.stderr)
print('PUSHED', 6 * 7)"""


def put_notebook(page: Page, base: str, name: str, origin: str, *sources: str) -> None:
    """A notebook whose code cells hold ``sources`` (nothing to type into an editor)."""
    cells: list[dict[str, Any]] = [
        {
            "id": f"cell-{i}",
            "cell_type": "code",
            "source": source,
            "metadata": {},
            "outputs": [],
            "execution_count": None,
        }
        for i, source in enumerate(sources)
    ]
    created = page.request.put(
        f"{base}api/contents/{name}",
        headers={"Origin": origin},
        data={"type": "notebook", "content": {**NOTEBOOK, "cells": cells}},
    )
    assert created.status == 201, created.text()


def run_cells(page: Page, count: int) -> Locator:
    """Run the open notebook's first ``count`` cells; its cells."""
    cells = page.locator(".jp-NotebookPanel:visible .jp-Cell")
    cells.first.locator(".cm-content").click()
    for _ in range(count):
        page.keyboard.press("Shift+Enter")
    return cells


def reload_home_until(
    page: Page, live_url: str, shown: Locator, timeout_s: float = START_S
) -> None:
    """Reload the home page (as a user would) until ``shown`` is on it."""
    deadline = time.monotonic() + timeout_s
    while True:
        page.goto(f"{live_url}/")
        if shown.count():
            return
        assert "failed" not in (page.locator("tbody").text_content() or ""), page.content()
        assert time.monotonic() < deadline, page.content()
        page.wait_for_timeout(500)


def submit(page: Page, button: Locator) -> None:
    with page.expect_navigation(timeout=LOAD_MS):
        button.click()


def test_a_new_user_works_from_the_home_page(
    chromium: Browser,
    live_url: str,
    ctx: AppContext,
    site: FastAPI,
    supervisor: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    shots = tmp_path_factory.mktemp("home")
    user, other = _user(ctx, site, "browser-newcomer"), _user(ctx, site, "browser-other")
    made = user.client.post(
        "/api/v1/projects",
        json={"name": f"Hemsidan {secrets.token_hex(3)}", "description": "", "branchName": "main"},
    )
    assert made.status_code == 201, made.text
    project = made.json()
    pid = project["id"]
    added = user.client.post(f"/api/v1/projects/{pid}/members", json={"username": other.username})
    assert added.status_code == 201, added.text
    context, others = chromium.new_context(), chromium.new_context()
    page = context.new_page()
    stranger_page = others.new_page()
    created: list[str] = []
    try:
        with screenshot_on_failure(page, shots / "failure.png"):
            home = log_in(page, live_url, user, "/")
            assert home is not None and home.status == 200
            expect(page.get_by_text("You have no workspaces.")).to_be_visible()
            page.fill("#ws-name", "Från hemsidan")
            page.select_option("#ws-target", f"{pid}/main")
            page.select_option("#ws-template", "python")
            submit(page, page.get_by_role("button", name="Create workspace"))
            assert page.url == f"{live_url}/"
            (listed,) = user.client.get("/api/v1/workspaces", params={"all": "false"}).json()
            created.append(listed["id"])
            wid, base = listed["id"], f"{live_url}{ws_path(listed)}"
            expect(page.locator("tbody")).to_contain_text("Från hemsidan")
            opener = page.get_by_role("link", name="Open")
            reload_home_until(page, live_url, opener)
            expect(opener).to_have_attribute("href", f"{ws_path(listed)}lab")

            # Another user (a member of the project) may not open it.
            refused = log_in(stranger_page, live_url, other, f"{ws_path(listed)}lab")
            assert refused is not None and refused.status == 403
            assert stranger_page.locator(LAB).count() == 0

            submit(page, opener)
            assert page.url == f"{base}lab"
            expect(page.locator(".jp-Launcher")).to_be_visible(timeout=LOAD_MS)
            put_notebook(page, base, "hemsidan.ipynb", live_url, S3_CELL, GIT_CELL)
            open_notebook(page, f"{base}lab/tree/hemsidan.ipynb")
            cells = run_cells(page, 2)
            expect(cells.nth(0).locator(".jp-OutputArea-output")).to_contain_text(
                "hej", timeout=LOAD_MS
            )
            expect(cells.nth(1).locator(".jp-OutputArea-output")).to_contain_text(
                "PUSHED 42", timeout=LOAD_MS
            )
            page.screenshot(path=str(shots / "notebook.png"))
            assert "main/from-browser.txt" in ctx.providers.storage.list_keys(project["bucket"])
            assert ctx.providers.git.read_file(pid, "main", "webbläsare.txt") == (
                "från webbläsaren\n".encode()
            )

            page.goto(f"{live_url}/")
            submit(page, page.get_by_role("button", name="Stop"))
            reload_home_until(page, live_url, page.get_by_role("button", name="Start"), 120)
            expect(page.locator("tbody td").nth(1)).to_contain_text("stopped")
            assert page.get_by_role("link", name="Open").count() == 0
            submit(page, page.get_by_role("button", name="Start"))
            reload_home_until(page, live_url, opener)
            submit(page, opener)
            expect(page.locator(LAB)).to_be_visible(timeout=LOAD_MS)
            put_notebook(
                page,
                base,
                "igen.ipynb",
                live_url,
                "print(open(__import__('os').path.expanduser('~/kvar.txt')).read())",
            )
            open_notebook(page, f"{base}lab/tree/igen.ipynb?reset")
            expect(run_cells(page, 1).first.locator(".jp-OutputArea-output")).to_have_text(
                "kvar", timeout=LOAD_MS
            )

            page.goto(f"{live_url}/")
            page.get_by_role("link", name="Delete").click()  # a confirmation first
            expect(page.get_by_text("lost for good")).to_be_visible()
            submit(page, page.get_by_role("button", name="Delete workspace"))
            expect(page.get_by_text("You have no workspaces.")).to_be_visible()
            assert user.client.get(f"/api/v1/workspaces/{wid}").status_code == 404
            created.clear()
    finally:
        for wid in created:
            user.client.delete(f"/api/v1/workspaces/{wid}")
        context.close()
        others.close()
        user.client.close()
        other.client.close()


def test_a_script_in_a_workspace_page_cannot_read_portal_pages(
    chromium: Browser, live_url: str, owner: TestUser, workspace: dict[str, Any]
) -> None:
    """JupyterLab shares Balsam's origin: a script in it (a notebook's output, say)
    must not fetch a portal page, with its CSRF token, as the user."""
    context = chromium.new_context()
    page = context.new_page()
    try:
        log_in(page, live_url, owner, f"{ws_path(workspace)}lab")
        # (the Launcher may be closed: an earlier test left a notebook open)
        expect(page.locator(LAB)).to_be_visible(timeout=LOAD_MS)
        for path in ("/projects", "/account", "/", "/admin/users"):
            status = page.evaluate(
                "async path => (await fetch(path, {credentials: 'include'})).status", path
            )
            assert status == 403, (path, status)
        # A window it opens on a portal page is cut off from it (the portal's
        # Cross-Origin-Opener-Policy), so it cannot read the page that way either.
        opened = page.evaluate(WINDOW_OPEN, "/account")
        assert opened == {"opened": True, "read": "blocked"}, opened
        page.goto(f"{live_url}/projects")  # the browser's own navigation still works
        expect(page.get_by_role("heading", name="Projects")).to_be_visible()
    finally:
        context.close()
