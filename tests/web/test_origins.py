"""Which host name serves what, for each way an installation may be configured."""

from __future__ import annotations

from typing import Any

import pytest

from balsam.settings import Settings
from balsam.web.origins import (
    is_workspace_host,
    portal_elsewhere,
    portal_host,
    url_origin,
    workspace_host,
    workspace_id_of,
    workspace_origin,
)


def _settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("values", "portal", "workspaces"),
    [
        ({}, "localhost", "w-1.localhost"),  # one machine: a site for each
        ({"public_url": "http://localhost:8080"}, "localhost", "w-1.localhost"),
        ({"public_url": "http://127.0.0.1:8080"}, "127.0.0.1", "w-1.localhost"),
        ({"public_url": "http://[::1]:8080"}, "[::1]", "w-1.localhost"),
        (
            {
                "public_url": "https://Balsam.example.",
                "workspaces": {"public_url": "https://*.ws.balsam.example"},
            },
            "balsam.example",
            "w-1.ws.balsam.example",
        ),
        # One name for all of them (development only: see docs/security.md).
        (
            {"public_url": "https://balsam.example", "workspaces": {"public_url": "https://ws.x"}},
            "balsam.example",
            "ws.x",
        ),
        # Not loopback and no workspace URL: under the name typed (development only).
        ({"public_url": "http://balsam.lan:8080"}, "balsam.lan", None),
        ({"host": "0.0.0.0"}, None, None),  # noqa: S104 - bound to the network
        ({"workspaces": {"port": 0}}, None, None),  # one origin for both
    ],
)
def test_each_configuration_has_its_hosts(
    values: dict[str, Any], portal: str | None, workspaces: str | None
) -> None:
    settings = _settings(**values)
    assert workspace_host(settings, "w-1") == workspaces
    assert portal_host(settings) == portal
    if workspaces is not None:
        assert is_workspace_host(settings, workspaces)
        assert not is_workspace_host(settings, portal or "")
        assert portal_elsewhere(settings, workspaces) == (workspaces != portal)


def test_each_workspace_is_an_origin_of_its_own() -> None:
    settings = _settings(workspaces={"public_url": "https://*.ws.balsam.example"})
    scope = {"type": "http", "headers": [], "scheme": "https", "server": ("x", 1)}
    assert workspace_origin(scope, settings, "a-1") == "https://a-1.ws.balsam.example"
    assert workspace_origin(scope, settings, "*") == "https://*.ws.balsam.example"  # for CSP
    local = _settings()
    assert workspace_origin(scope, local, "a-1") == "https://a-1.localhost:8081"
    for other in ("a-1.localhost.evil", "x.a-1.localhost", "localhost", "-a.localhost",
                  "A_1.localhost", ".localhost"):  # fmt: skip
        assert not is_workspace_host(local, other), other
    paths = ("/workspaces/a-1/lab", "/workspaces/-/session", "/workspaces/A/x",
             "/workspaces//", "/projects")  # fmt: skip
    assert [workspace_id_of(p) for p in paths] == ["a-1", None, None, None, None]


@pytest.mark.parametrize(
    "url", ["https://a*.x.example", "https://*.*.x.example", "ftp://*.x.example", "https://x.*"]
)
def test_a_wildcard_stands_for_the_first_label_only(url: str) -> None:
    with pytest.raises(ValueError, match="stands for the workspace's id"):
        _settings(workspaces={"public_url": url})


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://Balsam.example:443/balsam/", "https://balsam.example"),
        ("http://localhost:80", "http://localhost"),
        ("http://localhost:8080", "http://localhost:8080"),
        ("https://balsam.example.:8443", "https://balsam.example:8443"),
    ],
)
def test_a_configured_url_compares_as_a_browsers_origin(url: str, origin: str) -> None:
    assert url_origin(url) == origin
