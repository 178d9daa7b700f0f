"""Project sources may not point the server at its own network (SSRF)."""

from __future__ import annotations

import pytest

from balsam.domain.projects.sources import check_public_source
from balsam.errors import InvalidInput


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x.git",
        "http://localhost:8080/x.git",
        "http://[::1]/x.git",
        "http://[::ffff:127.0.0.1]/x.git",
        "http://169.254.169.254/latest/meta-data",
        "https://10.1.2.3/x.git",
        "https://192.168.0.10/x.git",
        "https://100.64.0.1/x.git",
        "http://0.0.0.0/x.git",
        "http://2130706433/x.git",  # 127.0.0.1 as one number
    ],
)
def test_local_and_private_hosts_are_refused(url: str) -> None:
    with pytest.raises(InvalidInput, match="private or local"):
        check_public_source(url, [])


def test_an_administrator_may_allow_a_private_host() -> None:
    check_public_source("http://LOCALHOST:8080/x.git", ["localhost"])
    with pytest.raises(InvalidInput):
        check_public_source("http://127.0.0.1/x.git", ["localhost"])


def test_public_addresses_are_accepted() -> None:
    check_public_source("https://8.8.8.8/x.git", [])
    check_public_source("https://[2001:4860:4860::8888]/x.git", [])


@pytest.mark.parametrize(
    "url", ["https://no-such-host.invalid/x.git", "https:///x.git", "https://[::1/x.git"]
)
def test_unresolvable_or_malformed_hosts_are_refused(url: str) -> None:
    with pytest.raises(InvalidInput):
        check_public_source(url, [])
