"""My account: name, password and personal API tokens from the portal's forms."""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi import FastAPI

from balsam.context import AppContext
from balsam.domain.identity.service import IdentityService
from tests.fixtures.app import PASSWORD, TestUser
from tests.web.pages.browsing import browser, followed, post


def test_a_token_is_shown_once_works_and_is_revoked(
    app: FastAPI, make_user: Callable[..., TestUser]
) -> None:
    user = make_user("tokens")
    with browser(app, user, "sv") as client:
        page = client.get("/account")
        assert page.status_code == 200 and "Mitt konto" in page.text
        made = post(client, "/account/tokens", {"name": "skript", "days": "7"})
        assert made.status_code == 201, made.text
        token = re.search(r'<code id="new-token">([^<]+)</code>', made.text)
        assert token is not None and "visas bara nu" in made.text
        listed = client.get("/account")
        assert "skript" in listed.text and token.group(1) not in listed.text
        bearer = {"Authorization": f"Bearer {token.group(1)}"}
        with browser(app) as script:  # no cookie: the token alone
            assert script.get("/api/v1/users/me", headers=bearer).status_code == 200
        token_id = re.search(
            r'<td>skript</td>.*?action="/account/tokens/([^/]+)/revoke"', listed.text, re.DOTALL
        )
        assert token_id is not None
        assert post(client, f"/account/tokens/{token_id.group(1)}/revoke").status_code == 303
        with browser(app) as script:
            assert script.get("/api/v1/users/me", headers=bearer).status_code == 401


def test_the_password_is_changed_only_with_the_current_one(
    app: FastAPI, ctx: AppContext, make_user: Callable[..., TestUser]
) -> None:
    user = make_user("konto")
    new = "Ett-helt-nytt-lösenord-42"
    with browser(app, user) as client:
        wrong = post(client, "/account/password", {"current": "fel", "new": new, "repeat": new})
        assert wrong.status_code == 401 and "The current password is wrong." in wrong.text
        differ = post(client, "/account/password",
                      {"current": PASSWORD, "new": new, "repeat": new + "x"})  # fmt: skip
        assert differ.status_code == 422
        weak = post(client, "/account/password", {"current": PASSWORD, "new": "a", "repeat": "a"})
        assert weak.status_code == 422
        done = post(client, "/account/password", {"current": PASSWORD, "new": new, "repeat": new})
        done = followed(client, done)
        assert done.status_code == 200 and "Your password is changed." in done.text
        assert client.get("/account").status_code == 200  # this session goes on
    IdentityService(ctx).login_password(user.username, new, address="test")


def test_the_display_name_is_saved_escaped(app: FastAPI, alice: TestUser) -> None:
    with browser(app, alice) as client:
        saved = followed(client, post(client, "/account/profile", {"displayName": "<b>Alice</b>"}))
        assert saved.status_code == 200 and "&lt;b&gt;Alice&lt;/b&gt;" in saved.text
    assert alice.client.get("/api/v1/users/me").json()["displayName"] == "<b>Alice</b>"
