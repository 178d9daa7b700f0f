"""Users, personal API tokens, portal login (cookie + CSRF), rate limits, login audit."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import update

from balsam.app import create_app
from balsam.context import AppContext
from balsam.db.models import ApiToken
from balsam.domain.identity.schemas import UserCreate
from balsam.domain.identity.service import IdentityService
from balsam.settings import Settings
from tests.fixtures.app import PASSWORD, TestUser

PROBLEM = "application/problem+json"
GOOD_PASSWORD = "Tundra-Lantern-Quokka-42"


def client_for(
    app: FastAPI, address: str = "192.0.2.10", auth: tuple[str, str] | None = None
) -> TestClient:
    """An in-process client whose requests come from ``address`` (TEST-NET-1 by
    default, so failed logins here never count against other tests' address)."""
    client = TestClient(app, raise_server_exceptions=False, client=(address, 40000))
    if auth is not None:
        client.auth = auth
    return client


@pytest.fixture
def browser(app: FastAPI) -> Iterator[httpx.Client]:
    """A client without a bearer token: it authenticates with the session cookie."""
    with client_for(app) as client:
        yield client


def login(client: httpx.Client, username: str, password: str = PASSWORD) -> httpx.Response:
    return client.post("/api/v1/auth/login", json={"username": username, "password": password})


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["detail"] and body["reason"]
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- users ---------------------------------------------------------------------


def test_admin_creates_a_user_who_can_log_in(
    admin: TestUser, browser: httpx.Client, unique: Callable[[str], str]
) -> None:
    username = unique("carol")
    r = admin.client.post(
        "/api/v1/users",
        json={
            "username": username,
            "password": GOOD_PASSWORD,
            "email": f"{username}@example.org",
            "displayName": "Carol C.",
        },
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["username"] == username and body["displayName"] == "Carol C."
    assert body["isAdmin"] is False and body["isActive"] is True and body["createdAt"]
    assert "password" not in body and "passwordHash" not in body
    assert login(browser, username, GOOD_PASSWORD).status_code == 200


def test_only_admins_create_users(
    alice: TestUser, anon: httpx.Client, unique: Callable[[str], str]
) -> None:
    new = {"username": unique("dave"), "password": GOOD_PASSWORD}
    assert_problem(alice.client.post("/api/v1/users", json=new), 403)
    assert_problem(alice.client.post("/api/v1/users", json={**new, "isAdmin": True}), 403)
    r = assert_problem(anon.post("/api/v1/users", json=new), 401)
    assert r["reason"] == "unauthenticated"


def test_anonymous_401_carries_www_authenticate(anon: httpx.Client) -> None:
    r = anon.get("/api/v1/users/me")
    assert_problem(r, 401)
    assert r.headers["www-authenticate"].startswith("Bearer")


def test_duplicate_username_is_409(admin: TestUser, alice: TestUser) -> None:
    r = admin.client.post(
        "/api/v1/users", json={"username": alice.username, "password": GOOD_PASSWORD}
    )
    assert_problem(r, 409)


@pytest.mark.parametrize(
    "username",
    [
        "",
        "Upper",
        "with space",
        "-dash-first",
        ".dot-first",
        "slash/name",
        "ünïcode",
        "x" * 65,
        "semi;colon",
    ],
)
def test_bad_usernames_are_422(admin: TestUser, username: str) -> None:
    r = admin.client.post("/api/v1/users", json={"username": username, "password": GOOD_PASSWORD})
    assert_problem(r, 422)


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("Sh0rt-pass", "at least 12 characters"),
        ("password1234", "too common"),
        ("PASSWORD1234", "too common"),
        ("aaaaaaaaaaaaaaaa", "too common"),
        ("{username}-Lantern-42", "username"),
    ],
)
def test_password_policy(
    admin: TestUser, unique: Callable[[str], str], password: str, problem: str
) -> None:
    username = unique("erin")
    r = admin.client.post(
        "/api/v1/users", json={"username": username, "password": password.format(username=username)}
    )
    body = assert_problem(r, 422)
    assert problem in body["detail"]
    assert body["errors"] and all(e["loc"] == ["password"] for e in body["errors"])


def test_get_me(alice: TestUser) -> None:
    r = alice.client.get("/api/v1/users/me")
    assert r.status_code == 200, r.text
    me = r.json()
    assert me["username"] == alice.username and me["email"] == f"{alice.username}@example.org"
    assert me["isAdmin"] is False and me["isActive"] is True


def test_user_changes_own_profile_but_not_status(alice: TestUser, bob: TestUser) -> None:
    url = f"/api/v1/users/{alice.username}"
    r = alice.client.patch(url, json={"displayName": "Alice A.", "email": "a@example.org"})
    assert r.status_code == 200 and r.json()["displayName"] == "Alice A."
    assert_problem(alice.client.patch(url, json={"isAdmin": True}), 403)
    assert_problem(alice.client.patch(url, json={"isActive": False}), 403)
    assert_problem(
        alice.client.patch(f"/api/v1/users/{bob.username}", json={"isActive": False}), 403
    )
    assert_problem(
        alice.client.patch(f"/api/v1/users/{bob.username}", json={"displayName": "Bobby"}), 403
    )
    me = alice.client.get("/api/v1/users/me").json()
    assert me["isAdmin"] is False and me["isActive"] is True
    assert bob.client.get("/api/v1/users/me").status_code == 200


#: Accepted before: it landed in workspaces' ~/.gitconfig as a command git runs.
GITCONFIG_INJECTION = 'a@b.c"\n[core]\n\tfsmonitor = "touch /tmp/balsam-pwned"'


@pytest.mark.parametrize(
    "email",
    [
        GITCONFIG_INJECTION,
        "a@b.c\n",
        "a b@example.org",
        '"quoted"@example.org',
        "<a@b.c>",
        "no-at-sign",
        "a@",
        "@example.org",
        "a@b_c.org",
        "a@-b.org",
        "a..b@example.org",
        "a@b.c\u0000",
        "x" * 250 + "@b.c",
    ],
)
def test_bad_emails_are_422(
    alice: TestUser, admin: TestUser, unique: Callable[[str], str], email: str
) -> None:
    body = assert_problem(
        alice.client.patch(f"/api/v1/users/{alice.username}", json={"email": email}), 422
    )
    assert body["errors"] and all(e["loc"][-1] == "email" for e in body["errors"])
    assert_problem(
        admin.client.post(
            "/api/v1/users",
            json={"username": unique("frank"), "password": GOOD_PASSWORD, "email": email},
        ),
        422,
    )
    assert alice.client.get("/api/v1/users/me").json()["email"] != email


@pytest.mark.parametrize(
    "name",
    [
        'Eve"\n[core]\n\tpager = "sh"',
        "tab\tname",
        "bell\a",
        "rtl\u202eevil",
        "x" * 201,
    ],
)
def test_bad_display_names_are_422(alice: TestUser, name: str) -> None:
    body = assert_problem(
        alice.client.patch(f"/api/v1/users/{alice.username}", json={"displayName": name}), 422
    )
    assert body["errors"] and all(e["loc"][-1] == "displayName" for e in body["errors"])


@pytest.mark.parametrize(
    ("email", "name"),
    [
        ("o'brien+lab@example.org", "Seán O'Brien"),
        ("jörg@exämple.de", "Jörg «J» Müller"),
        ("root@localhost", "李小龍"),
        ("", "Ada"),
    ],
)
def test_real_addresses_and_names_are_accepted(alice: TestUser, email: str, name: str) -> None:
    r = alice.client.patch(
        f"/api/v1/users/{alice.username}", json={"email": email, "displayName": f"  {name} "}
    )
    assert r.status_code == 200, r.text
    assert r.json()["email"] == email and r.json()["displayName"] == name


def test_admin_cannot_deactivate_self(admin: TestUser) -> None:
    r = admin.client.patch(f"/api/v1/users/{admin.username}", json={"isActive": False})
    assert_problem(r, 409)
    assert admin.client.get("/api/v1/users/me").status_code == 200


def test_admin_cannot_remove_own_admin_rights(admin: TestUser) -> None:
    r = admin.client.patch(f"/api/v1/users/{admin.username}", json={"isAdmin": False})
    assert_problem(r, 409)
    assert admin.client.get("/api/v1/users/me").json()["isAdmin"] is True


def test_patch_unknown_user_is_404(admin: TestUser, unique: Callable[[str], str]) -> None:
    r = admin.client.patch(f"/api/v1/users/{unique('ghost')}", json={"displayName": "x"})
    assert_problem(r, 404)


def test_deactivation_ends_tokens_and_sessions(
    admin: TestUser, bob: TestUser, browser: httpx.Client
) -> None:
    assert login(browser, bob.username).status_code == 200
    assert browser.get("/api/v1/users/me").status_code == 200
    r = admin.client.patch(f"/api/v1/users/{bob.username}", json={"isActive": False})
    assert r.status_code == 200 and r.json()["isActive"] is False
    assert_problem(bob.client.get("/api/v1/users/me"), 401)
    assert_problem(browser.get("/api/v1/users/me"), 401)
    assert_problem(login(browser, bob.username), 401)
    assert (
        admin.client.patch(f"/api/v1/users/{bob.username}", json={"isActive": True}).status_code
        == 200
    )
    assert bob.client.get("/api/v1/users/me").status_code == 200


def test_admin_lists_users(admin: TestUser, alice: TestUser) -> None:
    r = admin.client.get("/api/v1/users", params={"q": alice.username})
    assert r.status_code == 200
    assert [u["username"] for u in r.json()["users"]] == [alice.username]
    assert_problem(alice.client.get("/api/v1/users"), 403)


# -- tokens --------------------------------------------------------------------


def test_create_token_with_bearer(alice: TestUser, anon: httpx.Client) -> None:
    r = alice.client.post("/api/v1/users/me/tokens", json={"name": "ci", "expiresInDays": 7})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["token"].startswith("blsm_") and body["name"] == "ci" and body["id"]
    expires = datetime.fromisoformat(body["expiresAt"])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=7))) < timedelta(minutes=5)
    r = anon.get("/api/v1/users/me", headers=bearer(body["token"]))
    assert r.status_code == 200 and r.json()["username"] == alice.username


def test_create_token_with_basic_auth(alice: TestUser, app: FastAPI) -> None:
    with client_for(app, auth=(alice.username, PASSWORD)) as basic:
        r = basic.post("/api/v1/users/me/tokens", json={"name": "bootstrap"})
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    assert alice.client.get("/api/v1/users/me", headers=bearer(token)).status_code == 200
    with client_for(app, auth=(alice.username, "wrong-password-123")) as wrong:
        assert_problem(wrong.post("/api/v1/users/me/tokens", json={"name": "x"}), 401)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/v1/users/me", None),
        ("GET", "/api/v1/users/me/tokens", None),
        ("GET", "/api/v1/projects", None),
        ("POST", "/api/v1/projects", {"name": "via basic", "branchName": "main"}),
    ],
)
def test_basic_auth_is_refused_elsewhere(
    alice: TestUser, app: FastAPI, method: str, path: str, body: Any
) -> None:
    with client_for(app, auth=(alice.username, PASSWORD)) as basic:
        assert_problem(basic.request(method, path, json=body), 401)


def test_list_tokens_never_shows_values(alice: TestUser) -> None:
    made = alice.client.post("/api/v1/users/me/tokens", json={"name": "listed"}).json()
    r = alice.client.get("/api/v1/users/me/tokens")
    assert r.status_code == 200
    tokens = r.json()
    assert made["id"] in {t["id"] for t in tokens} and len(tokens) == 2
    assert all(set(t) == {"id", "name", "createdAt", "expiresAt", "lastUsedAt"} for t in tokens)
    assert alice.token not in r.text and made["token"] not in r.text


def test_revoke_token(alice: TestUser, bob: TestUser) -> None:
    made = alice.client.post("/api/v1/users/me/tokens", json={"name": "short-lived"}).json()
    assert alice.client.get("/api/v1/users/me", headers=bearer(made["token"])).status_code == 200
    assert_problem(bob.client.delete(f"/api/v1/users/me/tokens/{made['id']}"), 404)
    assert alice.client.delete(f"/api/v1/users/me/tokens/{made['id']}").status_code == 204
    assert_problem(alice.client.get("/api/v1/users/me", headers=bearer(made["token"])), 401)
    assert_problem(alice.client.delete(f"/api/v1/users/me/tokens/{made['id']}"), 404)
    ids = {t["id"] for t in alice.client.get("/api/v1/users/me/tokens").json()}
    assert made["id"] not in ids


def test_token_lifetime_bounds(alice: TestUser, settings: Settings) -> None:
    most = settings.auth.token_max_days
    for days in (0, -1, most + 1):
        r = alice.client.post("/api/v1/users/me/tokens", json={"name": "t", "expiresInDays": days})
        assert_problem(r, 422)
    for bad in ("7", 1.5, None):
        r = alice.client.post("/api/v1/users/me/tokens", json={"name": "t", "expiresInDays": bad})
        assert_problem(r, 422)
    r = alice.client.post("/api/v1/users/me/tokens", json={"name": "t", "expiresInDays": most})
    assert r.status_code == 201, r.text


def test_expired_token_is_401(alice: TestUser, ctx: AppContext) -> None:
    made = alice.client.post("/api/v1/users/me/tokens", json={"name": "expiring"}).json()
    assert alice.client.get("/api/v1/users/me", headers=bearer(made["token"])).status_code == 200
    with ctx.sessions() as session, session.begin():
        session.execute(
            update(ApiToken)
            .where(ApiToken.id == made["id"])
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    body = assert_problem(alice.client.get("/api/v1/users/me", headers=bearer(made["token"])), 401)
    assert "expired" in body["detail"]


def test_garbage_credentials_are_401(anon: httpx.Client) -> None:
    for header in ("Bearer blsm_not-a-token", "Bearer ", "Basic !!!", "Token abc"):
        assert_problem(anon.get("/api/v1/users/me", headers={"Authorization": header}), 401)


# -- login sessions ------------------------------------------------------------


def test_login_sets_a_safe_cookie(
    alice: TestUser, browser: httpx.Client, settings: Settings
) -> None:
    r = login(browser, alice.username)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["username"] == alice.username and body["csrfToken"] and body["expiresAt"]
    cookie = r.headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")}
    assert cookie.startswith(f"{settings.auth.cookie_name}=")
    assert "httponly" in attributes and attributes["samesite"].lower() == "samesite=lax"
    assert attributes["path"] == "Path=/"
    assert body["csrfToken"] not in cookie
    r = browser.get("/api/v1/users/me")
    assert r.status_code == 200 and r.json()["username"] == alice.username


def test_wrong_password_or_unknown_user_is_401(
    alice: TestUser, browser: httpx.Client, unique: Callable[[str], str]
) -> None:
    for username, password in [(alice.username, "not-the-password"), (unique("nobody"), PASSWORD)]:
        body = assert_problem(login(browser, username, password), 401)
        assert body["detail"] == "Wrong username or password."
    assert not browser.cookies


def test_cookie_writes_need_the_csrf_token(
    alice: TestUser, browser: httpx.Client, unique: Callable[[str], str]
) -> None:
    csrf = login(browser, alice.username).json()["csrfToken"]
    new = {"name": unique("Cookie project "), "branchName": "main"}
    assert_problem(browser.post("/api/v1/projects", json=new), 403)
    # The last character changed to one it is not (a fixed "x" left a token ending in x valid).
    wrong = csrf[:-1] + ("y" if csrf.endswith("x") else "x")
    assert_problem(browser.post("/api/v1/projects", json=new, headers={"X-CSRF-Token": wrong}), 403)
    assert alice.client.get("/api/v1/projects", params={"q": new["name"]}).json()["total"] == 0
    r = browser.post("/api/v1/projects", json=new, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201, r.text
    assert browser.get(f"/api/v1/projects/{r.json()['id']}").status_code == 200


def test_csrf_token_belongs_to_its_session(alice: TestUser, bob: TestUser, app: FastAPI) -> None:
    with client_for(app) as a_browser, client_for(app) as b_browser:
        login(a_browser, alice.username)
        bob_csrf = login(b_browser, bob.username).json()["csrfToken"]
        r = a_browser.patch(
            f"/api/v1/users/{alice.username}",
            json={"displayName": "A"},
            headers={"X-CSRF-Token": bob_csrf},
        )
        assert_problem(r, 403)


def test_logout_ends_the_session(
    alice: TestUser, browser: httpx.Client, app: FastAPI, settings: Settings
) -> None:
    name = settings.auth.cookie_name
    assert login(browser, alice.username).status_code == 200
    value = browser.cookies[name]
    r = browser.post("/api/v1/auth/logout")
    assert r.status_code == 204
    assert name not in browser.cookies
    with client_for(app) as replay:  # a copy of the cookie kept from before the logout
        replay.cookies.set(name, value)
        assert_problem(replay.get("/api/v1/users/me"), 401)
    assert browser.post("/api/v1/auth/logout").status_code == 204  # idempotent


@pytest.mark.parametrize(
    "headers",
    [{"Origin": "http://localhost:1"}, {"Sec-Fetch-Site": "same-site"},
     {"Sec-Fetch-Site": "cross-site"}],
)  # fmt: skip
def test_a_page_elsewhere_cannot_log_the_browser_in_or_out(
    alice: TestUser, browser: httpx.Client, headers: dict[str, str]
) -> None:
    """A workspace's page (another port, the same host) ending the session would let
    it plant another account's in its place."""
    body = {"username": alice.username, "password": PASSWORD}
    assert_problem(browser.post("/api/v1/auth/login", json=body, headers=headers), 403)
    assert login(browser, alice.username).status_code == 200
    assert_problem(browser.post("/api/v1/auth/logout", headers=headers), 403)
    assert browser.get("/api/v1/users/me").json()["username"] == alice.username


def test_bearer_wins_over_cookie(alice: TestUser, bob: TestUser, browser: httpx.Client) -> None:
    login(browser, alice.username)
    r = browser.get("/api/v1/users/me", headers=bearer(bob.token))
    assert r.json()["username"] == bob.username


# -- audit ---------------------------------------------------------------------


def login_events(admin: TestUser, username: str) -> list[dict[str, Any]]:
    r = admin.client.get("/api/v1/audit", params={"limit": 100})
    assert r.status_code == 200, r.text
    return [
        e
        for e in r.json()["events"]
        if e["action"] == "auth.login" and e["target"] == f"user:{username}"
    ]


def test_logins_are_audited(alice: TestUser, admin: TestUser, browser: httpx.Client) -> None:
    login(browser, alice.username, "not-the-password")
    login(browser, alice.username)
    events = login_events(admin, alice.username)
    assert [e["outcome"] for e in events] == ["success", "failure"]  # newest first
    assert all(e["actor"] == alice.username and e["details"]["address"] for e in events)
    assert events[1]["details"]["reason"] == "bad credentials"
    assert "not-the-password" not in str(events)


def test_audit_is_for_admins_only(alice: TestUser, anon: httpx.Client) -> None:
    assert_problem(alice.client.get("/api/v1/audit"), 403)
    assert_problem(anon.get("/api/v1/audit"), 401)


# -- rate limit (its own app, so the limits do not leak into other tests) -----------


@pytest.fixture
def limited_app(
    settings: Settings, ctx: AppContext, tmp_path: Path, fresh_database_url: str
) -> Iterator[FastAPI]:
    auth = settings.auth.model_copy(update={"login_max_failures": 3})
    limited = settings.model_copy(
        update={"auth": auth, "data_dir": tmp_path, "database_url": fresh_database_url}
    )
    app = create_app(limited, providers=ctx.providers)
    yield app
    app.state.ctx.engine.dispose()


@pytest.fixture
def limited_users(limited_app: FastAPI) -> list[str]:
    identity = IdentityService(limited_app.state.ctx)
    names = ["rl-admin", "rl-one", "rl-two", "rl-three", "rl-four"]
    for name in names:
        identity.create_user(
            None, UserCreate(username=name, password=PASSWORD, is_admin=name == "rl-admin")
        )
    return names


def test_failed_logins_elsewhere_do_not_lock_the_account(
    limited_app: FastAPI, limited_users: list[str]
) -> None:
    target = limited_users[1]
    for i in range(3):  # from different addresses: failures count per (account, address)
        with client_for(limited_app, f"10.0.0.{i + 1}") as client:
            assert_problem(login(client, target, "not-the-password"), 401)
    with client_for(limited_app, "10.0.0.9") as client:
        assert login(client, target).status_code == 200
    with client_for(limited_app, "10.0.0.9", auth=(target, PASSWORD)) as basic:
        assert basic.post("/api/v1/users/me/tokens", json={"name": "x"}).status_code == 201


def test_failed_logins_lock_the_address(limited_app: FastAPI, limited_users: list[str]) -> None:
    with client_for(limited_app, "10.0.1.1") as client:
        for name in limited_users[1:4]:
            assert_problem(login(client, name, "not-the-password"), 401)
        assert_problem(login(client, limited_users[4]), 429)
    with client_for(limited_app, "10.0.1.2") as elsewhere:
        assert login(elsewhere, limited_users[4]).status_code == 200
        assert login(elsewhere, limited_users[1]).status_code == 200


def test_rate_limited_logins_are_audited(limited_app: FastAPI, limited_users: list[str]) -> None:
    target = limited_users[1]
    with client_for(limited_app, "10.0.2.1") as client:
        for _ in range(4):
            login(client, target, "not-the-password")
    with client_for(limited_app, "10.0.2.2") as client:
        assert login(client, "rl-admin").status_code == 200
        events = client.get("/api/v1/audit", params={"limit": 10}).json()["events"]
    outcomes = [
        e["outcome"]
        for e in events
        if e["action"] == "auth.login" and e["target"] == f"user:{target}"
    ]
    assert outcomes == ["denied", "failure", "failure", "failure"]
    assert events[0]["actor"] == "rl-admin" and events[0]["outcome"] == "success"
    ok, checked, bad = limited_app.state.ctx.audit.verify_chain()
    assert ok and bad is None and checked >= 5
