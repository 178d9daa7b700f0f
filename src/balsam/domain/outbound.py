"""The one rule for every URL the server itself fetches: project sources,
knowledge libraries, imports.

Without it, anyone who can name a URL could make Balsam fetch from addresses
only the server reaches (cloud metadata at 169.254.169.254, services on
loopback, the internal network). So an http(s) host must resolve to public
addresses only, unless an administrator lists it in
``BALSAM_SOURCE_PRIVATE_HOSTS`` (an internal GitLab, say). URLs must carry no
credentials (they would be stored and appear in git's arguments), and fetches
never follow redirects (``NO_REDIRECTS``), so a public host cannot bounce a
fetch inward.

Known limit: for git fetches the name is resolved here and again by git; a
hostile DNS server answering differently the second time (DNS rebinding) is not
stopped there. Imports (:mod:`balsam.domain.data.fetch`) connect only to the
addresses checked here (:func:`outbound_addresses`) and check every redirect the
same way. An egress proxy or firewall is the complete answer for deployments
that need it.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from balsam.errors import N_, InvalidInput

__all__ = ["NO_REDIRECTS", "check_outbound_url", "outbound_addresses"]

#: ``git -c`` options for every fetch from a URL a user or admin named.
NO_REDIRECTS = ("-c", "http.followRedirects=false")


def check_outbound_url(
    url: str, private_hosts: list[str], *, field: str, must_resolve: bool = True
) -> None:
    """Return if ``url`` carries no credentials and its host is listed in
    ``private_hosts`` or resolves to global addresses only; InvalidInput
    (naming ``field``) otherwise. A host that does not resolve is refused too,
    so the answer never depends on what the fetch would reach, unless
    ``must_resolve`` is False (a registration that is fetched, and checked
    again, later)."""
    host, port = _host_and_port(url, field)
    if _listed(host, port, private_hosts):
        return
    try:
        addresses = _resolve(host, port, field)
    except InvalidInput:
        if not must_resolve:
            return
        raise
    _refuse_private(host, addresses, field)


def outbound_addresses(url: str, private_hosts: list[str], *, field: str) -> list[str]:
    """The addresses a fetch of ``url`` may connect to, resolved once, under the rule of
    :func:`check_outbound_url` (all of them, for a host in ``private_hosts``). A fetch
    that connects to these, and only these, leaves no window for DNS rebinding."""
    host, port = _host_and_port(url, field)
    addresses = _resolve(host, port, field)
    if not _listed(host, port, private_hosts):
        _refuse_private(host, addresses, field)
    return [str(a) for a in addresses]


def _host_and_port(url: str, field: str) -> tuple[str, int]:
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        raise InvalidInput(
            N_("%(field)s is not a valid URL."), params={"field": field}, details={"field": field}
        ) from None
    if "@" in parts.netloc:
        raise InvalidInput(
            N_("%(field)s must not contain credentials."),
            params={"field": field},
            details={"field": field},
        )
    if not host:
        raise InvalidInput(
            N_("%(field)s names no host."), params={"field": field}, details={"field": field}
        )
    return host, port or (80 if parts.scheme == "http" else 443)


def _listed(host: str, port: int, private_hosts: list[str]) -> bool:
    """Whether an entry names ``host`` (any port) or ``host:port`` (that port only;
    ``[address]:port`` for IPv6)."""
    host = host.casefold()
    return any(_entry(entry) in ((host, None), (host, port)) for entry in private_hosts)


def _entry(entry: str) -> tuple[str, int | None]:
    """``(host, port or None)`` of an allow-list entry: ``host``, ``host:port``,
    ``[v6]``, ``[v6]:port`` or a bare IPv6 address (any port)."""
    entry = entry.strip().casefold()
    if entry.startswith("["):
        address, _, rest = entry[1:].partition("]")
        port = rest.removeprefix(":")
        return address, int(port) if port.isdigit() else None
    if entry.count(":") == 1:
        name, _, port = entry.partition(":")
        return name, int(port) if port.isdigit() else -1  # a bad port matches nothing
    return entry, None


def _resolve(
    host: str, port: int, field: str
) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        # The field in details, not in words: the portal shows it next to its own field.
        raise InvalidInput(
            N_("The host '%(host)s' cannot be resolved: is the address right?"),
            params={"host": host},
            details={"field": field, "host": host},
        ) from None
    found = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    return list(dict.fromkeys(found))  # once each, in the resolver's order


#: NAT64's well-known prefix (RFC 6052): the IPv4 address is the last 32 bits. Python
#: counts it as global whatever the address inside.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
#: NAT64 for local use (RFC 8215): never a public destination.
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether ``address`` is global, and so is any IPv4 address it carries (IPv4-mapped,
    NAT64, 6to4, Teredo's server and client)."""
    if not address.is_global:
        return False
    if isinstance(address, ipaddress.IPv4Address):
        return True
    if address in _LOCAL_NAT64:
        return False
    inner: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        inner.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        inner.append(address.sixtofour)
    if address.teredo is not None:
        inner.extend(address.teredo)
    if address in _NAT64:
        inner.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return all(a.is_global for a in inner)


def _refuse_private(
    host: str, addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address], field: str
) -> None:
    for address in addresses:
        if not is_public(address):
            raise InvalidInput(
                N_(
                    "The host '%(host)s' is on a private or local network address; an "
                    "administrator can allow it in BALSAM_SOURCE_PRIVATE_HOSTS."
                ),
                params={"host": host},
                details={"field": field, "host": host, "address": str(address)},
            )
