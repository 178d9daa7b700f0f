"""Which http(s) hosts a project may be started from.

A member names a source URL and the server clones it: without a check, any
member could make Balsam fetch from addresses only the server reaches (cloud
metadata at 169.254.169.254, services on loopback, the internal network).
So a source host must resolve to public addresses only, unless an
administrator lists it in ``BALSAM_SOURCE_PRIVATE_HOSTS`` (an internal GitLab,
say). Git is also told not to follow redirects for sources (see the git
provider), so a public host cannot bounce the clone inward.

Known limit: the name is resolved here and again by git; a hostile DNS server
answering differently the second time (DNS rebinding) is not stopped. An egress
proxy or firewall is the complete answer for deployments that need it.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from balsam.errors import InvalidInput

__all__ = ["check_public_source"]


def check_public_source(url: str, private_hosts: list[str]) -> None:
    """Return if ``url`` carries no credentials and its host is listed in
    ``private_hosts`` or resolves to global addresses only; InvalidInput
    otherwise (also for a host that does not resolve, so the answer never
    depends on what the clone would reach)."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        raise InvalidInput("sourceLocation is not a valid URL.") from None
    if "@" in parts.netloc:  # it would sit in the database and in git's arguments
        raise InvalidInput("sourceLocation must not contain credentials.")
    if not host:
        raise InvalidInput("sourceLocation names no host.")
    if host.casefold() in {h.casefold() for h in private_hosts}:
        return
    try:
        infos = socket.getaddrinfo(host, port or 443, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        raise InvalidInput(f"sourceLocation: the host '{host}' cannot be resolved.") from None
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if not address.is_global:
            raise InvalidInput(
                f"sourceLocation: the host '{host}' is on a private or local network "
                "address; an administrator can allow it in BALSAM_SOURCE_PRIVATE_HOSTS.",
                details={"host": host, "address": str(address)})
