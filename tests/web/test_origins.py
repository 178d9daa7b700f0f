"""Which host name serves what, for each way an installation may be configured."""

from __future__ import annotations

from typing import Any

import pytest

from balsam.settings import Settings
from balsam.web.origins import portal_host, url_origin, workspace_host


def _settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("values", "portal", "workspaces"),
    [
        ({}, "localhost", "127.0.0.1"),  # one machine: two sites to a browser
        ({"public_url": "http://localhost:8080"}, "localhost", "127.0.0.1"),
        # A portal configured under the workspaces' usual name: they take the other.
        ({"public_url": "http://127.0.0.1:8080"}, "127.0.0.1", "localhost"),
        ({"public_url": "http://[::1]:8080"}, "[::1]", "127.0.0.1"),
        (
            {
                "public_url": "https://Balsam.example.",
                "workspaces": {"public_url": "https://ws.balsam.example"},
            },
            "balsam.example",
            "ws.balsam.example",
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
    assert workspace_host(settings) == workspaces
    assert portal_host(settings) == portal


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
