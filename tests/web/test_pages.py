"""The portal's HTML pages: the login form, login CSRF and open-redirect defences,
logout, and the list of your own workspaces."""

from __future__ import annotations

import base64
import hashlib
import itertools
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from balsam.app import create_app
from balsam.context import AppContext
from balsam.db.models import Workspace
from balsam.domain.identity.schemas import UserCreate
from balsam.domain.identity.service import IdentityService
from balsam.settings import Settings
from tests.fixtures.app import PASSWORD, TestUser

ORIGIN = "http://testserver"
WRONG = "Not-the-Password-7781"
_addresses = itertools.count(1)


def client_for(app: FastAPI) -> TestClient:
    """A cookie-keeping client with its own address (TEST-NET-2), so its failed
    logins never count against other tests."""
    address = f"198.51.100.{next(_addresses) % 250 + 1}"
    return TestClient(app, raise_server_exceptions=False,
                      follow_redirects=False, client=(address, 40000))


@pytest.fixture
def visitor(app: FastAPI) -> Iterator[TestClient]:
    client = client_for(app)
    yield client
    client.close()


def login(client: httpx.Client, username: str, password: str = PASSWORD, next_path: str = "/",
          headers: dict[str, str] | None = None) -> httpx.Response:
    return client.post("/login", data={"username": username, "password": password,
                                       "next": next_path},
                       headers={"Origin": ORIGIN} if headers is None else headers)


def session_cookie(response: httpx.Response) -> str:
    return "; ".join(v for v in response.headers.get_list("set-cookie")
                     if v.startswith("balsam_session="))


# -- the form -------------------------------------------------------------------------

def test_login_form_is_locked_down(visitor: TestClient) -> None:
    r = visitor.get("/login", params={"next": "/workspaces/abc/lab"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert '<input type="hidden" name="next" value="/workspaces/abc/lab">' in r.text
    assert 'name="username"' in r.text and 'type="password"' in r.text
    csp = r.headers["content-security-policy"]
    for directive in ("default-src 'none'", "form-action 'self'", "frame-ancestors 'none'",
                      "base-uri 'none'"):
        assert directive in csp
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "same-origin"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "<script" not in r.text and "src=" not in r.text and "<link" not in r.text


def test_the_inline_style_is_the_one_the_policy_allows(visitor: TestClient) -> None:
    r = visitor.get("/login")
    style = re.search(r"<style>(.*?)</style>", r.text, re.DOTALL)
    assert style is not None
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in r.headers["content-security-policy"]


@pytest.mark.parametrize("next_path", ['/"><script>alert(1)</script>',
                                       '"><script>alert(1)</script>'])
def test_next_cannot_inject_markup(visitor: TestClient, next_path: str) -> None:
    r = visitor.get("/login", params={"next": next_path})
    assert r.status_code == 200
    assert "<script>" not in r.text
    if next_path.startswith("/"):
        assert 'value="/&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in r.text


# -- logging in -----------------------------------------------------------------------

def test_login_sets_the_session_cookie_and_goes_to_next(visitor: TestClient,
                                                         alice: TestUser) -> None:
    r = login(visitor, alice.username, next_path="/workspaces/abc/lab?reset")
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/workspaces/abc/lab?reset"
    cookie = session_cookie(r).lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
    me = visitor.get("/api/v1/users/me")
    assert me.status_code == 200 and me.json()["username"] == alice.username


@pytest.mark.parametrize("next_path", [
    "//evil.example", "///evil.example", "https://evil.example", "http:/evil.example",
    "/\\evil.example", "/\\/evil.example", "javascript:alert(1)", "/\t/evil.example",
    "/\n/evil.example", "evil.example", "",
])
def test_next_elsewhere_goes_home(visitor: TestClient, alice: TestUser, next_path: str) -> None:
    r = login(visitor, alice.username, next_path=next_path)
    assert r.status_code == 303
    assert r.headers["location"] == "/"


@pytest.mark.parametrize("headers", [
    {"Origin": "https://evil.example"}, {"Origin": "null"},
    {"Origin": "http://testserver.evil.example"}, {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
])
def test_cross_site_login_is_refused(visitor: TestClient, alice: TestUser,
                                     headers: dict[str, str]) -> None:
    r = login(visitor, alice.username, headers=headers)
    assert r.status_code == 403
    assert not session_cookie(r)
    assert visitor.get("/api/v1/users/me").status_code == 401


@pytest.mark.parametrize("headers", [{}, {"Sec-Fetch-Site": "same-origin"}])
def test_login_without_origin_is_accepted(visitor: TestClient, alice: TestUser,
                                          headers: dict[str, str]) -> None:
    """Browsers send Origin on form posts; other clients may send neither header."""
    assert login(visitor, alice.username, headers=headers).status_code == 303


def test_login_from_the_public_url_is_accepted(visitor: TestClient, alice: TestUser,
                                               settings: Settings) -> None:
    origin = settings.resolved_public_url
    assert login(visitor, alice.username, headers={"Origin": origin}).status_code == 303


@pytest.mark.parametrize("known", [True, False])
def test_wrong_password_shows_the_form_again(visitor: TestClient, alice: TestUser,
                                             known: bool) -> None:
    username = alice.username if known else alice.username + "-nobody"
    r = login(visitor, username, WRONG, next_path="/workspaces/abc/")
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("text/html")
    assert "Wrong username or password." in r.text
    assert WRONG not in r.text
    assert 'value="/workspaces/abc/"' in r.text and f'value="{username}"' in r.text
    assert not session_cookie(r)
    assert "content-security-policy" in r.headers


def test_missing_password_is_refused(visitor: TestClient, alice: TestUser) -> None:
    r = visitor.post("/login", data={"username": alice.username}, headers={"Origin": ORIGIN})
    assert r.status_code == 422
    assert "Enter your username and password." in r.text


def test_oversized_form_is_refused(visitor: TestClient) -> None:
    r = visitor.post("/login", data={"username": "x" * 20_000, "password": "y"},
                     headers={"Origin": ORIGIN})
    assert r.status_code == 413


@pytest.fixture
def limited_app(settings: Settings, ctx: AppContext, tmp_path: Path,
                fresh_database_url: str) -> Iterator[FastAPI]:
    """An app of its own that refuses logins after three failures."""
    auth = settings.auth.model_copy(update={"login_max_failures": 3})
    limited = settings.model_copy(update={"auth": auth, "data_dir": tmp_path,
                                          "database_url": fresh_database_url})
    app = create_app(limited, providers=ctx.providers)
    IdentityService(app.state.ctx).create_user(None, UserCreate(username="pages-rl",
                                                                password=PASSWORD))
    yield app
    app.state.ctx.engine.dispose()


def test_rate_limited_login_shows_the_form_with_429(limited_app: FastAPI) -> None:
    client = client_for(limited_app)
    for _ in range(3):
        assert login(client, "pages-rl", WRONG).status_code == 401
    r = login(client, "pages-rl")
    assert r.status_code == 429
    assert "Too many failed logins" in r.text and PASSWORD not in r.text
    assert not session_cookie(r)


# -- logging out ----------------------------------------------------------------------

def test_logout_ends_the_session(visitor: TestClient, alice: TestUser, app: FastAPI) -> None:
    assert login(visitor, alice.username).status_code == 303
    value = visitor.cookies["balsam_session"]
    r = visitor.post("/logout", headers={"Origin": ORIGIN})
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert "max-age=0" in session_cookie(r).lower()
    with client_for(app) as stale:
        stale.cookies.set("balsam_session", value)
        assert stale.get("/api/v1/users/me").status_code == 401
        assert stale.get("/").headers["location"] == "/login"


def test_cross_site_logout_is_refused(visitor: TestClient, alice: TestUser) -> None:
    assert login(visitor, alice.username).status_code == 303
    r = visitor.post("/logout", headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    assert visitor.get("/api/v1/users/me").status_code == 200


# -- your workspaces ------------------------------------------------------------------

def test_home_sends_strangers_to_login(visitor: TestClient) -> None:
    r = visitor.get("/")
    assert r.status_code == 303 and r.headers["location"] == "/login"


@pytest.fixture
def stopped_workspace(ctx: AppContext, alice: TestUser, project: dict[str, Any],
                      unique: Callable[[str], str]) -> Iterator[Workspace]:
    """A workspace row of alice's whose name is markup (no server: it is stopped)."""
    ws = Workspace(id=unique("pages-ws-"), name='<img src=x onerror="alert(1)">',
                   project_id=project["id"], branch="main", template_id="python",
                   environment="python-0", owner_id=alice.actor.user_id, state="stopped",
                   state_reason="Stopped by test", locked=False)
    with ctx.sessions() as session, session.begin():
        session.add(ws)
    yield ws
    with ctx.sessions() as session, session.begin():
        session.delete(session.get(Workspace, ws.id))


def test_home_lists_your_workspaces_escaped(visitor: TestClient, alice: TestUser,
                                            stopped_workspace: Workspace) -> None:
    assert login(visitor, alice.username).status_code == 303
    r = visitor.get("/")
    assert r.status_code == 200
    assert "content-security-policy" in r.headers
    assert f"<strong>{alice.username}</strong>" in r.text
    assert "<img" not in r.text
    assert (f'<a href="/workspaces/{stopped_workspace.id}/">'
            "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;</a>") in r.text
    assert f"<td>stopped</td><td>{stopped_workspace.project_id}</td><td>main</td>" in r.text
    assert '<form method="post" action="/logout">' in r.text


def test_home_lists_only_your_own_workspaces(app: FastAPI, bob: TestUser, alice: TestUser,
                                             project: dict[str, Any],
                                             stopped_workspace: Workspace) -> None:
    alice.client.post(f"/api/v1/projects/{project['id']}/members",
                      json={"username": bob.username})
    with client_for(app) as client:
        assert login(client, bob.username).status_code == 303
        r = client.get("/")
    assert r.status_code == 200
    assert stopped_workspace.id not in r.text
    assert "You have no workspaces." in r.text
