"""Settings that promise something are held to it."""

from __future__ import annotations

import pytest

from balsam.cli.settings_cmd import InvalidSettings, load_settings

SECURE = {
    "BALSAM_ENVIRONMENT": "production",
    "BALSAM_PUBLIC_URL": "https://balsam.example",
    "BALSAM_AUTH__COOKIE_SECURE": "true",
    "BALSAM_WORKSPACES__PUBLIC_URL": "https://*.ws.balsam.example",
}


def _env(monkeypatch: pytest.MonkeyPatch, values: dict[str, str]) -> None:
    for key, value in values.items():
        monkeypatch.setenv(key, value)


def test_production_with_secure_settings_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    _env(monkeypatch, SECURE)
    assert load_settings().environment == "production"


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("BALSAM_PUBLIC_URL", "http://balsam.example", "BALSAM_PUBLIC_URL"),
        ("BALSAM_AUTH__COOKIE_SECURE", "false", "BALSAM_AUTH__COOKIE_SECURE"),
        ("BALSAM_WORKSPACES__SINGLE_UID_FOR_ALL_USERS", "true", "SINGLE_UID_FOR_ALL_USERS"),
        # Workspaces on the portal's host name could plant cookies the portal reads.
        ("BALSAM_WORKSPACES__PUBLIC_URL", "https://balsam.example:8443", "WORKSPACES__PUBLIC_URL"),
        ("BALSAM_WORKSPACES__PUBLIC_URL", "http://*.workspaces.example", "WORKSPACES__PUBLIC_URL"),
        # One host name for every workspace: a page of one is same-origin with the others.
        ("BALSAM_WORKSPACES__PUBLIC_URL", "https://ws.balsam.example", "WORKSPACES__PUBLIC_URL"),
    ],
)
def test_production_refuses_each_insecure_setting(
    monkeypatch: pytest.MonkeyPatch, key: str, value: str, named: str
) -> None:
    _env(monkeypatch, {**SECURE, key: value})
    with pytest.raises(InvalidSettings, match=named) as refused:
        load_settings()
    assert "BALSAM_:" not in str(refused.value)  # a model-wide check names no field


def test_development_allows_them(monkeypatch: pytest.MonkeyPatch) -> None:
    _env(monkeypatch, {"BALSAM_PUBLIC_URL": "http://balsam.example"})
    assert load_settings().environment == "development"


def test_secure_cookies_are_the_hosts_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """Behind https the session cookies carry the __Host- prefix: no other host name
    (a workspace host under the same domain neither) can set them."""
    _env(monkeypatch, SECURE)
    auth = load_settings().auth
    assert auth.cookie_name == "__Host-balsam_session"
    assert auth.workspace_cookie_name == "__Host-balsam_session_workspace"


@pytest.mark.parametrize("url", ["notaurl", "ftp://balsam.example.org", "https://", "/balsam"])
def test_a_public_url_is_an_absolute_http_url(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """A review started Balsam with BALSAM_PUBLIC_URL=notaurl: accepted, and every
    clone URL and link was wrong."""
    monkeypatch.setenv("BALSAM_PUBLIC_URL", url)
    with pytest.raises(InvalidSettings, match="public_url"):
        load_settings()
