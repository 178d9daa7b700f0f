"""Sign-in with the organisation's identity provider, against a real, certified OpenID
Provider (npm's oidc-provider, started with node by :mod:`tests.fixtures.oidc`):
the portal's sign-in (authorization code with PKCE), the API's provider bearer tokens,
admin rights from groups, sign-out, the groups endpoint for the provider's service
account, and a client written the way upstream's UI is."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import func, select, update

from balsam.db.models import AuditEvent, ExternalIdentity, LoginSession, User
from balsam.domain.identity.schemas import UserUpdate
from balsam.domain.identity.service import Actor, IdentityService
from balsam.settings import OidcSettings
from tests.fixtures.app import PASSWORD, TestUser
from tests.fixtures.oidc import (
    DEFAULT_ACCOUNTS,
    GROUPS_CLIENT_ID,
    GROUPS_CLIENT_SECRET,
    OidcProvider,
)
from tests.fixtures.oidc_app import (
    ADMIN_GROUP,
    UI_ORIGIN,
    OidcApp,
    another_app,
)

AUDIENCE = "balsam-api"


# -- accounts at the provider ---------------------------------------------------------------

_ACCOUNTS: dict[str, dict[str, Any]] = {}


def account(
    provider: OidcProvider,
    stem: str,
    *,
    groups: list[str] | None = None,
    username: str | None = None,
    name: str = "",
) -> str:
    """A new account at the provider (id and user name unique to this test); its id."""
    account_id = f"{stem}-{secrets.token_hex(3)}"
    _ACCOUNTS[account_id] = {
        "preferred_username": username or account_id,
        "name": name or account_id.title(),
        "email": f"{account_id}@example.org",
        "groups": groups or [],
        "password": PASSWORD,
    }
    provider.set_accounts({**DEFAULT_ACCOUNTS, **_ACCOUNTS})  # others' tests use those
    return account_id


def set_groups(provider: OidcProvider, account_id: str, groups: list[str]) -> None:
    _ACCOUNTS[account_id]["groups"] = groups
    provider.set_accounts({**DEFAULT_ACCOUNTS, **_ACCOUNTS})  # others' tests use those


class _Forms(HTMLParser):
    """The first form of a page: its action and fields."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form" and self.action is None:
            self.action = values.get("action", "")
        elif tag == "input" and values.get("name"):
            self.fields[values["name"]] = values.get("value", "")


def sign_in(site: OidcApp, account_id: str, next_path: str = "/") -> httpx.Client:
    """A browser-like client signed in to ``site`` through the provider."""
    browser = httpx.Client(timeout=30)
    begun = browser.get(f"{site.url}/login/oidc", params={"next": next_path})
    assert begun.status_code == 303, begun.text
    back = site.provider.sign_in(browser, begun.headers["location"], account_id)
    assert back.headers["location"].startswith(f"{site.url}/login/oidc/callback"), back.headers
    done = browser.get(back.headers["location"])
    assert done.status_code == 303, done.text
    assert done.headers["location"] == next_path
    return browser


def me(site: OidcApp, browser: httpx.Client) -> dict[str, Any]:
    answer = browser.get(f"{site.url}/api/v1/users/me")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- the portal's sign-in -------------------------------------------------------------------


def test_a_first_sign_in_makes_a_user_without_a_password(oidc_app: OidcApp) -> None:
    who = account(oidc_app.provider, "nora", name="Nora Nilsson")
    browser = sign_in(oidc_app, who, "/projects")
    user = me(oidc_app, browser)
    assert user["username"] == who
    assert user["displayName"] == "Nora Nilsson"
    assert user["email"] == f"{who}@example.org"
    assert user["isAdmin"] is False
    with oidc_app.ctx.sessions() as session:
        row = session.scalar(select(User).where(User.username == who))
        assert row is not None and row.password_hash is None
        via = session.scalars(select(LoginSession.via).where(LoginSession.user_id == row.id))
        assert list(via) == ["oidc"]
    # The second sign-in is the same user, not a new one.
    again = sign_in(oidc_app, who)
    assert me(oidc_app, again)["username"] == who


def test_swedish_names_and_collisions_follow_the_rule(oidc_app: OidcApp, alice: TestUser) -> None:
    stem = secrets.token_hex(2)
    first = account(oidc_app.provider, "a1", username=f"Åsa.Öberg{stem}")
    second = account(oidc_app.provider, "a2", username=f"åsa.öberg{stem}")
    assert me(oidc_app, sign_in(oidc_app, first))["username"] == f"asa.oberg{stem}"
    assert me(oidc_app, sign_in(oidc_app, second))["username"] == f"asa.oberg{stem}-2"
    # A local account's name is never taken over by a provider account of that name.
    namesake = account(oidc_app.provider, "n", username=alice.username)
    assert me(oidc_app, sign_in(oidc_app, namesake))["username"] == f"{alice.username}-2"


def test_the_login_page_offers_the_provider(oidc_app: OidcApp) -> None:
    page = httpx.get(f"{oidc_app.url}/login", params={"next": "/projects"})
    assert page.status_code == 200
    assert 'href="/login/oidc?next=/projects"' in page.text
    assert 'name="password"' in page.text  # password sign-in is still on here


def test_the_callback_needs_the_browser_that_began(oidc_app: OidcApp) -> None:
    who = account(oidc_app.provider, "cb")
    browser = httpx.Client(timeout=30)
    begun = browser.get(f"{oidc_app.url}/login/oidc")
    back = oidc_app.provider.sign_in(browser, begun.headers["location"], who)
    callback = back.headers["location"]
    # Another browser (no pending cookie) cannot finish it: login CSRF, a stolen code.
    assert httpx.get(callback).status_code == 400
    # Nor with another state; the sign-in under way is not spent by that.
    forged = re.sub(r"state=[^&]+", "state=forged", callback)
    assert browser.get(forged).status_code == 400
    assert browser.get(callback).status_code == 303
    assert browser.cookies.get("balsam_session") is not None
    # A state and cookie alone, without a code the provider issued, sign nobody in.
    fresh = httpx.Client(timeout=30)
    begun = fresh.get(f"{oidc_app.url}/login/oidc")
    state = parse_qs(urlsplit(begun.headers["location"]).query)["state"][0]
    made_up = fresh.get(f"{oidc_app.url}/login/oidc/callback?code=made-up&state={state}")
    assert made_up.status_code == 401
    assert fresh.cookies.get("balsam_session") is None


def _planted(site: OidcApp, browser: httpx.Client, **changes: Any) -> str:
    """The browser's sign-in cookie, re-made with ``changes``; the state it names."""
    from balsam.web.pages.oidc import decode_pending, encode_pending, sign_in_key

    key = sign_in_key(site.ctx)
    (mine,) = decode_pending(browser.cookies["balsam_session_oidc"], key)
    changed = dataclasses.replace(mine, **changes)
    browser.cookies.set("balsam_session_oidc", encode_pending([changed], key))
    return mine.state


def test_a_planted_sign_in_cookie_finishes_nothing(oidc_app: OidcApp) -> None:
    """Someone else's sign-in, its cookie planted in this browser (a server on another
    port of the portal's host name can set it): refused, whether the cookie is Balsam's
    own (it names the address that began it) or made up (no valid signature)."""
    who = account(oidc_app.provider, "planted")
    for change in ({"address": "uid:12345"}, {"next_path": "https://evil.example/"}):
        browser = httpx.Client(timeout=30)
        begun = browser.get(f"{oidc_app.url}/login/oidc")
        back = oidc_app.provider.sign_in(browser, begun.headers["location"], who)
        if "address" in change:
            _planted(oidc_app, browser, **change)  # Balsam's, of another browser
        else:  # made up: the next page changed without the key
            value = browser.cookies["balsam_session_oidc"]
            body, _, mac = value.rpartition(".")
            rows = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            rows[0][1] = change["next_path"]
            made = base64.urlsafe_b64encode(json.dumps(rows).encode()).rstrip(b"=").decode()
            browser.cookies.set("balsam_session_oidc", f"{made}.{mac}")
        answer = browser.get(back.headers["location"])
        assert answer.status_code == 400, (change, answer.text[:200])
        assert browser.cookies.get("balsam_session") is None


def test_a_read_sign_in_cookie_finishes_nothing(oidc_app: OidcApp) -> None:
    """A server on another port of the portal's host name receives the browser's
    cookies, the sign-in's among them: knowing its state, it gets a code for its own
    account and sends the victim's browser to the callback with it. The nonce and the
    PKCE verifier are in no cookie, so the code redeems to nothing."""
    from tests.fixtures.oidc import pkce_pair, redirect_params

    victim = httpx.Client(timeout=30)
    begun = victim.get(f"{oidc_app.url}/login/oidc", params={"next": "/account"})
    cookie = victim.cookies["balsam_session_oidc"]
    sent = parse_qs(urlsplit(begun.headers["location"]).query)
    state = sent["state"][0]
    # What the cookie holds (anyone receiving it reads it): not the nonce, and nothing
    # whose S256 is the code challenge (the verifier).
    body = cookie.split(".")[0]
    fields = [f for row in json.loads(base64.urlsafe_b64decode(body + "==")) for f in row]
    assert "/account" in fields and state in fields
    for field in map(str, fields):
        assert field != sent["nonce"][0]
        digest = hashlib.sha256(field.encode()).digest()
        assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != sent["code_challenge"][0]
    mallory = account(oidc_app.provider, "mallory")
    attacker = httpx.Client(timeout=30)
    _verifier, challenge = pkce_pair()
    url = oidc_app.provider.authorize_url(
        "balsam",
        f"{oidc_app.url}/login/oidc/callback",
        state=state,
        nonce="chosen-by-the-attacker",
        code_challenge=challenge,
    )
    code = redirect_params(oidc_app.provider.sign_in(attacker, url, mallory))["code"]
    answer = victim.get(
        f"{oidc_app.url}/login/oidc/callback", params={"code": code, "state": state}
    )
    assert answer.status_code == 401, answer.text[:300]
    assert victim.cookies.get("balsam_session") is None
    # And the failed page's language switch does not carry the code on.
    assert code not in answer.text


def test_several_tabs_sign_in_at_once(oidc_app: OidcApp) -> None:
    who = account(oidc_app.provider, "tabs")
    browser = httpx.Client(timeout=30)
    starts = [browser.get(f"{oidc_app.url}/login/oidc", params={"next": f"/{n}"}) for n in "ab"]
    backs = [oidc_app.provider.sign_in(browser, s.headers["location"], who) for s in starts]
    for back, path in zip(backs, ("/a", "/b"), strict=True):
        done = browser.get(back.headers["location"])
        assert done.status_code == 303 and done.headers["location"] == path


def test_a_code_is_redeemed_once(oidc_app: OidcApp) -> None:
    who = account(oidc_app.provider, "replay")
    browser = httpx.Client(timeout=30)
    begun = browser.get(f"{oidc_app.url}/login/oidc")
    pending = browser.cookies.get("balsam_session_oidc")
    callback = oidc_app.provider.sign_in(browser, begun.headers["location"], who).headers[
        "location"
    ]
    assert browser.get(callback).status_code == 303
    replay = httpx.Client(timeout=30)
    replay.cookies.set("balsam_session_oidc", pending or "")
    assert replay.get(callback).status_code == 401


def test_the_provider_saying_no_signs_nobody_in_and_is_audited(oidc_app: OidcApp) -> None:
    browser = httpx.Client(timeout=30)
    begun = browser.get(f"{oidc_app.url}/login/oidc")
    state = parse_qs(urlsplit(begun.headers["location"]).query)["state"][0]
    refused = browser.get(
        f"{oidc_app.url}/login/oidc/callback", params={"error": "access_denied", "state": state}
    )
    assert refused.status_code == 401
    assert "did not sign you in" in refused.text
    with oidc_app.ctx.sessions() as session:
        last = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "auth.login")
            .order_by(AuditEvent.id.desc())
        ).first()
    assert last is not None and last.outcome == "failure"
    assert "access_denied" in str(last.details)


def test_group_rules_grant_and_take_away_admin_rights(oidc_app: OidcApp) -> None:
    who = account(oidc_app.provider, "boss", groups=[ADMIN_GROUP])
    assert me(oidc_app, sign_in(oidc_app, who))["isAdmin"] is True
    set_groups(oidc_app.provider, who, ["staff"])
    assert me(oidc_app, sign_in(oidc_app, who))["isAdmin"] is False
    # Also from an access token that carries the claim.
    set_groups(oidc_app.provider, who, [ADMIN_GROUP])
    token = oidc_app.provider.user_access_token(who)
    answer = httpx.get(f"{oidc_app.url}/api/v1/users/me", headers=bearer(token))
    assert answer.json()["isAdmin"] is True


def test_a_project_group_never_makes_an_admin(oidc_app: OidcApp) -> None:
    with pytest.raises(ValueError, match="project's group"):
        OidcSettings(issuer="https://idp.example.org", client_id="b", admin_groups=["balsam-grp_x"])
    who = account(oidc_app.provider, "sneaky", groups=["balsam-grp_" + ADMIN_GROUP])
    assert me(oidc_app, sign_in(oidc_app, who))["isAdmin"] is False


def test_a_deactivated_user_cannot_sign_in(oidc_app: OidcApp, admin: TestUser) -> None:
    who = account(oidc_app.provider, "gone")
    me(oidc_app, sign_in(oidc_app, who))
    actor = Actor(user_id=0, username=admin.username, is_admin=True)
    IdentityService(oidc_app.ctx).update_user(actor, who, UserUpdate(isActive=False))
    browser = httpx.Client(timeout=30)
    begun = browser.get(f"{oidc_app.url}/login/oidc")
    back = oidc_app.provider.sign_in(browser, begun.headers["location"], who)
    assert browser.get(back.headers["location"]).status_code == 403
    token = oidc_app.provider.user_access_token(who)
    assert httpx.get(f"{oidc_app.url}/api/v1/users/me", headers=bearer(token)).status_code == 401


# -- signing out ------------------------------------------------------------------------------


def _follow_logout(browser: httpx.Client, url: str) -> httpx.Response:
    """Follow the provider's sign-out (its confirmation form posts itself in a
    browser) to where it sends the browser back."""
    answer = browser.get(url)
    provider = urlsplit(url).netloc
    for _ in range(5):
        if urlsplit(str(answer.url)).netloc != provider:
            return answer  # back at Balsam
        if answer.status_code in (302, 303):
            answer = browser.get(httpx.URL(str(answer.url)).join(answer.headers["location"]))
            continue
        form = _Forms()
        form.feed(answer.text)
        if form.action is None:
            return answer
        action = httpx.URL(str(answer.url)).join(form.action)
        answer = browser.post(action, data=form.fields)
    return answer


def test_signing_out_ends_the_session_here_and_at_the_provider(oidc_app: OidcApp) -> None:
    who = account(oidc_app.provider, "bye")
    browser = sign_in(oidc_app, who)
    page = browser.get(f"{oidc_app.url}/")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf, page.text[:500]
    out = browser.post(
        f"{oidc_app.url}/logout", data={"csrf": csrf.group(1)}, headers={"Origin": oidc_app.url}
    )
    assert out.status_code == 303
    target = out.headers["location"]
    assert target.startswith(oidc_app.provider.issuer), target
    assert f"post_logout_redirect_uri={oidc_app.url}" in target.replace("%3A", ":").replace(
        "%2F", "/"
    )
    assert browser.get(f"{oidc_app.url}/api/v1/users/me").status_code == 401
    landed = _follow_logout(browser, target)
    assert str(landed.url) == f"{oidc_app.url}/logged-out", landed.text[:300]
    assert landed.status_code == 200
    # The provider's session is gone too: signing in again asks for the password.
    again = browser.get(f"{oidc_app.url}/login/oidc", follow_redirects=False)
    asked = browser.get(again.headers["location"], follow_redirects=True)
    assert 'name="password"' in asked.text


# -- provider tokens for the API -----------------------------------------------------------


def test_the_providers_access_token_works_for_the_api(oidc_app: OidcApp) -> None:
    who = account(oidc_app.provider, "api")
    signed_in = me(oidc_app, sign_in(oidc_app, who))
    token = oidc_app.provider.user_access_token(who)
    with httpx.Client(base_url=oidc_app.url, headers=bearer(token), timeout=30) as api:
        assert api.get("/api/v1/users/me").json()["username"] == signed_in["username"]
        created = api.post(
            "/api/v1/projects",
            json={"name": f"OIDC {who}", "description": "", "branchName": "main"},
        )
        assert created.status_code == 201, created.text
        listed = api.get("/api/v1/projects").json()
        assert created.json()["id"] in [p["id"] for p in listed["projects"]]


def test_a_first_api_call_makes_the_user_too(oidc_app: OidcApp) -> None:
    who = account(oidc_app.provider, "tokenfirst")
    token = oidc_app.provider.user_access_token(who)
    answer = httpx.get(f"{oidc_app.url}/api/v1/users/me", headers=bearer(token))
    assert answer.status_code == 200 and answer.json()["username"] == who
    assert me(oidc_app, sign_in(oidc_app, who))["username"] == who


def _claims(provider: OidcProvider, who: str, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": provider.issuer,
        "sub": who,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 300,
        "preferred_username": who,
        "azp": "api-client",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.fixture
def known(oidc_app: OidcApp) -> str:
    """An account that has signed in once."""
    who = account(oidc_app.provider, "forge")
    me(oidc_app, sign_in(oidc_app, who))
    return who


def _status(site: OidcApp, token: str) -> int:
    return httpx.get(f"{site.url}/api/v1/users/me", headers=bearer(token)).status_code


def test_a_token_signed_with_the_providers_key_and_right_claims_passes(
    oidc_app: OidcApp, known: str
) -> None:
    # The forgeries below fail for their one wrong part, not for being made here.
    assert _status(oidc_app, oidc_app.provider.sign(_claims(oidc_app.provider, known))) == 200


#: One wrong part each; times relative to when the test runs (not when it was collected).
WRONG_PARTS: dict[str, dict[str, Any]] = {
    "issuer": {"iss": "http://127.0.0.1:1/realms/other"},
    "audience": {"aud": "another-api"},
    "no-audience": {"aud": None},
    "expired": {"exp": -120},
    "no-expiry": {"exp": None},
    "not-yet": {"nbf": 600},
    "id": {"typ": "ID"},
    "refresh": {"typ": "Refresh"},
}


@pytest.mark.parametrize("part", list(WRONG_PARTS))
def test_tokens_with_a_wrong_part_get_401(oidc_app: OidcApp, known: str, part: str) -> None:
    now = int(time.time())
    change = {
        k: now + v if k in ("exp", "nbf") and isinstance(v, int) else v
        for k, v in WRONG_PARTS[part].items()
    }
    token = oidc_app.provider.sign(_claims(oidc_app.provider, known, **change))
    assert _status(oidc_app, token) == 401


def test_a_token_signed_by_a_stranger_gets_401(oidc_app: OidcApp, known: str) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = oidc_app.provider.keys[0].kid
    token = oidc_app.provider.sign(_claims(oidc_app.provider, known), key=stranger, kid=kid)
    answer = httpx.get(f"{oidc_app.url}/api/v1/users/me", headers=bearer(token))
    assert answer.status_code == 401
    assert "bad signature" in answer.json()["detail"]
    other_kid = oidc_app.provider.sign(_claims(oidc_app.provider, known), key=stranger, kid="x1")
    assert _status(oidc_app, other_kid) == 401


def test_unsigned_and_hmac_tokens_get_401(oidc_app: OidcApp, known: str) -> None:
    claims = _claims(oidc_app.provider, known)
    unsigned = jwt.encode(claims, key=None, algorithm="none")  # type: ignore[arg-type]
    assert _status(oidc_app, unsigned) == 401
    # "Algorithm confusion": HS256 keyed with the provider's public key.
    public = oidc_app.provider.keys[0].public_key
    from cryptography.hazmat.primitives import serialization

    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"kid": oidc_app.provider.keys[0].kid}
    hmac_token = _hs256(claims, pem, header)
    assert _status(oidc_app, hmac_token) == 401


def _hs256(claims: dict[str, Any], key: bytes, header: dict[str, str]) -> str:
    """An HS256 token keyed with ``key`` (PyJWT refuses PEM keys for HMAC: sign by hand)."""
    import base64
    import hashlib
    import hmac
    import json

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = part(json.dumps({"alg": "HS256", "typ": "JWT", **header}).encode())
    body = part(json.dumps(claims).encode())
    mac = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{part(mac)}"


def test_the_id_token_is_no_api_token(oidc_app: OidcApp) -> None:
    who = account(oidc_app.provider, "idtok")
    tokens = oidc_app.provider.user_tokens(who)
    assert _status(oidc_app, tokens["id_token"]) == 401
    assert _status(oidc_app, tokens["access_token"]) == 200


def test_keys_rotate(oidc_app: OidcApp, known: str) -> None:
    provider = oidc_app.provider
    identity = oidc_app.ctx.providers.identity
    assert identity is not None
    old = provider.sign(_claims(provider, known))
    assert _status(oidc_app, old) == 200
    provider.rotate_keys(keep_old=False)
    identity.refresh_seconds = 0.2  # type: ignore[attr-defined]
    time.sleep(0.3)
    try:
        # A token of the new key makes Balsam fetch the keys again; the old key,
        # no longer published, stops counting.
        assert _status(oidc_app, provider.user_access_token(known)) == 200
        assert _status(oidc_app, old) == 401
    finally:
        identity.refresh_seconds = 10.0  # type: ignore[attr-defined]


def test_personal_tokens_keep_working(oidc_app: OidcApp, alice: TestUser) -> None:
    answer = httpx.get(f"{oidc_app.url}/api/v1/users/me", headers=alice.headers)
    assert answer.status_code == 200 and answer.json()["username"] == alice.username


# -- project groups for the provider ---------------------------------------------------------


@pytest.fixture
def member_project(oidc_app: OidcApp) -> Iterator[tuple[str, dict[str, Any]]]:
    who = account(oidc_app.provider, "grp")
    token = oidc_app.provider.user_access_token(who)
    created = httpx.post(
        f"{oidc_app.url}/api/v1/projects",
        headers=bearer(token),
        json={"name": f"Grupper {who}", "description": "", "branchName": "main"},
    )
    assert created.status_code == 201, created.text
    yield who, created.json()


def test_the_service_account_reads_a_users_project_groups(
    oidc_app: OidcApp, member_project: tuple[str, dict[str, Any]], alice: TestUser
) -> None:
    who, project = member_project
    service = oidc_app.provider.client_credentials_token(GROUPS_CLIENT_ID, GROUPS_CLIENT_SECRET)
    url = f"{oidc_app.url}/api/v1/users/{who}/groups"
    answer = httpx.get(url, headers=bearer(service))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"groups": [project["authGroup"]]}
    assert httpx.get(url).status_code == 401
    # Other users may not; the user themself may.
    assert httpx.get(url, headers=alice.headers).status_code == 403
    own = oidc_app.provider.user_access_token(who)
    assert httpx.get(url, headers=bearer(own)).json()["groups"] == [project["authGroup"]]
    # A person Balsam has not met yet (the provider asks at their first sign-in): none.
    unknown = f"{oidc_app.url}/api/v1/users/nobody-{who}/groups"
    assert httpx.get(unknown, headers=bearer(service)).json() == {"groups": []}
    assert httpx.get(unknown, headers=alice.headers).status_code == 403


def test_another_clients_service_token_reads_no_groups(
    oidc_app: OidcApp, member_project: tuple[str, dict[str, Any]]
) -> None:
    who, _project = member_project
    other = oidc_app.provider.sign(
        _claims(oidc_app.provider, "svc", sub=None, preferred_username=None, azp=None)
        | {"client_id": "someone-else"}
    )
    answer = httpx.get(f"{oidc_app.url}/api/v1/users/{who}/groups", headers=bearer(other))
    assert answer.status_code in (401, 403)


def test_the_provider_puts_project_groups_into_its_tokens(
    oidc_app: OidcApp, member_project: tuple[str, dict[str, Any]]
) -> None:
    who, project = member_project
    provider = oidc_app.provider
    provider.set_groups_url(
        f"{oidc_app.url}/api/v1/users/{{username}}/groups", GROUPS_CLIENT_ID, GROUPS_CLIENT_SECRET
    )
    try:
        token = provider.user_access_token(who)
    finally:
        provider.set_groups_url(None)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert project["authGroup"] in claims["groups"]


def test_a_groups_claim_grants_no_project(
    oidc_app: OidcApp, member_project: tuple[str, dict[str, Any]], known: str
) -> None:
    _who, project = member_project
    claims = _claims(oidc_app.provider, known, groups=[project["authGroup"]])
    token = oidc_app.provider.sign(claims)
    answer = httpx.get(f"{oidc_app.url}/api/v1/projects/{project['id']}", headers=bearer(token))
    assert answer.status_code == 404


# -- a client like upstream's UI: another origin, the provider's token --------------------


def test_a_client_on_another_origin_creates_a_project_a_branch_and_a_workspace(
    oidc_app: OidcApp,
) -> None:
    who = account(oidc_app.provider, "ui")
    token = oidc_app.provider.user_access_token(who)
    headers = {"Origin": UI_ORIGIN, **bearer(token)}

    def preflight(path: str, method: str) -> None:
        answer = httpx.options(
            f"{oidc_app.url}{path}",
            headers={
                "Origin": UI_ORIGIN,
                "Access-Control-Request-Method": method,
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
        assert answer.status_code == 204, answer.text
        assert answer.headers["access-control-allow-origin"] == UI_ORIGIN

    with httpx.Client(base_url=oidc_app.url, headers=headers, timeout=30) as ui:
        preflight("/api/v1/projects", "POST")
        project = ui.post(
            "/api/v1/projects",
            json={"name": f"Från UI {who}", "description": "", "branchName": "main"},
        )
        assert project.status_code == 201, project.text
        assert project.headers["access-control-allow-origin"] == UI_ORIGIN
        pid = project.json()["id"]
        preflight(f"/api/v1/projects/{pid}/branches", "POST")
        branch = ui.post(f"/api/v1/projects/{pid}/branches", json={"name": "analys"})
        assert branch.status_code == 201, branch.text
        preflight("/api/v1/workspaces", "POST")
        workspace = ui.post(
            "/api/v1/workspaces",
            json={"name": "ui", "templateId": "python", "projectId": pid, "branchId": "main"},
        )
        assert workspace.status_code == 201, workspace.text
        assert workspace.json()["url"] == f"{oidc_app.url}/workspaces/{workspace.json()['id']}/"
        assert workspace.json()["owner"] == who
        assert ui.delete(f"/api/v1/workspaces/{workspace.json()['id']}").status_code in (
            200,
            202,
            204,
        )
    # Another origin's preflight is refused.
    refused = httpx.options(
        f"{oidc_app.url}/api/v1/projects",
        headers={"Origin": "http://127.0.0.1:6666", "Access-Control-Request-Method": "POST"},
    )
    assert refused.status_code == 403
    assert "access-control-allow-origin" not in refused.headers


# -- password sign-in turned off -------------------------------------------------------------


@pytest.fixture(scope="module")
def provider_only(oidc_app: OidcApp) -> Iterator[OidcApp]:
    """An app where only the provider signs people in."""
    with another_app(oidc_app, "balsam-only", password_login=False) as site:
        yield site


def test_without_password_sign_in_only_the_provider_signs_in(
    provider_only: OidcApp, alice: TestUser
) -> None:
    url = provider_only.url
    login = httpx.get(f"{url}/login", params={"next": "/projects"})
    assert login.status_code == 303
    assert login.headers["location"] == "/login/oidc?next=/projects"
    form = httpx.post(
        f"{url}/login",
        data={"username": alice.username, "password": PASSWORD},
        headers={"Origin": url},
    )
    assert form.status_code == 403
    assert form.cookies.get("balsam_session") is None
    basic = httpx.post(
        f"{url}/api/v1/users/me/tokens", auth=(alice.username, PASSWORD), json={"name": "x"}
    )
    assert basic.status_code == 401, basic.text
    # Personal tokens keep working; the provider's sign-in works.
    assert httpx.get(f"{url}/api/v1/users/me", headers=alice.headers).status_code == 200
    who = account(provider_only.provider, "only")
    assert me(provider_only, sign_in(provider_only, who))["username"] == who


def test_git_refuses_passwords_when_they_are_off(
    provider_only: OidcApp, alice: TestUser, project: dict[str, Any]
) -> None:
    refs = f"{urlsplit(project['gitUrl']).path}/info/refs?service=git-upload-pack"
    assert (
        httpx.get(f"{provider_only.url}{refs}", auth=(alice.username, PASSWORD)).status_code == 401
    )
    # The same request with a personal token is served.
    token = alice.headers["Authorization"].split()[1]
    assert httpx.get(f"{provider_only.url}{refs}", auth=(alice.username, token)).status_code == 200


# -- signing out elsewhere: the provider's back-channel logout ----------------------------


def test_signing_out_at_the_provider_ends_the_balsam_session(oidc_app: OidcApp) -> None:
    """A person signs out at the provider (from another application): the provider
    tells Balsam over the back channel, and the Balsam session begun through it ends."""
    who = account(oidc_app.provider, "single")
    browser = sign_in(oidc_app, who)
    assert browser.get(f"{oidc_app.url}/api/v1/users/me").status_code == 200
    other = sign_in(oidc_app, account(oidc_app.provider, "bystander"))
    # The provider's own sign-out page, in the same browser (its session cookie).
    ended = browser.get(
        f"{oidc_app.provider.end_session_endpoint}?client_id=api-client", follow_redirects=True
    )
    form = _Forms()
    form.feed(ended.text)
    if form.action is not None:  # its confirmation posts itself in a browser
        browser.post(httpx.URL(str(ended.url)).join(form.action), data=form.fields)
    told = browser.get(f"{oidc_app.url}/api/v1/users/me").status_code
    assert told == 401, oidc_app.provider.logs()[-1500:]
    assert other.get(f"{oidc_app.url}/api/v1/users/me").status_code == 200
    with oidc_app.ctx.sessions() as session:
        logged = session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "auth.logout", AuditEvent.target == f"user:{who}"
            )
        ).all()
    assert logged and logged[-1].actor == "identity-provider"


def test_a_forged_logout_token_ends_nothing(oidc_app: OidcApp) -> None:
    who = account(oidc_app.provider, "stays")
    browser = sign_in(oidc_app, who)
    provider = oidc_app.provider
    now = int(time.time())
    claims = {
        "iss": provider.issuer,
        "aud": "balsam",
        "iat": now,
        "exp": now + 120,
        "jti": secrets.token_hex(8),
        "sub": who,
        "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
    }
    url = f"{oidc_app.url}/login/oidc/backchannel-logout"
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = [
        provider.sign(claims, key=stranger, kid=provider.keys[0].kid, typ="logout+jwt"),
        provider.sign(claims | {"aud": "another-client"}, typ="logout+jwt"),
        provider.sign({k: v for k, v in claims.items() if k != "events"}, typ="logout+jwt"),
        provider.sign(claims | {"nonce": "n"}, typ="logout+jwt"),
        provider.sign({k: v for k, v in claims.items() if k != "exp"}, typ="logout+jwt"),
        provider.sign(claims | {"iat": now - 3600}, typ="logout+jwt"),  # old
        provider.sign(claims | {"aud": ["balsam", "other"]}, typ="logout+jwt"),  # no azp
        "not-a-token",
    ]
    for token in forged:
        answer = httpx.post(url, data={"logout_token": token})
        assert answer.status_code == 400, answer.text
    assert browser.get(f"{oidc_app.url}/api/v1/users/me").status_code == 200
    # The genuine article (signed by the provider, for Balsam) does end it.
    genuine = provider.sign(claims, typ="logout+jwt")
    assert httpx.post(url, data={"logout_token": genuine}).status_code == 200
    assert browser.get(f"{oidc_app.url}/api/v1/users/me").status_code == 401
    # Used once: the same token replayed does not end the next session.
    again = sign_in(oidc_app, who)
    assert httpx.post(url, data={"logout_token": genuine}).status_code == 400
    assert again.get(f"{oidc_app.url}/api/v1/users/me").status_code == 200


# -- project roles from groups ---------------------------------------------------------------


@pytest.fixture
def ruled(
    oidc_app: OidcApp, alice: TestUser
) -> Iterator[tuple[OidcApp, dict[str, Any], dict[str, Any]]]:
    """An app whose rules make group 'team-lfs' members of one of alice's projects and
    'lfs-leads' owners of it; a rule for a project that does not exist too."""
    projects = []
    for name in ("Regler", "Manuellt"):
        created = alice.client.post(
            "/api/v1/projects",
            json={
                "name": f"{name} {secrets.token_hex(3)}",
                "description": "",
                "branchName": "main",
            },
        )
        assert created.status_code == 201, created.text
        projects.append(created.json())
    rules = [
        {"group": "team-lfs", "project": projects[0]["id"], "role": "member"},
        {"group": "lfs-leads", "project": projects[0]["id"], "role": "owner"},
        {"group": "team-lfs", "project": "no-such-project"},
    ]
    with another_app(oidc_app, "balsam-rules", project_roles=rules) as site:
        yield site, *projects


def _role(site: OidcApp, project: dict[str, Any], owner: TestUser, who: str) -> str | None:
    members = owner.client.get(f"/api/v1/projects/{project['id']}/members").json()
    listed = members if isinstance(members, list) else members["members"]
    return next((m["role"] for m in listed if m["username"] == who), None)


def test_group_rules_give_and_take_project_roles(
    ruled: tuple[OidcApp, dict[str, Any], dict[str, Any]], alice: TestUser
) -> None:
    site, project, manual = ruled
    who = account(site.provider, "lfs", groups=["team-lfs"])
    sign_in(site, who)
    assert _role(site, project, alice, who) == "member"
    # A membership a person made is not the rules' to change.
    added = alice.client.post(
        f"/api/v1/projects/{manual['id']}/members", json={"username": who, "role": "member"}
    )
    assert added.status_code == 201, added.text
    set_groups(site.provider, who, ["team-lfs", "lfs-leads"])
    sign_in(site, who)
    assert _role(site, project, alice, who) == "owner"
    stale = site.provider.sign(_claims(site.provider, who, groups=["team-lfs", "lfs-leads"]))
    set_groups(site.provider, who, ["staff"])
    sign_in(site, who)
    assert _role(site, project, alice, who) is None
    assert _role(site, manual, alice, who) == "member"
    # A token from before, still valid, used a minute later: it gives nothing back.
    with site.ctx.sessions() as session, session.begin():
        session.execute(
            update(ExternalIdentity)
            .where(ExternalIdentity.subject == who)
            .values(last_seen_at=datetime.now(UTC) - timedelta(minutes=2))
        )
    assert httpx.get(f"{site.url}/api/v1/users/me", headers=bearer(stale)).status_code == 200
    assert _role(site, project, alice, who) is None
    with site.ctx.sessions() as session:
        actions = [
            (e.action, e.actor)
            for e in session.scalars(
                select(AuditEvent).where(AuditEvent.project_id == project["id"])
            )
            if e.target.endswith(who)
        ]
    assert ("member.add", "identity-provider") in actions
    assert ("member.remove", "identity-provider") in actions


def test_a_rule_cannot_name_a_project_group() -> None:
    with pytest.raises(ValueError, match="project's group"):
        OidcSettings(
            issuer="https://idp.example.org",
            client_id="b",
            project_roles=[{"group": "balsam-grp_x", "project": "p"}],  # type: ignore[list-item]
        )


def test_a_client_credentials_token_is_no_user(oidc_app: OidcApp) -> None:
    service = oidc_app.provider.client_credentials_token(GROUPS_CLIENT_ID, GROUPS_CLIENT_SECRET)
    with oidc_app.ctx.sessions() as session:
        before = session.scalar(select(func.count()).select_from(User))
    for path in ("/api/v1/users/me", "/api/v1/projects"):
        answer = httpx.get(f"{oidc_app.url}{path}", headers=bearer(service))
        assert answer.status_code == 401, answer.text
    created = httpx.post(
        f"{oidc_app.url}/api/v1/projects",
        headers=bearer(service),
        json={"name": "Tjänstekonto", "description": "", "branchName": "main"},
    )
    assert created.status_code == 401
    # Keycloak's service accounts are users named service-account-<client> there.
    keycloak_like = oidc_app.provider.sign(
        _claims(oidc_app.provider, "3f1c", preferred_username="service-account-reports")
    )
    assert _status(oidc_app, keycloak_like) == 401
    with oidc_app.ctx.sessions() as session:
        assert session.scalar(select(func.count()).select_from(User)) == before


def test_the_provider_asks_for_groups_with_its_own_user_name(oidc_app: OidcApp) -> None:
    """The provider knows its accounts by its own names: Balsam answers for the account
    of that name (whatever Balsam called its user), and for a name two of its accounts
    claim, or Balsam's name of another account, nothing."""
    stem = secrets.token_hex(2)
    provider_name = f"Åsa.Lind{stem}"
    who = account(oidc_app.provider, "lind", username=provider_name)
    token = oidc_app.provider.user_access_token(who)
    created = httpx.post(
        f"{oidc_app.url}/api/v1/projects",
        headers=bearer(token),
        json={"name": f"Lind {stem}", "description": "", "branchName": "main"},
    )
    assert created.status_code == 201, created.text
    service = bearer(
        oidc_app.provider.client_credentials_token(GROUPS_CLIENT_ID, GROUPS_CLIENT_SECRET)
    )

    def groups(name: str) -> list[str]:
        answer = httpx.get(f"{oidc_app.url}/api/v1/users/{name}/groups", headers=service)
        assert answer.status_code == 200, answer.text
        found: list[str] = answer.json()["groups"]
        return found

    assert groups(provider_name) == [created.json()["authGroup"]]
    assert groups(f"asa.lind{stem}") == []  # Balsam's name: no account of the provider's
    # Another account claiming the same name (the provider let it): whose? Nobody's.
    twin = account(oidc_app.provider, "twin", username=provider_name)
    assert me(oidc_app, sign_in(oidc_app, twin))["username"] == f"asa.lind{stem}-2"
    assert groups(provider_name) == []


def test_listed_clients_still_let_the_service_account_read_groups(oidc_app: OidcApp) -> None:
    who = account(oidc_app.provider, "parties")
    with another_app(oidc_app, "balsam-parties", authorized_parties=["api-client"]) as site:
        url = site.url
        token = oidc_app.provider.user_access_token(who)  # issued to api-client
        assert httpx.get(f"{url}/api/v1/users/me", headers=bearer(token)).status_code == 200
        other = oidc_app.provider.sign(_claims(oidc_app.provider, who, azp="someone-else"))
        assert httpx.get(f"{url}/api/v1/users/me", headers=bearer(other)).status_code == 401
        service = oidc_app.provider.client_credentials_token(GROUPS_CLIENT_ID, GROUPS_CLIENT_SECRET)
        answer = httpx.get(f"{url}/api/v1/users/{who}/groups", headers=bearer(service))
        assert answer.status_code == 200, answer.text


# -- bad input: problem+json or the login page, never a 500 -------------------------------


def test_bad_input_to_the_new_endpoints_gets_no_500(oidc_app: OidcApp, alice: TestUser) -> None:
    url = oidc_app.url
    for name in ("x" * 65, "a%00b"):
        answer = httpx.get(f"{url}/api/v1/users/{name}/groups", headers=alice.headers)
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
    huge = httpx.get(f"{url}/login/oidc/callback", params={"code": "c" * 5000, "state": "s"})
    assert huge.status_code == 422, huge.text[:200]
    odd = httpx.get(f"{url}/login/oidc/callback", params={"code": "\x00", "state": "\u2603"})
    assert odd.status_code in (400, 422), odd.text[:200]
    begun = httpx.get(f"{url}/login/oidc", params={"next": "/" + "x" * 5000})
    assert begun.status_code in (303, 422)
    for body in (b"logout_token=%ff%fe", b"\x00" * 10, b"logout_token=" + b"a" * 20_000):
        answer = httpx.post(
            f"{url}/login/oidc/backchannel-logout",
            content=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert 400 <= answer.status_code < 500, answer.text[:200]
