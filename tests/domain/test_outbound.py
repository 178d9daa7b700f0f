"""The outbound rule for every URL the server fetches: IPv6 forms that carry a private
IPv4 address (NAT64, 6to4, Teredo, IPv4-mapped) are as private as the address inside."""

from __future__ import annotations

import ipaddress

import pytest

from balsam.domain.outbound import check_outbound_url, is_public, outbound_addresses
from balsam.errors import InvalidInput


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "169.254.169.254",
        "10.0.0.1",
        "::1",
        "::ffff:127.0.0.1",
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "64:ff9b:1::808:808",  # local-use NAT64
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    ],
)
def test_private_addresses_in_any_form_are_not_public(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700::1111", "64:ff9b::808:808"])
def test_public_addresses_are(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    ("url", "entries", "allowed"),
    [
        ("http://127.0.0.1:8000/a.csv", ["127.0.0.1"], True),  # a bare host: every port
        ("http://127.0.0.1:9340/status", ["127.0.0.1"], True),
        ("http://127.0.0.1:8000/a.csv", ["127.0.0.1:8000"], True),
        ("http://127.0.0.1:9340/status", ["127.0.0.1:8000"], False),  # storage's status page
        ("http://127.0.0.1/a.csv", ["127.0.0.1:80"], True),  # the scheme's port
        ("https://127.0.0.1/a.csv", ["127.0.0.1:80"], False),
        ("http://LOCALHOST:8000/", ["localhost:8000"], True),
        ("http://[::1]:8000/", ["[::1]:8000"], True),
        ("http://[::1]:8001/", ["[::1]:8000"], False),
        ("http://[::1]:8001/", ["::1"], True),
        ("http://127.0.0.1:8000/", ["127.0.0.1:eighty"], False),
    ],
)
def test_an_allow_list_entry_with_a_port_allows_that_port_only(
    url: str, entries: list[str], allowed: bool
) -> None:
    if allowed:
        check_outbound_url(url, entries, field="url")
        assert outbound_addresses(url, entries, field="url")
    else:
        with pytest.raises(InvalidInput):
            check_outbound_url(url, entries, field="url")
        with pytest.raises(InvalidInput):
            outbound_addresses(url, entries, field="url")
