"""Workspace lifecycle endpoints: who may do what (anonymous, non-member,
member-but-not-owner, owner, admin), bad input, locking on member removal,
and what deleting revokes. The workspace is real (JupyterLab starts)."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from balsam.context import AppContext
from tests.fixtures.app import PASSWORD, TestUser
from tests.fixtures.workspaces import wait_state

API = "/api/v1"


@pytest.fixture(scope="module")
def cast(ctx: AppContext, app: Any) -> dict[str, TestUser]:
    from tests.fixtures.app import _make_user

    names = {"owner": False, "member": False, "outsider": False, "admin": True}
    users = {role: _make_user(ctx, app, f"wsperm{role}", admin) for role, admin in names.items()}
    project = (
        users["owner"]
        .client.post(
            f"{API}/projects",
            json={"name": "Behörigheter arbetsyta", "description": "", "branchName": "main"},
        )
        .json()
    )
    added = users["owner"].client.post(
        f"{API}/projects/{project['id']}/members",
        json={"username": "wspermmember", "role": "member"},
    )
    assert added.status_code == 201, added.text
    users["owner"].project = project  # type: ignore[attr-defined]
    return users


@pytest.fixture(scope="module")
def ws(cast: dict[str, TestUser], supervisor: Any) -> dict[str, Any]:
    owner = cast["owner"]
    created = owner.client.post(
        f"{API}/workspaces",
        json={
            "name": "Ägarens",
            "templateId": "python",
            "projectId": owner.project["id"],
            "branchId": "main",
        },
    )  # type: ignore[attr-defined]
    assert created.status_code == 201, created.text
    return wait_state(owner, created.json()["id"], "running")


def _status(
    user: TestUser | None, anon: httpx.Client, method: str, path: str, body: Any = None
) -> int:
    client = user.client if user else anon
    return client.request(method, path, json=body).status_code


def _create_body(project_id: str) -> dict[str, str]:
    return {
        "name": "x",
        "templateId": "no-such-template",
        "projectId": project_id,
        "branchId": "main",
    }


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        # expected for: anonymous, outsider, member, owner, admin
        ("GET", "/templates", (401, 200, 200, 200, 200)),
        # Access is decided before the body: an unknown template is 422 only for members.
        ("POST", "/workspaces", (401, 404, 422, 422, 422)),
        ("GET", "/workspaces?projectId={p}", (401, 404, 200, 200, 200)),
        ("GET", "/workspaces/{w}", (401, 404, 200, 200, 200)),
        ("POST", "/workspaces/{w}/start", (401, 404, 403, 202, 202)),
        ("DELETE", "/workspaces/{w}?projectId=nope", (401, 404, 403, 404, 404)),
    ],
)
def test_lifecycle_access(
    cast: dict[str, TestUser],
    ws: dict[str, Any],
    anon: httpx.Client,
    method: str,
    path: str,
    expected: tuple[int, ...],
) -> None:
    url = API + path.format(p=ws["projectId"], w=ws["id"])
    users = [None, cast["outsider"], cast["member"], cast["owner"], cast["admin"]]
    body = _create_body(ws["projectId"]) if method == "POST" and path == "/workspaces" else None
    got = tuple(_status(u, anon, method, url, body) for u in users)
    assert got == expected


def test_stop_and_start_rights(
    cast: dict[str, TestUser], ws: dict[str, Any], anon: httpx.Client
) -> None:
    url = f"{API}/workspaces/{ws['id']}"
    assert anon.post(url + "/stop").status_code == 401
    assert cast["outsider"].client.post(url + "/stop").status_code == 404
    assert cast["member"].client.post(url + "/stop").status_code == 403
    assert cast["admin"].client.post(url + "/stop").status_code == 202
    wait_state(cast["owner"], ws["id"], "stopped", timeout=60)
    assert cast["owner"].client.post(url + "/start").status_code == 202
    wait_state(cast["owner"], ws["id"], "running")


def test_proxy_access(cast: dict[str, TestUser], ws: dict[str, Any], live_url: str) -> None:
    url = f"{live_url}/workspaces/{ws['id']}/api/status"
    wait_state(cast["owner"], ws["id"], "running")
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers=cast["outsider"].headers).status_code == 404
    assert httpx.get(url, headers=cast["member"].headers).status_code == 403
    assert httpx.get(url, headers=cast["admin"].headers).status_code == 403
    assert httpx.get(url, headers=cast["owner"].headers).status_code == 200
    assert (
        httpx.get(
            f"{live_url}/workspaces/no-such-ws/api/status", headers=cast["owner"].headers
        ).status_code
        == 404
    )


def _ws_refusal(url: str, headers: dict[str, str]) -> int:
    with pytest.raises(InvalidStatus) as refused:
        connect(url, additional_headers=headers, open_timeout=10)
    return refused.value.response.status_code


def test_websocket_upgrades_are_refused_to_others(
    cast: dict[str, TestUser], ws: dict[str, Any], live_url: str
) -> None:
    url = f"{live_url.replace('http', 'ws')}/workspaces/{ws['id']}/api/events/subscribe"
    assert _ws_refusal(url, {}) == 401
    assert _ws_refusal(url, cast["member"].headers) == 403
    with connect(url, additional_headers=cast["owner"].headers, open_timeout=10):
        pass


def test_cookie_sessions_need_the_same_origin(
    cast: dict[str, TestUser], ws: dict[str, Any], live_url: str
) -> None:
    login = httpx.post(
        f"{live_url}{API}/auth/login",
        json={"username": "wsperm" + "owner", "password": "correct-Horse-battery-9"},
    )
    assert login.status_code == 200, login.text
    cookie = {"Cookie": f"balsam_session={login.cookies['balsam_session']}"}
    base = f"{live_url}/workspaces/{ws['id']}/"
    assert httpx.get(base + "api/status", headers=cookie).status_code == 200
    # A cross-site page cannot write with the user's cookie...
    evil = {**cookie, "Origin": "https://evil.example"}
    assert httpx.post(base + "api/kernels", headers=evil, json={}).status_code == 403
    assert httpx.post(base + "api/kernels", headers=cookie, json={}).status_code == 403
    ws_url = base.replace("http", "ws") + "api/events/subscribe"
    # ...nor open a socket to it.
    assert _ws_refusal(ws_url, evil) == 403
    same = {**cookie, "Origin": live_url}
    with connect(ws_url, additional_headers=same, open_timeout=10):
        pass
    # Logging out closes the workspace at once (no cached grace period).
    assert httpx.post(f"{live_url}{API}/auth/logout", headers=cookie).status_code == 204
    assert httpx.get(base + "api/status", headers=cookie).status_code == 401


def test_a_browser_without_a_session_is_sent_to_log_in(ws: dict[str, Any], live_url: str) -> None:
    url = f"{live_url}/workspaces/{ws['id']}/lab?reset"
    page = httpx.get(url, headers={"Accept": "text/html,application/xhtml+xml"})
    assert page.status_code == 303
    assert page.headers["location"] == (f"/login?next=%2Fworkspaces%2F{ws['id']}%2Flab%3Freset")
    assert httpx.get(url, headers={"Accept": "application/json"}).status_code == 401


def test_a_browser_refused_a_workspace_gets_the_portals_error_page(
    cast: dict[str, TestUser], ws: dict[str, Any], live_url: str
) -> None:
    """A person opening a workspace that is not theirs (or gone) reads why, on a page
    in their language; a script still gets problem+json."""
    html = {"Accept": "text/html", "Accept-Language": "sv"}
    own, gone = f"/workspaces/{ws['id']}/lab", "/workspaces/gone-123/lab"
    for user, path, status in ((cast["member"], own, 403), (cast["owner"], gone, 404)):
        login = httpx.post(f"{live_url}{API}/auth/login",
                           json={"username": user.username, "password": PASSWORD})  # fmt: skip
        cookie = {"Cookie": f"balsam_session={login.cookies['balsam_session']}"}
        page = httpx.get(live_url + path, headers={**html, **cookie})
        assert page.status_code == status
        assert page.headers["content-type"].startswith("text/html")
        assert 'lang="sv"' in page.text and 'role="alert"' in page.text
        script = httpx.get(live_url + path, headers={"Accept": "application/json", **cookie})
        assert script.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({}, 422),
        ({"name": "x", "templateId": "python", "projectId": "{p}"}, 422),
        ({"name": "x", "templateId": "no-such", "projectId": "{p}", "branchId": "main"}, 422),
        ({"name": "x", "templateId": "python", "projectId": "{p}", "branchId": "nope"}, 404),
        ({"name": "x", "templateId": "python", "projectId": "nope", "branchId": "main"}, 404),
        ({"name": "", "templateId": "python", "projectId": "{p}", "branchId": "main"}, 422),
        ({"name": "x" * 101, "templateId": "python", "projectId": "{p}", "branchId": "main"}, 422),
        (
            {
                "name": "x",
                "templateId": "python",
                "projectId": "{p}",
                "branchId": "main",
                "extra": 1,
            },
            422,
        ),
        ({"name": 5, "templateId": "python", "projectId": "{p}", "branchId": "main"}, 422),
    ],
)
def test_create_bad_input(cast: dict[str, TestUser], body: dict[str, Any], status: int) -> None:
    project_id = cast["owner"].project["id"]  # type: ignore[attr-defined]
    filled = {k: v.replace("{p}", project_id) if isinstance(v, str) else v for k, v in body.items()}
    r = cast["owner"].client.post(f"{API}/workspaces", json=filled)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"


def test_removing_a_member_locks_their_workspace(
    cast: dict[str, TestUser], supervisor: Any, live_url: str, ctx: AppContext
) -> None:
    member, owner = cast["member"], cast["owner"]
    project_id = owner.project["id"]  # type: ignore[attr-defined]
    created = member.client.post(
        f"{API}/workspaces",
        json={
            "name": "Medlemmens",
            "templateId": "python",
            "projectId": project_id,
            "branchId": "main",
        },
    )
    assert created.status_code == 201, created.text
    wid = created.json()["id"]
    wait_state(member, wid, "running")
    key = created.json() and ctx.workspace_secrets.load(wid).s3_access_key  # type: ignore[union-attr]
    removed = owner.client.delete(f"{API}/projects/{project_id}/members/wspermmember")
    assert removed.status_code == 204, removed.text
    body = wait_state(owner, wid, "stopped", timeout=60)
    assert body["locked"] is True
    assert not ctx.providers.storage.key_exists(key)
    assert (
        httpx.get(f"{live_url}/workspaces/{wid}/api/status", headers=member.headers).status_code
        == 404
    )
    readded = owner.client.post(
        f"{API}/projects/{project_id}/members", json={"username": "wspermmember", "role": "member"}
    )
    assert readded.status_code == 201
    assert member.client.post(f"{API}/workspaces/{wid}/start").status_code == 409
    assert member.client.delete(f"{API}/workspaces/{wid}").status_code == 204


def test_delete_revokes_everything(
    cast: dict[str, TestUser], ws: dict[str, Any], ctx: AppContext, live_url: str
) -> None:
    owner, wid = cast["owner"], ws["id"]
    secrets = ctx.workspace_secrets.load(wid)
    assert secrets is not None
    home = ctx.providers.workspaces.root / wid  # type: ignore[attr-defined]
    assert home.exists()
    r = owner.client.delete(f"{API}/workspaces/{wid}?projectId={ws['projectId']}&branchId=main")
    assert r.status_code == 204, r.text
    assert owner.client.get(f"{API}/workspaces/{wid}").status_code == 404
    assert not home.exists()
    assert ctx.workspace_secrets.load(wid) is None
    assert not ctx.providers.storage.key_exists(secrets.s3_access_key)
    # The git token no longer opens the repository.
    refs = httpx.get(
        f"{live_url}/git/{ws['projectId']}.git/info/refs?service=git-upload-pack",
        auth=(secrets.git_username, secrets.git_token),
    )
    assert refs.status_code == 401


def _basic(user: str, secret: str) -> str:
    import base64

    return base64.b64encode(f"{user}:{secret}".encode()).decode()


def test_workspace_git_token_is_scoped_to_its_project(
    cast: dict[str, TestUser], ctx: AppContext, live_url: str, supervisor: Any
) -> None:
    owner = cast["owner"]
    other = owner.client.post(
        f"{API}/projects",
        json={"name": "Annat projekt arbetsyta", "description": "", "branchName": "main"},
    ).json()
    created = owner.client.post(
        f"{API}/workspaces",
        json={
            "name": "Tokentest",
            "templateId": "python",
            "projectId": other["id"],
            "branchId": "main",
        },
    ).json()
    secrets = ctx.workspace_secrets.load(created["id"])
    assert secrets is not None
    auth = f"http.extraHeader=Authorization: Basic {_basic(owner.username, secrets.git_token)}"
    env = {"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/bin"}
    ok = subprocess.run(
        ["git", "-c", auth, "ls-remote", f"{live_url}/git/{other['id']}.git"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert ok.returncode == 0, ok.stderr
    project_id = owner.project["id"]  # type: ignore[attr-defined]
    refused = subprocess.run(
        ["git", "-c", auth, "ls-remote", f"{live_url}/git/{project_id}.git"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert refused.returncode != 0
    owner.client.delete(f"{API}/workspaces/{created['id']}")


def test_deleting_the_project_deletes_its_workspaces(
    cast: dict[str, TestUser], ctx: AppContext, supervisor: Any
) -> None:
    owner = cast["owner"]
    project = owner.client.post(
        f"{API}/projects",
        json={"name": "Kortlivat projekt", "description": "", "branchName": "main"},
    ).json()
    created = owner.client.post(
        f"{API}/workspaces",
        json={
            "name": "Kortlivad",
            "templateId": "python",
            "projectId": project["id"],
            "branchId": "main",
        },
    ).json()
    wait_state(owner, created["id"], "running")
    secrets = ctx.workspace_secrets.load(created["id"])
    assert secrets is not None
    assert owner.client.delete(f"{API}/projects/{project['id']}").status_code == 204
    assert owner.client.get(f"{API}/workspaces/{created['id']}").status_code == 404
    assert not (ctx.providers.workspaces.root / created["id"]).exists()  # type: ignore[attr-defined]
    assert not ctx.providers.workspaces.probe(created["id"]).alive
    assert not ctx.providers.storage.key_exists(secrets.s3_access_key)


def test_a_template_that_cannot_be_built_fails_with_its_reason(
    cast: dict[str, TestUser], ctx: AppContext, supervisor: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from balsam.domain.workspaces.templates import WorkspaceTemplate

    broken = WorkspaceTemplate(
        id="trasig", name="Trasig", requirements=("balsam-test-no-such-package-3f9a==0.0.1",)
    )
    monkeypatch.setitem(ctx.templates, "trasig", broken)
    owner = cast["owner"]
    created = owner.client.post(
        f"{API}/workspaces",
        json={
            "name": "Trasig",
            "templateId": "trasig",
            "projectId": owner.project["id"],  # type: ignore[attr-defined]
            "branchId": "main",
        },
    )
    assert created.status_code == 201, created.text
    body = wait_state(owner, created.json()["id"], "failed", timeout=300)
    assert "Building the environment failed" in body["stateReason"]
    assert body["environment"]["packages"] is None
    assert owner.client.delete(f"{API}/workspaces/{body['id']}").status_code == 204


def test_one_person_has_at_most_so_many_workspaces(
    cast: dict[str, TestUser], ws: dict[str, Any], ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each workspace has its own uid and limits: without a count, one user's workspaces
    together were bounded by nothing (a review)."""
    owner = cast["owner"]
    have = len(owner.client.get(f"{API}/workspaces").json())
    monkeypatch.setattr(ctx.settings.workspaces, "max_per_user", have)
    refused = owner.client.post(
        f"{API}/workspaces",
        json={"name": "En till", "templateId": "python", "projectId": ws["projectId"],
              "branchId": "main"},
    )  # fmt: skip
    assert refused.status_code == 409, refused.text
    assert "delete one first" in refused.json()["detail"]
    assert len(owner.client.get(f"{API}/workspaces").json()) == have
    # Creations at once all pass the first count (a review got 8 under a limit of 5):
    # those beyond the limit are undone.
    monkeypatch.setattr(ctx.settings.workspaces, "max_per_user", have + 1)
    body = {"name": "Samtidig", "templateId": "python", "projectId": ws["projectId"],
            "branchId": "main"}  # fmt: skip
    with ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(lambda _: owner.client.post(f"{API}/workspaces", json=body), range(4))
        )
    created = [a.json()["id"] for a in answers if a.status_code == 201]
    assert sorted(a.status_code for a in answers) == [201, 409, 409, 409], answers
    assert len(owner.client.get(f"{API}/workspaces").json()) == have + 1
    owner.client.delete(f"{API}/workspaces/{created[0]}")
