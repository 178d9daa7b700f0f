"""The OpenID Provider harness (tests/fixtures/oidc.py) works: Keycloak's layout, JWT
access tokens that verify with the published keys, sign-in, client credentials, logout,
key rotation, account changes, groups from a groups URL, and Keycloak's ways for
keycloak-js clients (no PKCE, JWT-shaped refresh tokens, redirects under an origin)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest

from tests.fixtures.oidc import (
    API_CLIENT_ID,
    API_CLIENT_REDIRECT_URI,
    AUDIENCE,
    GROUPS_CLIENT_ID,
    OidcProvider,
    ProviderStartError,
    generate_signing_key,
    keycloak_js_client,
    pkce_pair,
    redirect_params,
    refresh_token_claims,
    running_oidc_provider,
)

WEB_CLIENT = {
    "client_id": "harness-web",
    "client_secret": "harness-web-secret",
    "token_endpoint_auth_method": "client_secret_basic",
    "redirect_uris": ["http://127.0.0.1:2/callback"],
    "grant_types": ["authorization_code"],
    "response_types": ["code"],
}
POST_CLIENT = {
    "client_id": "harness-post",
    "client_secret": "harness-post-secret",
    "token_endpoint_auth_method": "client_secret_post",
    "grant_types": ["client_credentials"],
    "redirect_uris": [],
    "response_types": [],
}
UI_ORIGIN = "http://127.0.0.1:3"
UI_CLIENT = keycloak_js_client("harness-ui", [UI_ORIGIN])


def verify(provider: OidcProvider, token: str, audience: str = AUDIENCE) -> dict[str, Any]:
    """The token's claims once it verifies with the provider's published JWKS."""
    key = jwt.PyJWKClient(provider.jwks_url, cache_jwk_set=False).get_signing_key_from_jwt(token)
    claims: dict[str, Any] = jwt.decode(
        token, key.key, algorithms=["RS256"], audience=audience, issuer=provider.issuer
    )
    return claims


@pytest.fixture(scope="module")
def own_provider() -> Iterator[OidcProvider]:
    """A provider of this module's own, for the tests that change it."""
    with running_oidc_provider([WEB_CLIENT, POST_CLIENT, UI_CLIENT]) as provider:
        yield provider


def test_discovery_has_keycloak_layout(oidc_provider: OidcProvider) -> None:
    assert oidc_provider.issuer == f"http://127.0.0.1:{oidc_provider.port}/realms/balsam"
    discovery = httpx.get(oidc_provider.discovery_url).json()
    oidc = f"{oidc_provider.issuer}/protocol/openid-connect"
    assert discovery["issuer"] == oidc_provider.issuer
    assert discovery["authorization_endpoint"] == f"{oidc}/auth"
    assert discovery["token_endpoint"] == f"{oidc}/token"
    assert discovery["userinfo_endpoint"] == f"{oidc}/userinfo"
    assert discovery["jwks_uri"] == f"{oidc}/certs"
    assert discovery["end_session_endpoint"] == f"{oidc}/logout"
    assert discovery["introspection_endpoint"].startswith(oidc)
    assert discovery["revocation_endpoint"].startswith(oidc)
    assert {"openid", "profile", "email", "groups"} <= set(discovery["scopes_supported"])
    for page in ("login-status-iframe.html", "3p-cookies/step1.html", "3p-cookies/step2.html"):
        response = httpx.get(f"{oidc}/{page}")
        assert response.status_code == 200
        assert "<script>" in response.text
    assert "postMessage" in httpx.get(f"{oidc}/3p-cookies/step2.html").text


def test_user_access_token_is_a_verified_jwt(oidc_provider: OidcProvider) -> None:
    token = oidc_provider.user_access_token("anna")
    assert jwt.get_unverified_header(token)["kid"] == oidc_provider.keys[0].kid
    claims = verify(oidc_provider, token)
    assert claims["aud"] == AUDIENCE
    assert claims["sub"] == "anna"
    assert claims["preferred_username"] == "anna"
    assert claims["groups"] == ["balsam-admins"]
    assert claims["azp"] == claims["client_id"] == API_CLIENT_ID


def test_id_token_and_userinfo_carry_the_profile(oidc_provider: OidcProvider) -> None:
    tokens = oidc_provider.user_tokens("åsa.öberg")
    id_claims = verify(oidc_provider, tokens["id_token"], audience=API_CLIENT_ID)
    assert id_claims["sub"] == "asa"
    assert id_claims["preferred_username"] == "åsa.öberg"
    assert id_claims["name"] == "Åsa Öberg"
    assert id_claims["email"] == "asa.oberg@example.org"
    assert id_claims["groups"] == ["researchers"]
    userinfo = httpx.get(
        oidc_provider.userinfo_endpoint,
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )
    assert userinfo.status_code == 200
    assert userinfo.json()["preferred_username"] == "åsa.öberg"


def test_keycloak_js_compatibility(oidc_provider: OidcProvider) -> None:
    """What keycloak-js 18 needs beyond the standard: no ``iss`` in the callback, the
    nonce in the access token, CORS with credentials at the token endpoint."""
    verifier, challenge = pkce_pair()
    url = oidc_provider.authorize_url(
        API_CLIENT_ID, API_CLIENT_REDIRECT_URI, state="s", nonce="n-1", code_challenge=challenge
    )
    with httpx.Client() as http:
        params = redirect_params(oidc_provider.sign_in(http, url, "anna"))
        assert set(params) == {"code", "state"}
        response = http.post(
            oidc_provider.token_endpoint,
            data={
                "grant_type": "authorization_code",
                "code": params["code"],
                "redirect_uri": API_CLIENT_REDIRECT_URI,
                "client_id": API_CLIENT_ID,
                "code_verifier": verifier,
            },
            headers={"Origin": "http://127.0.0.1:1"},
        )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "http://127.0.0.1:1"
    assert response.headers["access-control-allow-credentials"] == "true"
    assert verify(oidc_provider, response.json()["access_token"])["nonce"] == "n-1"


def test_wrong_password_shows_the_form_again_with_401(oidc_provider: OidcProvider) -> None:
    _, challenge = pkce_pair()
    url = oidc_provider.authorize_url(
        API_CLIENT_ID, API_CLIENT_REDIRECT_URI, state="s", code_challenge=challenge
    )
    with httpx.Client() as http:
        response = oidc_provider.sign_in(http, url, "anna", "not-the-password")
    assert response.status_code == 401
    assert 'name="password"' in response.text


def test_public_client_must_use_pkce(oidc_provider: OidcProvider) -> None:
    url = oidc_provider.authorize_url(API_CLIENT_ID, API_CLIENT_REDIRECT_URI, state="s")
    response = httpx.get(url)
    assert redirect_params(response)["error"] == "invalid_request"


def test_client_credentials(oidc_provider: OidcProvider, own_provider: OidcProvider) -> None:
    token = oidc_provider.client_credentials_token(GROUPS_CLIENT_ID, "groups-reader-test-secret")
    claims = verify(oidc_provider, token)
    assert claims["sub"] == claims["client_id"] == claims["azp"] == GROUPS_CLIENT_ID
    assert "preferred_username" not in claims
    posted = own_provider.client_credentials_token("harness-post", "harness-post-secret")
    assert verify(own_provider, posted)["client_id"] == "harness-post"
    with pytest.raises(AssertionError, match="invalid_client"):
        own_provider.client_credentials_token("harness-post", "wrong")


def test_confidential_client_code_flow(own_provider: OidcProvider) -> None:
    tokens = own_provider.user_tokens(
        "bertil",
        client_id="harness-web",
        client_secret="harness-web-secret",
        redirect_uri="http://127.0.0.1:2/callback",
    )
    assert verify(own_provider, tokens["access_token"])["groups"] == []


def test_forged_tokens(oidc_provider: OidcProvider) -> None:
    claims = oidc_provider.token_claims("anna")
    assert verify(oidc_provider, oidc_provider.sign(claims))["sub"] == "anna"
    with pytest.raises(jwt.InvalidAudienceError):
        verify(oidc_provider, oidc_provider.sign({**claims, "aud": "someone-else"}))
    with pytest.raises(jwt.ExpiredSignatureError):
        verify(oidc_provider, oidc_provider.sign({**claims, "exp": claims["iat"] - 60}))
    stranger = generate_signing_key(kid=oidc_provider.keys[0].kid)
    with pytest.raises(jwt.InvalidSignatureError):
        verify(oidc_provider, oidc_provider.sign(claims, key=stranger))


def test_logout_confirms_itself(oidc_provider: OidcProvider) -> None:
    verifier, challenge = pkce_pair()
    url = oidc_provider.authorize_url(
        API_CLIENT_ID, API_CLIENT_REDIRECT_URI, state="s", nonce="n", code_challenge=challenge
    )
    with httpx.Client() as http:
        code = redirect_params(oidc_provider.sign_in(http, url, "bertil"))["code"]
        tokens = http.post(
            oidc_provider.token_endpoint,
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": API_CLIENT_REDIRECT_URI,
                "client_id": API_CLIENT_ID,
                "code_verifier": verifier,
            },
        ).json()
        page = http.get(
            oidc_provider.end_session_endpoint,
            params={
                "id_token_hint": tokens["id_token"],
                "post_logout_redirect_uri": API_CLIENT_REDIRECT_URI,
                "state": "bye",
            },
        )
        assert page.status_code == 200
        assert ".submit()" in page.text  # a browser submits it without a click
        action = re.search(r'action="([^"]+)"', page.text)
        assert action is not None
        fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', page.text))
        assert fields["logout"] == "yes"
        done = http.post(action.group(1), data=fields)
        assert done.is_redirect
        assert done.headers["location"].startswith(API_CLIENT_REDIRECT_URI)
        assert redirect_params(done)["state"] == "bye"
        # The session is gone: the next sign-in shows the form again.
        again = oidc_provider.sign_in(http, url, "bertil", "wrong-password")
        assert again.status_code == 401


def test_rotate_keys(own_provider: OidcProvider) -> None:
    old_kid = own_provider.keys[0].kid
    own_provider.rotate_keys()
    new_kid = own_provider.keys[0].kid
    published = httpx.get(own_provider.jwks_url).json()["keys"]
    assert [key["kid"] for key in published] == [new_kid, old_kid]
    assert not any("d" in key for key in published)  # public halves only
    token = own_provider.user_access_token("anna")
    assert jwt.get_unverified_header(token)["kid"] == new_kid
    verify(own_provider, token)


def test_set_accounts_changes_groups(own_provider: OidcProvider) -> None:
    accounts = own_provider.accounts
    accounts["bertil"]["groups"] = ["balsam-admins", "extra"]
    own_provider.set_accounts(accounts)
    try:
        claims = verify(own_provider, own_provider.user_access_token("bertil"))
        assert claims["groups"] == ["balsam-admins", "extra"]
    finally:
        own_provider.reset_accounts()
    assert verify(own_provider, own_provider.user_access_token("bertil"))["groups"] == []


@dataclass
class GroupsServer:
    """A groups endpoint: answers ``{"groups": groups}`` and records each request."""

    groups: list[str]
    seen: list[tuple[str, str]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def groups_server() -> Iterator[GroupsServer]:
    state = GroupsServer(groups=["project-x", "balsam-admins"])

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.seen.append((self.path, self.headers.get("Authorization", "")))
            body = json.dumps({"groups": state.groups}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/api/v1/users/{{username}}/groups"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_groups_from_groups_url(own_provider: OidcProvider, groups_server: GroupsServer) -> None:
    own_provider.set_groups_url(groups_server.url)
    try:
        tokens = own_provider.user_tokens("åsa.öberg")
        userinfo = httpx.get(
            own_provider.userinfo_endpoint,
            headers={"Authorization": f"Bearer {tokens['access_token']}"},
        ).json()
    finally:
        own_provider.set_groups_url(None)
    expected = ["researchers", "project-x", "balsam-admins"]
    assert userinfo["groups"] == expected
    assert verify(own_provider, tokens["access_token"])["groups"] == expected
    assert verify(own_provider, tokens["id_token"], audience=API_CLIENT_ID)["groups"] == expected
    paths = {path for path, _ in groups_server.seen}
    assert paths == {"/api/v1/users/%C3%A5sa.%C3%B6berg/groups"}
    authorizations = {authorization for _, authorization in groups_server.seen}
    assert len(authorizations) == 1  # the service token is cached
    scheme, service_token = authorizations.pop().split(" ", 1)
    assert scheme == "Bearer"
    service_claims = verify(own_provider, service_token)
    assert service_claims["sub"] == service_claims["client_id"] == GROUPS_CLIENT_ID


def test_keycloak_js_client(own_provider: OidcProvider) -> None:
    """A ``keycloak_js`` client, as keycloak-js 18 uses Keycloak: no PKCE, the page's own
    address as redirect URI, a JWT-shaped refresh token with the nonce that refreshes
    (and is spent doing so), CORS with credentials, logout back to any page, and the
    refresh token dead with the session."""
    page = f"{UI_ORIGIN}/projects/42?tab=2"
    url = own_provider.authorize_url(
        "harness-ui", page, state="s", nonce="n-kc", response_mode="fragment"
    )
    cors = {"Origin": UI_ORIGIN}
    with httpx.Client() as http:
        signed_in = own_provider.sign_in(http, url, "bertil")
        assert signed_in.headers["location"].startswith(f"{page}#")
        params = redirect_params(signed_in)
        assert set(params) == {"code", "state", "tab"}  # tab: the page's own query
        response = http.post(
            own_provider.token_endpoint,
            data={
                "grant_type": "authorization_code",
                "code": params["code"],
                "redirect_uri": page,
                "client_id": "harness-ui",
            },
            headers=cors,
        )
        assert response.status_code == 200, response.text
        assert response.headers["access-control-allow-origin"] == UI_ORIGIN
        assert response.headers["access-control-allow-credentials"] == "true"
        tokens = response.json()
        assert verify(own_provider, tokens["access_token"])["nonce"] == "n-kc"
        claims = refresh_token_claims(tokens["refresh_token"])
        assert claims["typ"] == "Refresh"
        assert claims["nonce"] == "n-kc"
        assert claims["azp"] == "harness-ui"
        assert claims["sub"] == "bertil"
        assert claims["exp"] > claims["iat"]

        refreshed = own_provider.refresh_tokens(tokens["refresh_token"], client_id="harness-ui")
        access = verify(own_provider, refreshed["access_token"])
        assert access["nonce"] == "n-kc"
        assert access["preferred_username"] == "bertil"
        assert "groups" in access
        assert refresh_token_claims(refreshed["refresh_token"])["nonce"] == "n-kc"
        assert refreshed["refresh_token"] != tokens["refresh_token"]
        with pytest.raises(AssertionError, match="invalid_grant"):  # spent by the refresh
            own_provider.refresh_tokens(tokens["refresh_token"], client_id="harness-ui")
        preflight = http.options(
            own_provider.token_endpoint,
            headers={**cors, "Access-Control-Request-Method": "POST"},
        )
        assert preflight.headers["access-control-allow-origin"] == UI_ORIGIN

        bye = http.get(
            own_provider.end_session_endpoint,
            params={
                "client_id": "harness-ui",
                "id_token_hint": refreshed["id_token"],
                "post_logout_redirect_uri": f"{UI_ORIGIN}/my-page",
            },
        )
        assert bye.status_code == 200, bye.text
        action = re.search(r'action="([^"]+)"', bye.text)
        assert action is not None
        fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', bye.text))
        done = http.post(action.group(1), data=fields)
        assert done.headers["location"] == f"{UI_ORIGIN}/my-page"
    with pytest.raises(AssertionError, match="invalid_grant"):  # ended with the session
        own_provider.refresh_tokens(refreshed["refresh_token"], client_id="harness-ui")


def test_keycloak_js_flags_are_opt_in(own_provider: OidcProvider) -> None:
    """Redirects stay under the client's own origins; other clients keep PKCE and get no
    refresh token; malformed flags stop the provider from starting (and roll back)."""
    for elsewhere in (
        "http://127.0.0.1:4/",
        "http://127.0.0.1:3@evil.example/",
        "http://127.0.0.1:30/",
    ):
        url = own_provider.authorize_url("harness-ui", elsewhere, state="s")
        response = httpx.get(url)
        assert response.status_code == 400, elsewhere
        assert "redirect_uri" in response.text
    tokens = own_provider.user_tokens(
        "bertil",
        client_id="harness-web",
        client_secret="harness-web-secret",
        redirect_uri="http://127.0.0.1:2/callback",
    )
    assert "refresh_token" not in tokens
    assert "refresh_token" not in own_provider.user_tokens("anna")
    url = own_provider.authorize_url(API_CLIENT_ID, API_CLIENT_REDIRECT_URI, state="s")
    assert redirect_params(httpx.get(url))["error"] == "invalid_request"  # PKCE required
    for bad in ({"redirect_origins": ["http://127.0.0.1:3/app"]}, {"keycloak_js": "yes"}):
        with pytest.raises(ProviderStartError, match=r"redirect_origins|keycloak_js"):
            own_provider.register_client({**UI_CLIENT, "client_id": "harness-bad", **bad})
    assert "harness-bad" not in own_provider.clients
