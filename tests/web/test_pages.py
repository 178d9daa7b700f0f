"""The portal's HTML pages: the login form, login CSRF and open-redirect defences,
logout, and the home page with your own workspaces and the forms that manage them."""

from __future__ import annotations

import itertools
import json
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
from balsam.domain.workspaces import access
from balsam.settings import Settings
from balsam.web.proxy.access import refusal
from tests.fixtures.app import PASSWORD, TestUser
from tests.web.pages.browsing import browser

ORIGIN = "http://testserver"
WRONG = "Not-the-Password-7781"
_addresses = itertools.count(1)


def client_for(app: FastAPI) -> TestClient:
    """A cookie-keeping client with its own address (TEST-NET-2), so its failed
    logins never count against other tests."""
    address = f"198.51.100.{next(_addresses) % 250 + 1}"
    return TestClient(
        app, raise_server_exceptions=False, follow_redirects=False, client=(address, 40000)
    )


@pytest.fixture
def visitor(app: FastAPI) -> Iterator[TestClient]:
    client = client_for(app)
    yield client
    client.close()


def login(
    client: httpx.Client,
    username: str,
    password: str = PASSWORD,
    next_path: str = "/",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return client.post(
        "/login",
        data={"username": username, "password": password, "next": next_path},
        headers={"Origin": ORIGIN} if headers is None else headers,
    )


def csrf_token(client: httpx.Client) -> str:
    """The CSRF token the logged-in client's pages carry in their forms."""
    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/").text)
    assert found is not None, "no CSRF token on the home page"
    return found.group(1)


def form_post(
    client: httpx.Client,
    url: str,
    data: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """A form post as the page sends it: same origin, with the session's CSRF token
    (none when the client is not logged in)."""
    token = csrf_token(client) if "balsam_session" in client.cookies else ""
    return client.post(
        url,
        data={**(data or {}), "csrf": token},
        headers={"Origin": ORIGIN} if headers is None else headers,
    )


_SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.DOTALL | re.IGNORECASE)


def assert_only_balsams_scripts(html: str) -> None:
    """Every script of the page is a file of Balsam's own ``/static/``; none is inline
    (and none came from data shown on the page)."""
    scripts = _SCRIPT.findall(html)
    assert html.lower().count("<script") == len(scripts)
    for attributes, body in scripts:
        assert re.fullmatch(r' src="/static/[\w.-]+\?v=[0-9a-f]+" defer', attributes), attributes
        assert not body.strip()
    assert not re.search(r'src="(?!/[^/])', html), "something loads from elsewhere"


def session_cookie(response: httpx.Response) -> str:
    return "; ".join(
        v for v in response.headers.get_list("set-cookie") if v.startswith("balsam_session=")
    )


# -- the form -------------------------------------------------------------------------


def test_login_form_is_locked_down(visitor: TestClient) -> None:
    r = visitor.get("/login", params={"next": "/workspaces/abc/lab"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert '<input type="hidden" name="next" value="/workspaces/abc/lab">' in r.text
    assert 'name="username"' in r.text and 'type="password"' in r.text
    csp = r.headers["content-security-policy"]
    for directive in (
        "default-src 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ):
        assert directive in csp
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "same-origin"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert_only_balsams_scripts(r.text)
    assert "<style" not in r.text
    assert "open your workspace" not in r.text


def test_login_from_a_workspace_link_says_the_workspace_opens_next(visitor: TestClient) -> None:
    handover = "/workspace-session?next=%2Fworkspaces%2Fabc%2Flab"
    r = visitor.get("/login", params={"next": handover}, headers={"Accept-Language": "sv"})
    assert "Logga in för att öppna din bearbetningsmiljö" in r.text
    r = visitor.get("/login", params={"next": handover}, headers={"Accept-Language": "en"})
    assert "Log in to open your workspace" in r.text


def test_the_stylesheet_is_balsams_own(visitor: TestClient) -> None:
    r = visitor.get("/login")
    assert "style-src 'self'" in r.headers["content-security-policy"]
    links = re.findall(r'<link rel="stylesheet" href="([^"]+)">', r.text)
    assert links and all(link.startswith("/static/") for link in links)
    css = visitor.get(links[0])
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "immutable" in css.headers["cache-control"]


@pytest.mark.parametrize(
    "next_path", ['/"><script>alert(1)</script>', '"><script>alert(1)</script>']
)
def test_next_cannot_inject_markup(visitor: TestClient, next_path: str) -> None:
    r = visitor.get("/login", params={"next": next_path})
    assert r.status_code == 200
    assert "<script>" not in r.text
    if next_path.startswith("/"):
        assert 'value="/&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in r.text


# -- logging in -----------------------------------------------------------------------


def test_login_sets_the_session_cookie_and_goes_to_next(
    visitor: TestClient, alice: TestUser
) -> None:
    r = login(visitor, alice.username, next_path="/workspaces/abc/lab?reset")
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/workspaces/abc/lab?reset"
    cookie = session_cookie(r).lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
    me = visitor.get("/api/v1/users/me")
    assert me.status_code == 200 and me.json()["username"] == alice.username


def test_a_session_cookie_sent_twice_is_refused_not_guessed_at(
    visitor: TestClient, alice: TestUser, bob: TestUser
) -> None:
    """A page elsewhere may set a second cookie of the name beside the HttpOnly one
    (another path, Partitioned); which one a framework keeps is not Balsam's."""
    login(visitor, alice.username)
    mine = visitor.cookies["balsam_session"]
    fresh = TestClient(visitor.app, raise_server_exceptions=False)
    login(fresh, bob.username)
    theirs = fresh.cookies["balsam_session"]
    fresh.cookies.clear()
    for pair in (f"{mine}; balsam_session={theirs}", f"{theirs}; balsam_session={mine}"):
        headers = {"Cookie": f"balsam_session={pair}"}
        for path in ("/api/v1/users/me", "/projects"):
            r = fresh.get(path, headers=headers)
            assert r.status_code == 400, (path, r.status_code)
            assert bob.username not in r.text


@pytest.mark.parametrize(
    "next_path",
    [
        "//evil.example",
        "///evil.example",
        "https://evil.example",
        "http:/evil.example",
        "/\\evil.example",
        "/\\/evil.example",
        "javascript:alert(1)",
        "/\t/evil.example",
        "/\n/evil.example",
        "evil.example",
        "",
    ],
)
def test_next_elsewhere_goes_home(visitor: TestClient, alice: TestUser, next_path: str) -> None:
    r = login(visitor, alice.username, next_path=next_path)
    assert r.status_code == 303
    assert r.headers["location"] == "/"


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://testserver.evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        # A script on Balsam's own origin (a workspace page where they share it)
        # logging the browser in as someone else.
        {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"},
    ],
)
def test_cross_site_login_is_refused(
    visitor: TestClient, alice: TestUser, headers: dict[str, str]
) -> None:
    r = login(visitor, alice.username, headers=headers)
    assert r.status_code == 403
    assert not session_cookie(r)
    assert visitor.get("/api/v1/users/me").status_code == 401


@pytest.mark.parametrize("headers", [{}, {"Sec-Fetch-Site": "same-origin"}])
def test_login_without_origin_is_accepted(
    visitor: TestClient, alice: TestUser, headers: dict[str, str]
) -> None:
    """Browsers send Origin on form posts; other clients may send neither header."""
    assert login(visitor, alice.username, headers=headers).status_code == 303


def test_login_from_the_public_url_is_accepted(
    visitor: TestClient, alice: TestUser, settings: Settings
) -> None:
    origin = settings.resolved_public_url
    assert login(visitor, alice.username, headers={"Origin": origin}).status_code == 303


@pytest.mark.parametrize("known", [True, False])
def test_wrong_password_shows_the_form_again(
    visitor: TestClient, alice: TestUser, known: bool
) -> None:
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
    r = visitor.post(
        "/login", data={"username": "x" * 20_000, "password": "y"}, headers={"Origin": ORIGIN}
    )
    assert r.status_code == 413


@pytest.fixture
def limited_app(
    settings: Settings, ctx: AppContext, tmp_path: Path, fresh_database_url: str
) -> Iterator[FastAPI]:
    """An app of its own that refuses logins after three failures."""
    auth = settings.auth.model_copy(update={"login_max_failures": 3})
    limited = settings.model_copy(
        update={"auth": auth, "data_dir": tmp_path, "database_url": fresh_database_url}
    )
    app = create_app(limited, providers=ctx.providers)
    IdentityService(app.state.ctx).create_user(
        None, UserCreate(username="pages-rl", password=PASSWORD)
    )
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
    r = form_post(visitor, "/logout")
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
def stopped_workspace(
    ctx: AppContext, alice: TestUser, project: dict[str, Any], unique: Callable[[str], str]
) -> Iterator[Workspace]:
    """A workspace row of alice's whose name is markup (no server: it is stopped)."""
    ws = Workspace(
        id=unique("pages-ws-"),
        name='<img src=x onerror="alert(1)">',
        project_id=project["id"],
        branch="main",
        template_id="python",
        environment="python-0",
        owner_id=alice.actor.user_id,
        state="stopped",
        state_reason="Stopped by test",
        locked=False,
    )
    with ctx.sessions() as session, session.begin():
        session.add(ws)
    yield ws
    with ctx.sessions() as session, session.begin():
        row = session.get(Workspace, ws.id)
        if row is not None:  # not deleted by the test
            session.delete(row)


@pytest.mark.parametrize(
    ("state", "says", "retry"),
    [
        ("stopped", "Bearbetningsmiljön är stoppad", False),
        ("failed", "Bearbetningsmiljön startade inte", False),
    ],
)
def test_a_workspace_not_running_says_what_to_do_in_the_readers_language(
    app: FastAPI,
    ctx: AppContext,
    alice: TestUser,
    stopped_workspace: Workspace,
    state: str,
    says: str,
    retry: bool,
) -> None:
    """Only a starting workspace is worth waiting for (the page asks again by itself);
    a stopped or failed one is started again on My pages."""
    with ctx.sessions() as session, session.begin():
        row = session.get(Workspace, stopped_workspace.id)
        assert row is not None
        row.state = state
    with browser(app, alice, "sv") as client:
        r = client.get(f"/workspaces/{stopped_workspace.id}/lab")
    assert r.status_code == 503 and says in r.text, r.text
    assert ("retry-after" in r.headers) is retry
    assert ('http-equiv="refresh"' in r.text) is retry
    assert "Stopped by" not in r.text  # the reason is on My pages, in Swedish there


def test_only_a_starting_workspace_asks_to_be_tried_again() -> None:
    """(A pending row without a server would be failed by the supervisor at once, so
    the mapping is asked directly.)"""
    starting = access._not_running("pending")
    assert refusal(starting)[2] == {"Retry-After": "2"}
    assert refusal(access._not_running("stopped"))[2] == {}


def test_home_lists_your_workspaces_escaped(
    visitor: TestClient, alice: TestUser, stopped_workspace: Workspace, project: dict[str, Any]
) -> None:
    assert login(visitor, alice.username).status_code == 303
    r = visitor.get("/")
    assert r.status_code == 200
    assert "content-security-policy" in r.headers
    assert f"<strong>{alice.username}</strong>" in r.text
    assert "<img" not in r.text
    assert (
        f'<a href="/workspaces/{stopped_workspace.id}/">'
        "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;</a>"
    ) in r.text
    assert (
        '<td><span data-part="state">stopped</span>'
        '<span class="reason" data-part="reason">Stopped by test</span></td>'
    ) in r.text
    # The project's and the template's names, not their ids.
    assert f"<td>{project['name']}</td><td>main</td><td>Python</td>" in r.text
    assert 'aria-label="Start &lt;img src=x onerror=&#34;alert(1)&#34;&gt;"' in r.text
    assert f'href="/workspaces-ui/{stopped_workspace.id}/delete"' in r.text  # confirm first
    confirm = visitor.get(f"/workspaces-ui/{stopped_workspace.id}/delete")
    assert f'action="/workspaces-ui/{stopped_workspace.id}/delete"' in confirm.text
    assert "not committed and pushed" in confirm.text
    # Only running workspaces open (the link is there, hidden, for the live state).
    assert re.search(r'data-part="open" hidden>Open</a>', r.text)
    assert 'http-equiv="refresh"' not in r.text  # nothing pending
    assert '<form method="post" action="/logout">' in r.text


def test_a_workspaces_state_and_reason_are_in_the_pages_language(
    visitor: TestClient, alice: TestUser, stopped_workspace: Workspace
) -> None:
    assert login(visitor, alice.username).status_code == 303
    r = visitor.get("/", headers={"Accept-Language": "sv"})
    assert (
        '<td><span data-part="state">stoppad</span>'
        '<span class="reason" data-part="reason">Stoppad av test</span></td>'
    ) in r.text
    # The script's table of reasons it may meet while the page is shown.
    found = re.search(r"data-reasons='([^']*)'", r.text)
    assert found and json.loads(found.group(1))["Waiting to start"] == "Väntar på att starta"


def test_home_lists_only_your_own_workspaces(
    app: FastAPI,
    bob: TestUser,
    alice: TestUser,
    project: dict[str, Any],
    stopped_workspace: Workspace,
) -> None:
    alice.client.post(f"/api/v1/projects/{project['id']}/members", json={"username": bob.username})
    with client_for(app) as client:
        assert login(client, bob.username).status_code == 303
        r = client.get("/")
    assert r.status_code == 200
    assert stopped_workspace.id not in r.text
    assert "You have no workspaces." in r.text


# -- managing workspaces from the home page ---------------------------------------------

UI = "/workspaces-ui"


@pytest.fixture
def no_servers(ctx: AppContext, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """The supervisor's starts and stops, recorded instead of run (no JupyterLab here)."""
    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(ctx.supervisor, "submit_start", lambda wid: calls.append(("start", wid)))
    monkeypatch.setattr(
        ctx.supervisor, "submit_stop", lambda wid, reason: calls.append(("stop", wid))
    )
    return calls


@pytest.fixture
def alice_browser(app: FastAPI, alice: TestUser) -> Iterator[TestClient]:
    client = client_for(app)
    assert login(client, alice.username).status_code == 303
    yield client
    client.close()


def state_of(ctx: AppContext, workspace_id: str) -> str | None:
    with ctx.sessions() as session:
        row = session.get(Workspace, workspace_id)
        return None if row is None else row.state


def test_home_offers_a_form_for_each_branch_and_template(
    alice_browser: TestClient, project: dict[str, Any]
) -> None:
    r = alice_browser.get("/")
    assert r.status_code == 200
    assert f'<form method="post" action="{UI}" class="stack">' in r.text
    assert f'<option value="{project["id"]}/main">' in r.text
    assert '<option value="python">' in r.text
    assert_only_balsams_scripts(r.text)


def test_home_without_projects_says_so(alice_browser: TestClient) -> None:
    r = alice_browser.get("/")
    assert r.status_code == 200
    assert "not a member of any project" in r.text
    assert f'action="{UI}"' not in r.text


@pytest.mark.parametrize("action", ["", "/{id}/stop", "/{id}/start", "/{id}/delete"])
@pytest.mark.parametrize(
    "headers", [{"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}]
)
def test_cross_site_workspace_forms_are_refused(
    alice_browser: TestClient,
    ctx: AppContext,
    project: dict[str, Any],
    stopped_workspace: Workspace,
    no_servers: list[tuple[str, str]],
    action: str,
    headers: dict[str, str],
) -> None:
    r = alice_browser.post(
        UI + action.format(id=stopped_workspace.id),
        headers=headers,
        data={"name": "Evil", "target": f"{project['id']}/main", "template": "python"},
    )
    assert r.status_code == 403
    assert state_of(ctx, stopped_workspace.id) == "stopped"
    assert not no_servers
    with ctx.sessions() as session:  # nothing created
        assert (
            session.query(Workspace)
            .filter(Workspace.owner_id == stopped_workspace.owner_id)
            .count()
            == 1
        )


@pytest.mark.parametrize("action", ["", "/{id}/stop", "/{id}/delete"])
def test_anonymous_workspace_forms_go_to_login(
    visitor: TestClient,
    ctx: AppContext,
    project: dict[str, Any],
    stopped_workspace: Workspace,
    no_servers: list[tuple[str, str]],
    action: str,
) -> None:
    r = visitor.post(
        UI + action.format(id=stopped_workspace.id),
        headers={"Origin": ORIGIN},
        data={"name": "Anon", "target": f"{project['id']}/main", "template": "python"},
    )
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert state_of(ctx, stopped_workspace.id) == "stopped" and not no_servers


def test_a_bearer_token_does_not_work_the_forms(
    alice: TestUser, stopped_workspace: Workspace
) -> None:
    r = alice.client.post(
        f"{UI}/{stopped_workspace.id}/delete", headers={"Origin": ORIGIN}, follow_redirects=False
    )
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert alice.client.get(f"/api/v1/workspaces/{stopped_workspace.id}").status_code == 200


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        ({"template": "no-such-template"}, 422, "No workspace template &#39;no-such-template&#39;"),
        ({"target": "no-such-project/main"}, 404, "no-such-project"),
        ({"target": "{project}/no-such-branch"}, 404, "No branch &#39;no-such-branch&#39;"),
        ({"target": "garbage"}, 404, ""),
        ({"name": ""}, 422, "Give the workspace a name"),
        ({"name": "x" * 101}, 422, "Give the workspace a name"),
        ({"name": "a\x00b"}, 422, "Give the workspace a name"),
    ],
)
def test_bad_workspace_forms_show_the_page_with_the_error(
    alice_browser: TestClient,
    project: dict[str, Any],
    no_servers: list[tuple[str, str]],
    fields: dict[str, str],
    status: int,
    message: str,
) -> None:
    data = {"name": '<b>"Fet"</b>', "target": f"{project['id']}/main", "template": "python"}
    data.update({k: v.format(project=project["id"]) for k, v in fields.items()})
    r = form_post(alice_browser, UI, data)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("text/html")
    assert "content-security-policy" in r.headers
    assert '<p class="error" role="alert">' in r.text and message in r.text
    assert "<b>" not in r.text
    if "name" not in fields:  # what was filled in is kept, escaped
        assert 'value="&lt;b&gt;&#34;Fet&#34;&lt;/b&gt;"' in r.text
    assert not no_servers
    assert "You have no workspaces." in r.text


def test_a_workspace_is_created_listed_escaped_and_deleted_with_the_forms(
    alice_browser: TestClient,
    alice: TestUser,
    ctx: AppContext,
    project: dict[str, Any],
    no_servers: list[tuple[str, str]],
) -> None:
    name = '<script>alert("x")</script>'
    r = form_post(
        alice_browser, UI, {"name": name, "target": f"{project['id']}/main", "template": "python"}
    )
    assert r.status_code == 303 and r.headers["location"] == "/", r.text
    (ws,) = alice.client.get("/api/v1/workspaces", params={"all": "false"}).json()
    assert ws["name"] == name and ws["state"] == "pending" and ws["templateId"] == "python"
    assert no_servers == [("start", ws["id"])]
    page = alice_browser.get("/")
    assert_only_balsams_scripts(page.text)
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text
    assert '<meta http-equiv="refresh" content="3; url=/">' in page.text  # while pending
    assert f'action="{UI}/{ws["id"]}/stop"' in page.text
    r = form_post(alice_browser, f"{UI}/{ws['id']}/delete")
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert alice.client.get(f"/api/v1/workspaces/{ws['id']}").status_code == 404


def test_the_owner_starts_and_stops_with_the_forms(
    alice_browser: TestClient,
    ctx: AppContext,
    stopped_workspace: Workspace,
    no_servers: list[tuple[str, str]],
) -> None:
    wid = stopped_workspace.id
    assert form_post(alice_browser, f"{UI}/{wid}/start").status_code == 303
    assert state_of(ctx, wid) == "pending"
    assert form_post(alice_browser, f"{UI}/{wid}/stop").status_code == 303
    assert no_servers == [("start", wid), ("stop", wid)]
    r = form_post(alice_browser, f"{UI}/{wid}/reboot")
    assert r.status_code == 404 and "No such workspace or action." in r.text


@pytest.mark.parametrize("action", ["stop", "start", "delete"])
@pytest.mark.parametrize(("member", "status"), [(True, 403), (False, 404)])
def test_others_cannot_manage_your_workspace(
    app: FastAPI,
    alice: TestUser,
    bob: TestUser,
    ctx: AppContext,
    project: dict[str, Any],
    stopped_workspace: Workspace,
    no_servers: list[tuple[str, str]],
    action: str,
    member: bool,
    status: int,
) -> None:
    if member:
        added = alice.client.post(
            f"/api/v1/projects/{project['id']}/members", json={"username": bob.username}
        )
        assert added.status_code == 201, added.text
    with client_for(app) as client:
        assert login(client, bob.username).status_code == 303
        r = form_post(client, f"{UI}/{stopped_workspace.id}/{action}")
    assert r.status_code == status, r.text
    assert '<p class="error" role="alert">' in r.text
    assert "&lt;img" not in r.text  # bob's page does not list alice's workspace
    assert state_of(ctx, stopped_workspace.id) == "stopped" and not no_servers


@pytest.mark.parametrize("token", ["", "wrong-token"])
def test_a_form_without_the_csrf_token_changes_nothing(
    alice_browser: TestClient,
    ctx: AppContext,
    stopped_workspace: Workspace,
    no_servers: list[tuple[str, str]],
    token: str,
) -> None:
    r = alice_browser.post(
        f"{UI}/{stopped_workspace.id}/delete", data={"csrf": token}, headers={"Origin": ORIGIN}
    )
    assert r.status_code == 403
    assert state_of(ctx, stopped_workspace.id) == "stopped" and not no_servers
    r = alice_browser.post("/logout", headers={"Origin": ORIGIN})
    assert r.status_code == 403
    assert alice_browser.get("/").status_code == 200  # still logged in
