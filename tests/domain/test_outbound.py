"""The outbound rule for every URL the server fetches: IPv6 forms that carry a private
IPv4 address (NAT64, 6to4, Teredo, IPv4-mapped) are as private as the address inside."""

from __future__ import annotations

import ipaddress

import pytest

from balsam.domain.outbound import is_public


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
