"""Each workspace on an origin of its own, as `balsam up` serves them by default
(``<id>.localhost`` on the workspace port): a script in a workspace's JupyterLab page
(a notebook's output, say) cannot read the portal or the API as its user, nor post
the portal's forms, nor reach another workspace; the session still opens the
workspace whichever of ``localhost`` and ``127.0.0.1`` the user typed; each port and
host name serves only its own kind of request. Debian's Chromium through Playwright
(which resolves ``*.localhost`` itself; httpx here goes by :class:`_Loopback`)."""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as ws_connect

from balsam.providers.workspaces.environments import default_python
from tests.cli.test_cli import BalsamUp, serving, up_environment
from tests.fixtures.chromium import skip_without_chromium
from tests.fixtures.workspaces import Kernel
from tests.web.api.v1.test_login_limits import _other_local_address

PASSWORD = "Own-origin-password-7"
LAB = "#jp-main-dock-panel"
LOAD_MS = 120_000

skip_without_chromium()


@dataclass
class Installation:
    up: BalsamUp
    port: int
    workspace_port: int
    api: httpx.Client
    project: dict[str, Any]
    workspace: dict[str, Any]

    def url(self, host: str, port: int | None = None) -> str:
        return f"http://{host}:{port or self.port}"

    def workspaces(self, workspace_id: str | None = None) -> str:
        """The origin of a workspace (by default the module's)."""
        return f"http://{workspace_id or self.workspace['id']}.localhost:{self.workspace_port}"


class _Loopback(httpx.HTTPTransport):
    """``*.localhost`` to 127.0.0.1, as browsers resolve it (glibc does not); the
    ``Host`` header keeps the name."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host.endswith(".localhost"):
            request.url = request.url.copy_with(host="127.0.0.1")
        return super().handle_request(request)


def get(url: str, **kwargs: Any) -> httpx.Response:
    with httpx.Client(transport=_Loopback()) as client:
        return client.get(url, **kwargs)


def post(url: str, **kwargs: Any) -> httpx.Response:
    with httpx.Client(transport=_Loopback()) as client:
        return client.post(url, **kwargs)


def open_socket(url: str, headers: dict[str, str]) -> Any:
    """A WebSocket to ``url`` (``ws://<id>.localhost:<port>/…``) over loopback."""
    port = int(url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    return ws_connect(url, sock=sock, additional_headers=headers, open_timeout=30)


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    # One `balsam up` for the module, on SQLite: nothing here is about the database.
    env = up_environment(f"sqlite:///{tmp_path_factory.mktemp('db') / 'balsam.db'}")
    env["BALSAM_ADMIN_PASSWORD"] = PASSWORD
    with serving(env, tmp_path_factory.mktemp("own-origin") / "data") as up:
        token = post(
            f"{up.url}/api/v1/users/me/tokens", auth=("admin", PASSWORD), json={"name": "t"}
        ).json()["token"]
        api = httpx.Client(
            base_url=f"{up.url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=60
        )
        project = api.post("/projects", json={"name": "Eget ursprung", "branchName": "main"})
        assert project.status_code == 201, project.text
        workspace = api.post("/workspaces", json={
            "name": "Egen", "templateId": "python", "projectId": project.json()["id"],
            "branchId": "main"})  # fmt: skip
        assert workspace.status_code == 201, workspace.text
        wid = workspace.json()["id"]
        deadline = time.monotonic() + 600  # the template's environment may be built first
        while (state := api.get(f"/workspaces/{wid}").json())["state"] != "running":
            assert state["state"] != "failed" and time.monotonic() < deadline, state
            time.sleep(0.5)
        port = int(up.url.rsplit(":", 1)[1])
        yield Installation(
            up, port, int(env["BALSAM_WORKSPACES__PORT"]), api, project.json(), state
        )
        api.delete(f"/workspaces/{wid}")


def _log_in(page: Page, portal: str, next_path: str = "/") -> None:
    page.goto(f"{portal}/login?next={next_path}")
    page.fill("#username", "admin")
    page.fill("#password", PASSWORD)
    # No expect_navigation: a page of the other origin swaps the browsing context
    # group (the portal's Cross-Origin-Opener-Policy), and Playwright loses track of
    # that navigation; the caller waits for what the page shows instead.
    page.click("main button[type=submit]")


def _portal_login(installation: Installation, portal: str) -> str:
    """A portal session's cookie, by the API's login."""
    login = post(f"{portal}/api/v1/auth/login",
                       json={"username": "admin", "password": PASSWORD})  # fmt: skip
    assert login.status_code == 200, login.text
    return str(login.cookies["balsam_session"])


HANDED = re.compile(
    r'action="([^"]+)" data-autosubmit>'
    r'.*?name="ticket" value="([^"]+)".*?name="next" value="([^"]+)"',
    re.S,
)


def _hand_over(
    installation: Installation, portal: str, cookie: str, next_path: str
) -> tuple[str, str, str]:
    """The portal's hand-over page, read: where it posts, its ticket, its next."""
    page = get(f"{portal}/workspace-session", params={"next": next_path},
                     headers={"Cookie": f"balsam_session={cookie}"})  # fmt: skip
    assert page.status_code == 200, page.text
    assert page.headers["cache-control"] == "no-store"
    found = HANDED.search(page.text)
    assert found is not None, page.text
    return found.group(1), found.group(2), found.group(3)


def _workspace_cookie(installation: Installation, portal: str, cookie: str, next_path: str) -> str:
    action, ticket, target = _hand_over(installation, portal, cookie, next_path)
    entered = post(action, data={"ticket": ticket, "next": target},
                         headers={"Origin": portal})  # fmt: skip
    assert entered.status_code == 303, entered.text
    return str(entered.cookies["balsam_session_workspace"])


def test_each_port_serves_its_own_kind(installation: Installation) -> None:
    wid = installation.workspace["id"]
    portal = installation.url("localhost")
    workspaces = installation.workspaces()
    # A link to a workspace on the portal's port is sent over to the workspace port,
    # under that workspace's own host name, whichever name was typed.
    for host in ("127.0.0.1", "localhost"):
        moved = get(f"{portal}/workspaces/{wid}/lab?reset", headers={"Host": f"{host}:1"})
        assert moved.status_code == 307
        assert moved.headers["location"] == f"{workspaces}/workspaces/{wid}/lab?reset"
        listed = installation.api.get(f"/workspaces/{wid}", headers={"Host": f"{host}:1"})
        assert listed.json()["url"] == f"{workspaces}/workspaces/{wid}/"
    assert post(f"{portal}/workspaces/{wid}/api/contents").status_code == 421
    assert get(f"{portal}/workspaces/-/session").status_code == 404  # no workspace there
    # The workspace port serves workspaces only: no portal page (someone who typed the
    # port is sent to the portal), no API, no git; under any name.
    for base in (workspaces, installation.url("127.0.0.1", installation.workspace_port)):
        for path in ("/", "/login?next=%2Fprojects", "/projects"):
            moved = get(f"{base}{path}")
            assert moved.status_code == 307 and moved.headers["location"] == f"{portal}{path}"
            assert not moved.text
        for path in ("/api/v1/openapi.json", "/api/v1/projects",
                     f"/git/{installation.project['id']}.git/info/refs"):  # fmt: skip
            assert get(f"{base}{path}").status_code == 404, path
        assert post(f"{base}/login").status_code == 404
    # A person refused there reads why on the portal's error page, whose links lead
    # back to the portal (the workspace port serves nothing else).
    cookie = _portal_login(installation, portal)
    mine = _workspace_cookie(installation, portal, cookie, f"/workspaces/{wid}/lab")
    as_me = {"Accept": "text/html", "Cookie": f"balsam_session_workspace={mine}"}
    gone = get(f"{installation.workspaces('gone-1')}/workspaces/gone-1/lab", headers=as_me)
    assert gone.status_code == 404 and f'href="{portal}/"' in gone.text
    assert get(f"{workspaces}/static/balsam.css").status_code == 200
    # A stranger there is sent to the portal, to be handed a session (after logging in).
    stranger = get(f"{workspaces}/workspaces/{wid}/lab", headers={"Accept": "text/html"})
    assert stranger.status_code == 303
    handover = f"{portal}/workspace-session?next=%2Fworkspaces%2F{wid}%2Flab"
    assert stranger.headers["location"] == handover
    assert get(handover).headers["location"].startswith("/login?next=/workspace-session")


def test_each_host_name_serves_its_own_kind(installation: Installation) -> None:
    """A page under another name is sent to its own: no workspace page runs where the
    portal's cookies live or another workspace's do, and no portal page where a
    workspace's do."""
    wid = installation.workspace["id"]
    portal = installation.url("localhost")
    workspaces = installation.workspaces()
    html = {"Accept": "text/html"}
    for elsewhere in ("localhost", "127.0.0.1", "other-1.localhost"):
        base = installation.url(elsewhere, installation.workspace_port)
        wrong = get(f"{base}/workspaces/{wid}/lab", headers=html)
        assert wrong.status_code == 307, elsewhere
        assert wrong.headers["location"] == f"{workspaces}/workspaces/{wid}/lab"
        assert post(f"{base}/workspaces/{wid}/api/contents").status_code == 421
    # A script (bearer token, no cookies of a browser's) may come by 127.0.0.1.
    bearer = {"Authorization": installation.api.headers["authorization"]}
    by_address = installation.url("127.0.0.1", installation.workspace_port)
    assert get(f"{by_address}/workspaces/{wid}/api/status", headers=bearer).status_code == 200
    for name in ("127.0.0.1", f"{wid}.localhost"):
        for path in ("/", "/login", "/projects"):
            moved = get(f"{installation.url(name)}{path}", headers=html)
            assert moved.status_code == 307 and moved.headers["location"] == f"{portal}{path}"
    # Scripts and tools (no browser, no cookies of one) are served under either name.
    assert installation.api.get("/projects").status_code == 200
    assert get(f"{installation.url('127.0.0.1')}/login").status_code == 200


def test_the_portal_hands_its_session_over_once(installation: Installation) -> None:
    wid = installation.workspace["id"]
    portal = installation.url("localhost")
    workspaces = installation.workspaces()
    lab = f"/workspaces/{wid}/lab"
    cookie = _portal_login(installation, portal)
    # The portal's own cookie does not open a workspace on the workspaces' host.
    portals = {"Accept": "text/html", "Cookie": f"balsam_session={cookie}"}
    refused = get(f"{workspaces}{lab}", headers=portals)
    assert refused.status_code == 303 and "/workspace-session?" in refused.headers["location"]
    action, ticket, target = _hand_over(installation, portal, cookie, lab)
    assert action == f"{workspaces}/workspaces/-/session" and target == lab
    # Only the portal's own page may post it (another site's, or a workspace page's,
    # post of a ticket of its own would log the browser in as someone else).
    for origin in (None, workspaces, "http://elsewhere.example"):
        headers = {"Origin": origin} if origin else {}
        other = post(action, data={"ticket": ticket, "next": lab}, headers=headers)
        assert other.status_code == 403, origin
    # Nor may another workspace's host take it, to send the browser on to this one.
    elsewhere = f"{installation.workspaces('other-1')}/workspaces/-/session"
    refused = post(elsewhere, data={"ticket": ticket, "next": lab}, headers={"Origin": portal})
    assert refused.status_code == 403  # (and the ticket is still unused)
    entered = post(action, data={"ticket": ticket, "next": lab}, headers={"Origin": portal})
    assert entered.status_code == 303 and entered.headers["location"] == lab
    set_cookie = entered.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=lax" in set_cookie and "path=/" in set_cookie
    mine = entered.cookies["balsam_session_workspace"]
    again = post(action, data={"ticket": ticket, "next": lab}, headers={"Origin": portal})
    assert again.status_code == 401  # once only
    opened = get(f"{workspaces}{lab}", headers={"Cookie": f"balsam_session_workspace={mine}"})
    assert opened.status_code == 200 and "jupyter" in opened.text.lower()
    # The workspaces' cookie is nothing to the portal or the API.
    for name in ("balsam_session", "balsam_session_workspace"):
        me = get(f"{portal}/api/v1/users/me", headers={"Cookie": f"{name}={mine}"})
        assert me.status_code == 401, name
    # Somewhere not a workspace: the hand-over sends the browser home instead.
    home = get(f"{portal}/workspace-session?next=//evil.example/x",
                     headers={"Cookie": f"balsam_session={cookie}"})  # fmt: skip
    assert home.status_code == 303 and home.headers["location"] == "/"
    # Logging out of the portal ends the workspaces' session with it, at once.
    out = post(f"{portal}/api/v1/auth/logout",
                     headers={"Cookie": f"balsam_session={cookie}", "Origin": portal})  # fmt: skip
    assert out.status_code == 204
    after = get(f"{workspaces}{lab}", headers={"Cookie": f"balsam_session_workspace={mine}"})
    assert after.status_code == 401


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_the_session_opens_the_workspace_on_the_host_typed(
    chromium: Browser, installation: Installation, host: str
) -> None:
    context = chromium.new_context(locale="en-GB")
    page = context.new_page()
    try:
        portal = installation.url(host)
        _log_in(page, portal)
        expect(page.get_by_role("heading", name="Your workspaces")).to_be_visible()
        assert page.url.startswith(installation.url("localhost"))  # the portal's name
        page.get_by_role("link", name=f"Open {installation.workspace['name']}").click()
        expect(page.locator(LAB)).to_be_visible(timeout=LOAD_MS)
        where = page.evaluate("location.href")
        assert where.startswith(f"{installation.workspaces()}/workspaces/")
        # An offline installation: JupyterLab does not ask to fetch Jupyter's news.
        page.wait_for_timeout(5000)
        assert page.get_by_text("Jupyter news").count() == 0, page.get_by_text(
            "Jupyter news"
        ).all_inner_texts()
        page.goto(installation.url("localhost") + "/projects")  # still logged in on the portal
        expect(page.get_by_role("heading", name="Projects")).to_be_visible()
    finally:
        context.close()


#: Run in the JupyterLab page: what a script there gets of the portal and the API.
ATTACKS = """async ({portal, project}) => {
  const outcome = {};
  for (const path of ["/projects", "/account", "/api/v1/projects", "/api/v1/users/me"]) {
    try {
      const r = await fetch(portal + path, {credentials: "include"});
      outcome[path] = "read " + r.status + " " + (await r.text()).slice(0, 80);
    } catch (e) { outcome[path] = "blocked"; }
  }
  const w = window.open(portal + "/projects");
  outcome.opened = w !== null;
  await new Promise(r => setTimeout(r, 3000));
  try { outcome.window = w.document.body.innerText.slice(0, 80); }
  catch (e) { outcome.window = "blocked"; }
  w.close();
  const body = new URLSearchParams({confirm: project.name, csrf: "guessed"});
  await fetch(portal + "/projects/" + project.id + "/delete",
              {method: "POST", mode: "no-cors", credentials: "include", body});
  await fetch(portal + "/api/v1/projects/" + project.id + "/members",
              {method: "POST", mode: "no-cors", credentials: "include",
               body: JSON.stringify({username: "intruder", role: "Owner"})});
  return outcome;
}"""


def test_a_script_in_a_workspace_page_gets_nothing_of_the_portal(
    chromium: Browser, installation: Installation
) -> None:
    context = chromium.new_context(locale="en-GB")
    page = context.new_page()
    try:
        portal = installation.url("localhost")
        wid = installation.workspace["id"]
        _log_in(page, portal, f"/workspaces/{wid}/lab")
        expect(page.locator(LAB)).to_be_visible(timeout=LOAD_MS)
        outcome = page.evaluate(ATTACKS, {"portal": portal, "project": installation.project})
        assert outcome == {
            "/projects": "blocked",
            "/account": "blocked",
            "/api/v1/projects": "blocked",
            "/api/v1/users/me": "blocked",
            "opened": True,
            "window": "blocked",
        }
        pid = installation.project["id"]
        assert installation.api.get(f"/projects/{pid}").status_code == 200
        members = installation.api.get(f"/projects/{pid}/members").json()
        assert [m["username"] for m in members.get("members", members)] == ["admin"]
    finally:
        context.close()


#: Run in the JupyterLab page: flood the browser's cookie jar until it drops what it
#: holds, then plant another account's session under every name Balsam reads.
SWAP = """async ({session}) => {
  for (let i = 0; i < 400; i++) document.cookie = `flood${i}=${"x".repeat(100)}; path=/`;
  for (const name of ["balsam_session", "balsam_session_workspace"])
    document.cookie = `${name}=${session}; path=/`;
  return document.cookie.includes(session);
}"""


def test_a_workspace_page_cannot_swap_the_portals_session(
    chromium: Browser, installation: Installation
) -> None:
    """Cookies belong to a host name, not a port: on the portal's host name a script
    could drop the portal's HttpOnly session cookie by flooding the jar and plant
    another account's (the victim then works, and uploads, as someone else)."""
    made = installation.api.post("/users", json={"username": "mallory", "password": PASSWORD})
    assert made.status_code == 201, made.text
    portal = installation.url("localhost")
    mallory = post(f"{portal}/api/v1/auth/login",
                         json={"username": "mallory", "password": PASSWORD})  # fmt: skip
    context = chromium.new_context(locale="en-GB")
    page = context.new_page()
    try:
        wid = installation.workspace["id"]
        _log_in(page, portal, f"/workspaces/{wid}/lab")
        expect(page.locator(LAB)).to_be_visible(timeout=LOAD_MS)
        planted = page.evaluate(SWAP, {"session": mallory.cookies["balsam_session"]})
        assert planted  # the script's own host name took it
        page.goto(f"{portal}/api/v1/users/me")
        assert json.loads(page.inner_text("body"))["username"] == "admin"
        page.goto(f"{portal}/projects")
        expect(page.get_by_role("heading", name="Projects")).to_be_visible()
    finally:
        context.close()


def _user_login(installation: Installation, portal: str, username: str) -> str:
    """A new user (not a member of anything), logged in on the portal: its cookie."""
    made = installation.api.post("/users", json={"username": username, "password": PASSWORD})
    assert made.status_code == 201, made.text
    login = post(f"{portal}/api/v1/auth/login",
                       json={"username": username, "password": PASSWORD})  # fmt: skip
    assert login.status_code == 200, login.text
    return str(login.cookies["balsam_session"])


def test_a_handed_over_session_opens_only_what_its_user_may(installation: Installation) -> None:
    """The hand-over proves who the browser is, nothing more: a user who is no member
    of the project gets a session on the workspace host, and no workspace of it."""
    wid = installation.workspace["id"]
    portal = installation.url("localhost")
    workspaces = installation.workspaces()
    stranger = _user_login(installation, portal, "outsider")
    theirs = _workspace_cookie(installation, portal, stranger, f"/workspaces/{wid}/lab")
    as_them = {"Cookie": f"balsam_session_workspace={theirs}"}
    for path in ("lab", "api/contents", "api/kernels"):
        refused = get(f"{workspaces}/workspaces/{wid}/{path}", headers=as_them)
        assert refused.status_code == 404, (path, refused.status_code)
        assert refused.headers["content-type"].startswith("application/problem+json")
    posted = post(f"{workspaces}/workspaces/{wid}/api/kernels",
                        headers={**as_them, "Origin": workspaces}, json={})  # fmt: skip
    assert posted.status_code == 404


def test_the_hand_over_answers_bad_input_without_a_500(installation: Installation) -> None:
    portal = installation.url("localhost")
    enter = f"{installation.workspaces('x')}/workspaces/-/session"
    from_portal = {"Origin": portal}
    form = {**from_portal, "Content-Type": "application/x-www-form-urlencoded"}
    for body, headers, status in (
        (b"", form, 401),  # no ticket
        (b"ticket=", form, 401),
        (b"ticket=guessed&next=/workspaces/x/lab", form, 401),
        (b"ticket=" + b"a" * 5000, form, 401),
        (b"ticket=%ff%fe", form, 400),  # not UTF-8 once decoded
        (b"ticket=\xff\xfe", form, 400),  # not ASCII at all
        (b"&".join(b"f%d=x" % i for i in range(60)), form, 400),  # too many fields
        (b"ticket=" + b"a" * 20_000, form, 413),
        (b'{"ticket": "x"}', {**from_portal, "Content-Type": "application/json"}, 401),
        (b"ticket=x", {}, 403),  # no Origin
    ):
        answer = post(enter, content=body, headers=headers)
        assert answer.status_code == status, (body[:40], answer.status_code, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
    # A browser's ticket that ran out (a tab left open): a fresh hand-over, not an error.
    stale = post(enter, content=b"ticket=old&next=/workspaces/x/lab",
                       headers={**form, "Accept": "text/html"})  # fmt: skip
    assert stale.status_code == 303
    assert stale.headers["location"] == f"{portal}/workspace-session?next=%2Fworkspaces%2Fx%2Flab"
    # The portal's page, asked for with odd destinations, sends the browser home.
    cookie = _portal_login(installation, portal)
    for target in ("", "/workspaces/", "/" + "w" * 5000, "/workspaces/x/\r\nSet-Cookie:a=b",
                   "https://evil.example/workspaces/x/", "/api/v1/users/me"):  # fmt: skip
        page = get(f"{portal}/workspace-session", params={"next": target},
                         headers={"Cookie": f"balsam_session={cookie}"})  # fmt: skip
        assert page.status_code in (200, 303), (target, page.status_code)
        if page.status_code == 303:
            assert page.headers["location"] == "/", target
        assert "set-cookie" not in page.headers


#: Run in the workspace's kernel: what its code gets of the hand-over, forging the
#: headers a browser would not let a page forge.
#: Kernel code's HTTP without following redirects: ``call(url, data, headers)`` →
#: ``(status, headers, the body's start)``.
KERNEL_HTTP = """
import json, urllib.request, urllib.error
class Stay(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None
opener = urllib.request.build_opener(Stay)
def call(url, data=None, headers={}):
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with opener.open(request, timeout=10) as r:
            return r.status, dict(r.headers), r.read().decode()[:300]
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()[:300]
"""

KERNEL_ATTACK = (
    KERNEL_HTTP
    + """
out = {}
out["page"] = call(PORTAL + "/workspace-session?next=/workspaces/x/lab",
                   headers={"Accept": "text/html"})
for ticket in ("guessed", "", "x" * 43):
    out["enter " + ticket[:8]] = call(
        WORKSPACES + "/workspaces/-/session",
        data=("ticket=" + ticket + "&next=/workspaces/x/lab").encode(),
        headers={"Origin": PORTAL, "Host": HOST})
print(json.dumps(out))
"""
)


def test_a_kernel_gets_no_session_out_of_the_hand_over(installation: Installation) -> None:
    """Code in a workspace reaches both ports over loopback and may forge any header
    (Origin, Host): without the portal's cookie it gets no ticket, and without a
    ticket no session."""
    workspaces = installation.url("127.0.0.1", installation.workspace_port)
    portal = installation.url("localhost")
    bearer = {"Authorization": installation.api.headers["authorization"]}
    kernel = Kernel(workspaces, installation.workspace["id"], bearer)
    try:
        host = f"x.localhost:{installation.workspace_port}"  # the host of workspace x
        code = f"PORTAL = {portal!r}\nWORKSPACES = {workspaces!r}\nHOST = {host!r}\n"
        result = kernel.execute(code + KERNEL_ATTACK)
    finally:
        kernel.close()
    assert result.error is None, result.error
    out = json.loads(result.stdout)
    status, headers, body = out.pop("page")
    assert status == 303 and headers["location"].startswith("/login?next=")
    assert "ticket" not in body
    for name, (status, headers, _) in out.items():
        assert status == 401, (name, status)
        assert "set-cookie" not in {k.lower() for k in headers}, name


def test_a_logout_closes_the_workspace_sockets_open_with_it(installation: Installation) -> None:
    """A WebSocket is let in once; a logout must not leave it relaying for hours."""
    wid = installation.workspace["id"]
    portal = installation.url("localhost")
    workspaces = installation.workspaces()
    cookie = _portal_login(installation, portal)
    mine = _workspace_cookie(installation, portal, cookie, f"/workspaces/{wid}/lab")
    url = workspaces.replace("http://", "ws://") + f"/workspaces/{wid}/api/events/subscribe"
    headers = {"Cookie": f"balsam_session_workspace={mine}", "Origin": workspaces}
    with open_socket(url, headers) as relayed:
        with pytest.raises(TimeoutError):
            relayed.recv(timeout=1)  # open, and quiet
        ending = {"Cookie": f"balsam_session={cookie}", "Origin": portal}
        out = post(f"{portal}/api/v1/auth/logout", headers=ending)
        assert out.status_code == 204
        with pytest.raises(ConnectionClosed):
            relayed.recv(timeout=10)
    with pytest.raises(InvalidStatus):  # and it does not open again
        open_socket(url, headers)


def test_a_refused_socket_is_no_error_in_the_log(installation: Installation) -> None:
    """After a logout JupyterLab keeps reconnecting; each refusal is a 401 in the
    access log, not an ERROR an operator's alerting would fire on."""
    wid = installation.workspace["id"]
    workspaces = installation.workspaces()
    url = workspaces.replace("http://", "ws://") + f"/workspaces/{wid}/api/events/subscribe"
    for _ in range(3):
        with pytest.raises(InvalidStatus) as refused:
            open_socket(url, {"Cookie": "balsam_session_workspace=gone", "Origin": workspaces})
        assert refused.value.response.status_code == 401
    time.sleep(0.5)
    assert "without completing handshake" not in installation.up.stderr


#: Run in one workspace's JupyterLab page: what a script there gets of another
#: workspace the same browser has open (a session on its host included).
NEIGHBOUR = """async ({other, path}) => {
  const outcome = {};
  for (const [name, url] of [["their origin", other + path + "api/contents"],
                             ["this host", path + "api/contents"]]) {
    try {
      const r = await fetch(url, {credentials: "include"});
      outcome[name] = "read " + r.status + " " + (await r.text()).slice(0, 80);
    } catch (e) { outcome[name] = "blocked"; }
  }
  const w = window.open(other + path + "lab");
  await new Promise(r => setTimeout(r, 3000));
  try { outcome.window = w.document.body.innerText.slice(0, 80); }
  catch (e) { outcome.window = "blocked"; }
  w.close();
  const posted = await fetch(other + path + "api/kernels",
                             {method: "POST", mode: "no-cors", credentials: "include", body: "{}"});
  outcome.posted = posted.type;
  outcome.socket = await new Promise(done => {
    const s = new WebSocket(other.replace("http", "ws") + path + "api/events/subscribe");
    s.onopen = () => { done("open"); s.close(); };
    s.onerror = () => done("refused");
  });
  return outcome;
}"""


@pytest.fixture(scope="module")
def neighbour(installation: Installation) -> Iterator[dict[str, Any]]:
    """A second running workspace of the same user and project."""
    made = installation.api.post("/workspaces", json={
        "name": "Granne", "templateId": "python", "projectId": installation.project["id"],
        "branchId": "main"})  # fmt: skip
    assert made.status_code == 201, made.text
    wid = made.json()["id"]
    deadline = time.monotonic() + 300
    while (state := installation.api.get(f"/workspaces/{wid}").json())["state"] != "running":
        assert state["state"] != "failed" and time.monotonic() < deadline, state
        time.sleep(0.5)
    yield state
    installation.api.delete(f"/workspaces/{wid}")


def test_a_workspace_page_gets_nothing_of_another_workspace(
    chromium: Browser, installation: Installation, neighbour: dict[str, Any]
) -> None:
    """Each workspace is an origin of its own: a script in one workspace's page (its
    owner's, or a member's whose pages the browser opens) cannot read, drive or open a
    kernel in another one, though the browser holds a session for both. On one shared
    origin it could (the take-over a review found, docs/security.md)."""
    context = chromium.new_context(locale="en-GB")
    page = context.new_page()
    try:
        portal = installation.url("localhost")
        other = installation.workspaces(neighbour["id"])
        _log_in(page, portal, f"/workspaces/{neighbour['id']}/lab")  # a session there too
        expect(page.locator(LAB)).to_be_visible(timeout=LOAD_MS)
        page.goto(f"{portal}/workspace-session?next=/workspaces/{installation.workspace['id']}/lab")
        expect(page.locator(LAB)).to_be_visible(timeout=LOAD_MS)
        assert page.evaluate("location.origin") == installation.workspaces()
        path = f"/workspaces/{neighbour['id']}/"
        outcome = page.evaluate(NEIGHBOUR, {"other": other, "path": path})
        kernels = installation.api.get(f"/workspaces/{neighbour['id']}").json()
    finally:
        context.close()
    assert outcome == {
        "their origin": "blocked",
        "this host": "blocked",  # sent over to their origin, which grants no reads
        "window": "blocked",
        "posted": "opaque",
        "socket": "refused",
    }, outcome
    assert kernels["state"] == "running"
    bearer = {"Authorization": installation.api.headers["authorization"]}
    listed = get(f"{installation.url('127.0.0.1', installation.workspace_port)}"
                 f"{path}api/kernels", headers=bearer)  # fmt: skip
    assert listed.status_code == 200 and listed.json() == []  # the post started none


def test_opening_from_the_portal_replaces_a_planted_workspace_cookie(
    chromium: Browser, installation: Installation
) -> None:
    """A page on another port of a workspace's host name can still plant a cookie there
    (cookies do not separate ports): another account's session. The portal's links open
    workspaces through a fresh hand-over, so its user gets in as themself again."""
    wid = installation.workspace["id"]
    portal = installation.url("localhost")
    theirs = _workspace_cookie(
        installation, portal, _user_login(installation, portal, "tosser"), f"/workspaces/{wid}/lab"
    )
    context = chromium.new_context(locale="en-GB")
    page = context.new_page()
    try:
        _log_in(page, portal)
        expect(page.get_by_role("heading", name="Your workspaces")).to_be_visible()
        context.add_cookies([{"name": "balsam_session_workspace", "value": theirs,
                              "domain": f"{wid}.localhost", "path": "/"}])  # fmt: skip
        # The planted session alone gets a refusal there (it is not the owner's) ...
        refused = page.goto(f"{installation.workspaces()}/workspaces/{wid}/lab")
        assert refused is not None and refused.status == 404
        # ... the portal's link hands the owner's over again.
        page.goto(f"{portal}/")
        page.get_by_role("link", name=f"Open {installation.workspace['name']}").click()
        expect(page.locator(LAB)).to_be_visible(timeout=LOAD_MS)
    finally:
        context.close()


#: Run in the workspace's kernel with a browser's cookies it got hold of (a server of
#: its own on another port of the portal's host name receives them: cookies do not
#: separate ports): what each buys it.
STOLEN = (
    KERNEL_HTTP
    + """
def status(url, data=None, headers={}):
    return call(url, data, headers)[0]
portal = {"Cookie": "balsam_session=" + PORTAL_COOKIE}
out = {
    "api": status(PORTAL + "/api/v1/users/me", headers=portal),
    "page": status(PORTAL + "/account", headers={**portal, "Accept": "text/html"}),
    "hand-over": status(PORTAL + "/workspace-session?next=" + LAB, headers=portal),
    "workspace": status(WORKSPACES + LAB, headers={
        "Cookie": "balsam_session_workspace=" + WORKSPACE_COOKIE, "Host": HOST}),
    "login": status(PORTAL + "/api/v1/auth/login", headers={
        "Content-Type": "application/json", "Origin": PORTAL},
        data=json.dumps({"username": "admin", "password": PASSWORD}).encode()),
}
# The same from another address of this host as the source (still reaching 127.0.0.1).
import socket
if SOURCE:
    port = int(PORTAL.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10,
                                  source_address=(SOURCE, 0)) as s:
        s.sendall(("GET /api/v1/users/me HTTP/1.1\\r\\nHost: localhost:%d\\r\\n"
                   "Cookie: balsam_session=%s\\r\\nConnection: close\\r\\n\\r\\n"
                   % (port, PORTAL_COOKIE)).encode())
        out["api from another address"] = int(s.recv(64).split()[1])
print(json.dumps(out))
"""
)


@pytest.mark.skipif(os.geteuid() != 0, reason="workspaces have uids of their own only as root")
def test_a_browsers_cookies_buy_a_workspace_nothing(installation: Installation) -> None:
    """A session cookie is a browser's: used (or a session started) from a workspace's
    own uid it is refused, so cookies a kernel's server received are worth nothing."""
    wid = installation.workspace["id"]
    portal = installation.url("localhost")
    lab = f"/workspaces/{wid}/lab"
    cookie = _portal_login(installation, portal)
    mine = _workspace_cookie(installation, portal, cookie, lab)
    # From here (not a workspace) both open what they open.
    assert (
        get(f"{portal}/api/v1/users/me", headers={"Cookie": f"balsam_session={cookie}"}).status_code
        == 200
    )
    opened = get(f"{installation.workspaces()}{lab}",
                 headers={"Cookie": f"balsam_session_workspace={mine}"})  # fmt: skip
    assert opened.status_code == 200
    bearer = {"Authorization": installation.api.headers["authorization"]}
    kernel = Kernel(installation.url("127.0.0.1", installation.workspace_port), wid, bearer)
    try:
        port = installation.workspace_port
        values = {"PORTAL": portal, "WORKSPACES": installation.url("127.0.0.1", port),
                  "HOST": f"{wid}.localhost:{port}", "LAB": lab, "PORTAL_COOKIE": cookie,
                  "WORKSPACE_COOKIE": mine, "PASSWORD": PASSWORD,
                  "SOURCE": _other_local_address()}  # fmt: skip
        code = "".join(f"{k} = {v!r}\n" for k, v in values.items())
        result = kernel.execute(code + STOLEN)
    finally:
        kernel.close()
    assert result.error is None, result.error
    expected = {
        "api": 401,
        "page": 303,  # to the login page
        "hand-over": 303,  # likewise: no ticket
        "workspace": 401,
        "login": 401,  # no session started there either
    }
    if _other_local_address():
        expected["api from another address"] = 401
    assert json.loads(result.stdout) == expected


#: Run as another local user (a browser of someone else on this machine): log in, use
#: the session, and print its cookie.
OTHER_BROWSER = """
import json, sys, urllib.error, urllib.request
portal = sys.argv[1]
login = urllib.request.Request(portal + "/api/v1/auth/login", headers={
    "Content-Type": "application/json", "Origin": portal},
    data=json.dumps({"username": "admin", "password": sys.argv[2]}).encode())
if len(sys.argv) > 3:  # a cookie of someone else's: what it gets here
    cookie = sys.argv[3]
else:
    with urllib.request.urlopen(login, timeout=30) as answer:
        cookie = answer.headers["Set-Cookie"].split(";", 1)[0].split("=", 1)[1]
me = urllib.request.Request(portal + "/api/v1/users/me", headers={
    "Cookie": "balsam_session=" + cookie})
try:
    with urllib.request.urlopen(me, timeout=30) as answer:
        status = answer.status
except urllib.error.HTTPError as error:
    status = error.code
print(json.dumps({"cookie": cookie, "me": status}))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs another local user's process")
def test_a_session_stays_with_the_local_browser_that_started_it(
    installation: Installation, tmp_path: Path
) -> None:
    """On one machine a page on another port of the portal's host name can plant a
    cookie in another user's browser, or receive his: a session a local browser of
    one uid started is refused to any other (another user's browser, root's, a
    workspace's), so neither gets anyone anywhere."""
    portal = installation.url("localhost")
    script = tmp_path / "browser.py"
    script.write_text(OTHER_BROWSER)
    # The other uid must reach the script: pytest makes its folders 0700.
    for folder in tmp_path.parents:
        if folder == Path(tempfile.gettempdir()):
            break
        folder.chmod(folder.stat().st_mode | stat.S_IXOTH)
    tmp_path.chmod(0o755)
    script.chmod(0o644)

    def as_uid(uid: int, *cookie: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
             default_python(), str(script), portal, PASSWORD, *cookie],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    started = as_uid(61_001)
    assert started.returncode == 0, started.stderr
    theirs = json.loads(started.stdout)
    assert theirs["me"] == 200  # it works in the browser that logged in
    elsewhere = get(f"{portal}/api/v1/users/me",
                    headers={"Cookie": f"balsam_session={theirs['cookie']}"})  # fmt: skip
    assert elsewhere.status_code == 401, elsewhere.text
    assert "another browser" in elsewhere.json()["detail"]
    page = get(f"{portal}/account", headers={"Cookie": f"balsam_session={theirs['cookie']}",
                                             "Accept": "text/html"})  # fmt: skip
    assert page.status_code == 303  # to the login page: not logged in there
    # Nor in a third user's browser; and a session started here (root's: bound to no
    # local uid) is nothing in theirs.
    third = as_uid(61_002, theirs["cookie"])
    assert third.returncode == 0 and json.loads(third.stdout)["me"] == 401, third.stderr
    roots = _portal_login(installation, portal)
    planted = as_uid(61_002, roots)
    assert planted.returncode == 0 and json.loads(planted.stdout)["me"] == 401, planted.stderr
