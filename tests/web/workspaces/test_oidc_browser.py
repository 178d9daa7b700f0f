"""A person of the organisation, in a real browser (Debian's Chromium), never given a
Balsam password: opens a workspace's address, is sent through the identity provider's
sign-in (npm's oidc-provider) and back, works in JupyterLab; signing out of Balsam
signs out at the provider and closes the workspace to the browser."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from balsam.domain.identity.service import sha256
from tests.fixtures.app import PASSWORD
from tests.fixtures.chromium import skip_without_chromium
from tests.fixtures.oidc_app import OidcApp
from tests.fixtures.workspaces import wait_state
from tests.web.test_oidc import account
from tests.web.workspaces.test_browser import LAB, LOAD_MS, screenshot_on_failure

skip_without_chromium()


@pytest.fixture(scope="module")
def running(oidc_app: OidcApp) -> Iterator[OidcApp]:
    """The OpenID Connect app with its workspace supervisor running."""
    oidc_app.ctx.supervisor.start()
    yield oidc_app
    oidc_app.ctx.supervisor.shutdown()


@pytest.fixture(scope="module")
def person(running: OidcApp) -> Iterator[tuple[str, dict[str, Any]]]:
    """A provider account with a running workspace (made through the API with the
    provider's access token: no Balsam password anywhere)."""
    who = account(running.provider, "webb", name="Webb Användare")
    token = running.provider.user_access_token(who)
    with httpx.Client(
        base_url=running.url, headers={"Authorization": f"Bearer {token}"}, timeout=60
    ) as api:
        project = api.post(
            "/api/v1/projects",
            json={"name": f"OIDC {secrets.token_hex(3)}", "description": "", "branchName": "main"},
        )
        assert project.status_code == 201, project.text
        created = api.post(
            "/api/v1/workspaces",
            json={
                "name": "Via leverantören",
                "templateId": "python",
                "projectId": project.json()["id"],
                "branchId": "main",
            },
        )
        assert created.status_code == 201, created.text
        workspace = wait_state(SimpleNamespace(client=api), created.json()["id"], "running")  # type: ignore[arg-type]
        yield who, workspace
        api.delete(f"/api/v1/workspaces/{workspace['id']}")


def _provider_sign_in(page: Page, who: str) -> None:
    page.fill("input[name=login]", who)
    page.fill("input[name=password]", PASSWORD)
    with page.expect_navigation(timeout=LOAD_MS):
        page.click("button[type=submit]")


def test_a_workspace_opens_through_the_providers_sign_in_and_closes_at_sign_out(
    chromium: Browser,
    running: OidcApp,
    person: tuple[str, dict[str, Any]],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    who, workspace = person
    lab = f"{workspace['url']}lab"
    assert lab.startswith(running.url)  # absolute: opened from anywhere
    context = chromium.new_context()
    page = context.new_page()
    shots = tmp_path_factory.mktemp("oidc-browser")
    with screenshot_on_failure(page, shots / "failure.png"):
        page.goto(lab)
        assert page.url.startswith(f"{running.url}/login?next=")
        with page.expect_navigation():
            page.click("#oidc-login")
        assert page.url.startswith(running.provider.base_url), page.url
        _provider_sign_in(page, who)
        page.wait_for_url(lab, timeout=LOAD_MS)
        expect(page.locator(LAB)).to_be_visible(timeout=LOAD_MS)
        # The portal knows the person by the provider's name; no password was ever set.
        page.goto(f"{running.url}/")
        expect(page.get_by_text(who).first).to_be_visible()
        cookie = next(c for c in context.cookies() if c["name"] == "balsam_session")
        with running.ctx.sessions() as session:
            from balsam.db.models import LoginSession

            row = session.get(LoginSession, sha256(cookie["value"]))
            assert row is not None and row.via == "oidc"
        # Signing out: Balsam, then the provider, then back to Balsam's page.
        page.get_by_role("button", name="Log out").click()
        page.wait_for_url(f"{running.url}/logged-out", timeout=LOAD_MS)
        expect(page.get_by_role("link", name="Log in again")).to_be_visible()
        page.goto(lab)
        assert page.url.startswith(f"{running.url}/login?next="), page.url
        assert page.locator(LAB).count() == 0
        # And the provider asks again: its own session ended too.
        with page.expect_navigation():
            page.click("#oidc-login")
        expect(page.locator("input[name=password]")).to_be_visible()
    context.close()


#: Run in the kernel: GET a URL (with a Cookie header, if given), never following.
FETCH = r"""
import json, urllib.request, urllib.error
class _NoFollow(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None
def fetch(url, cookie=None):
    request = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    try:
        answer = urllib.request.build_opener(_NoFollow).open(request, timeout=20)
    except urllib.error.HTTPError as error:
        answer = error
    return {"status": answer.status, "cookies": answer.headers.get_all("Set-Cookie") or []}
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="workspaces run under their own uid only as root")
def test_a_kernel_can_neither_begin_nor_finish_a_sign_in(
    running: OidcApp, person: tuple[str, dict[str, Any]]
) -> None:
    """The workspace's owner's kernel, given everything a browser holds mid-sign-in
    (another person's code, state and pending cookie), gets no session; nor can it
    begin one, or read the provider's client secret from its environment."""
    import json

    from tests.fixtures.oidc_app import CLIENT_SECRET
    from tests.fixtures.workspaces import Kernel

    who, workspace = person
    token = running.provider.user_access_token(who)
    kernel = Kernel(running.url, workspace["id"], {"Authorization": f"Bearer {token}"})
    try:

        def run(code: str) -> Any:
            result = kernel.execute(code, timeout=60)
            assert result.error is None, result
            return json.loads(result.stdout.strip().splitlines()[-1])

        run(FETCH + "print(json.dumps(1))")
        begun = run(f"print(json.dumps(fetch({running.url + '/login/oidc'!r})))")
        assert begun["status"] == 403
        assert not any(c.startswith("balsam_session=") for c in begun["cookies"])
        # A victim's sign-in, stopped just before the browser comes back with the code.
        victim = account(running.provider, "offer")
        browser = httpx.Client(timeout=30)
        start = browser.get(f"{running.url}/login/oidc")
        pending = browser.cookies.get("balsam_session_oidc")
        callback = running.provider.sign_in(browser, start.headers["location"], victim).headers[
            "location"
        ]
        stolen = run(
            f"print(json.dumps(fetch({callback!r}, {'balsam_session_oidc=' + str(pending)!r})))"
        )
        assert stolen["status"] == 403, stolen
        assert not any(c.startswith("balsam_session=") for c in stolen["cookies"])
        # Nor read its owner's project groups without a credential, nor end sessions
        # with a made-up logout token.
        groups = run(
            f"print(json.dumps(fetch({running.url + '/api/v1/users/' + who + '/groups'!r})))"
        )
        assert groups["status"] == 401
        backchannel = running.url + "/login/oidc/backchannel-logout"
        forged = run(
            "import urllib.parse\n"
            "body = urllib.parse.urlencode({'logout_token': 'eyJ.x.y'}).encode()\n"
            f"request = urllib.request.Request({backchannel!r}, data=body)\n"
            "try:\n    status = urllib.request.urlopen(request, timeout=20).status\n"
            "except urllib.error.HTTPError as error:\n    status = error.status\n"
            "print(json.dumps(status))"
        )
        assert forged == 400
        # Nothing of the provider's configuration is in the kernel's environment.
        environment = run("import os; print(json.dumps(dict(os.environ)))")
        assert not [k for k in environment if "OIDC" in k.upper()]
        assert CLIENT_SECRET not in json.dumps(environment)
    finally:
        kernel.close()
