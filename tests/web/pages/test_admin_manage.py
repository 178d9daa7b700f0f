"""Administration pages: users, knowledge libraries and the audit trail; nobody
but an administrator gets anything from them."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi import FastAPI

from balsam.context import AppContext
from balsam.domain.identity.service import IdentityService
from tests.fixtures.app import TestUser
from tests.fixtures.library import file_url, make_repo
from tests.web.pages.browsing import browser, followed, post


@pytest.mark.parametrize(
    "path", ["/admin/users", "/admin/libraries", "/admin/audit", "/admin/templates"]
)
def test_others_get_the_error_page(app: FastAPI, alice: TestUser, path: str) -> None:
    with browser(app, alice) as client:
        r = client.get(path)
    assert r.status_code == 403 and "<table" not in r.text


def test_others_cannot_post_either(app: FastAPI, alice: TestUser, bob: TestUser) -> None:
    with browser(app, alice) as client:
        made = post(client, "/admin/users", {"username": "sneaky", "password": "x" * 20})
        reset = post(client, f"/admin/users/{bob.username}/reset-password")
        promoted = post(client, f"/admin/users/{alice.username}/make-admin")
        library = post(client, "/admin/libraries/any", {"repositoryUrl": "https://x/y.git"})
    assert made.status_code == reset.status_code == promoted.status_code == 403
    assert library.status_code == 403
    assert not alice.client.get("/api/v1/users/me").json()["isAdmin"]


def test_an_admin_creates_deactivates_and_resets_a_user(
    app: FastAPI, ctx: AppContext, admin: TestUser, unique: Callable[[str], str]
) -> None:
    name = unique("ny")
    with browser(app, admin, "sv") as client:
        page = client.get("/admin/users")
        assert page.status_code == 200 and ">Användare</a>" in page.text
        fields = {"username": name, "password": "Ett-bra-lösenord-77", "displayName": "Ny"}
        short = post(client, "/admin/users", {**fields, "password": "kort"})
        # Refused in Swedish, with what was typed kept (the password never shown again).
        assert short.status_code == 422 and "Lösenordet måste ha minst 12 tecken." in short.text
        assert f'value="{name}"' in short.text and "kort" not in short.text
        made = followed(client, post(client, "/admin/users", fields))
        assert made.status_code == 200 and "Användaren är skapad" in made.text
        off = followed(client, post(client, f"/admin/users/{name}/deactivate"))
        assert off.status_code == 200 and 'role="status"' in off.text
        assert not IdentityService(ctx).get_user(name).is_active
        on = followed(client, post(client, f"/admin/users/{name}/activate"))
        assert on.status_code == 200 and IdentityService(ctx).get_user(name).is_active
        # A crafted link says nothing Balsam did not.
        assert 'role="status"' not in client.get("/admin/users?done=Hackad").text
        reset = post(client, f"/admin/users/{name}/reset-password")
        shown = re.search(r'<code id="new-password">([^<]+)</code>', reset.text)
        assert shown is not None
    IdentityService(ctx).login_password(name, shown.group(1), address="test")


def test_an_admin_registers_and_removes_a_library(
    app: FastAPI, admin: TestUser, sources_root: Path, unique: Callable[[str], str]
) -> None:
    source = make_repo(sources_root / unique("adminlib"), {"README.md": b"# Hej\n"})
    name = unique("Adminbibliotek ")
    with browser(app, admin) as client:
        made = post(client, "/admin/libraries", {"name": name, "repositoryUrl": file_url(source)})
        made = followed(client, made)
        assert made.status_code == 200 and "first sync has started" in made.text
        lid = re.search(rf'href="/library/([^"]+)">{name}</a>', made.text)
        assert lid is not None
        loopback = {"name": unique("Fel "), "repositoryUrl": "http://127.0.0.1:1/x.git"}
        bad = post(client, "/admin/libraries", loopback)
        assert bad.status_code in (400, 422) and 'role="alert"' in bad.text
        # Registered without a branch: the repository's default, named so on the page.
        assert "(default branch)" in made.text
        # Its source changes from the page: a bad branch is refused with the reason,
        # a good one saved (and synced).
        url = file_url(source)
        for branch in ("a..b", "-x", "x" * 101):
            wrong = post(client, f"/admin/libraries/{lid.group(1)}",
                         {"repositoryUrl": url, "branch": branch})  # fmt: skip
            assert wrong.status_code in (400, 422), (branch, wrong.status_code)
            assert 'role="alert"' in wrong.text
        saved = post(client, f"/admin/libraries/{lid.group(1)}",
                     {"repositoryUrl": url, "branch": "main"})  # fmt: skip
        saved = followed(client, saved)
        assert saved.status_code == 200 and "(main)" in saved.text
        missing = post(client, "/admin/libraries/no-such-library", {"repositoryUrl": url})
        assert missing.status_code == 404
        gone = followed(client, post(client, f"/admin/libraries/{lid.group(1)}/remove"))
        assert gone.status_code == 200 and f'href="/library/{lid.group(1)}"' not in gone.text


def test_the_audit_trail_is_filtered(
    app: FastAPI, admin: TestUser, alice: TestUser, unique: Callable[[str], str]
) -> None:
    project = alice.client.post(
        "/api/v1/projects", json={"name": unique("Granskad "), "branchName": "main"}
    ).json()
    with browser(app, admin) as client:
        mine = client.get("/admin/audit", params={"project": project["id"]})
        none = client.get("/admin/audit", params={"project": project["id"], "action": "library."})
    assert mine.status_code == 200
    assert '<td title="project.create">Project created</td>' in mine.text
    assert alice.username in mine.text
    assert "No record matches." in none.text


def test_an_admin_sees_the_workspace_templates(
    app: FastAPI, ctx: AppContext, admin: TestUser
) -> None:
    # Built as a first workspace start builds it (at once when the cache has it).
    environments = ctx.providers.workspaces.environments  # type: ignore[attr-defined]
    environments.ensure(ctx.templates["python"].environment, lambda _: None)
    with browser(app, admin, "sv") as client:
        page = client.get("/admin/templates")
    assert page.status_code == 200 and "<code>python</code>" in page.text
    assert "BALSAM_WORKSPACES__TEMPLATES_FILE" in page.text and "MiB" in page.text
    # The built environment's lock, package by package, for tracing results to it.
    assert re.search(r"\d+ paket låsta</summary>", page.text)
    assert re.search(r"<li><code>jupyterlab==[0-9][^<]*</code></li>", page.text)
