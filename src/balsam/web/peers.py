"""Who is on the other end of a loopback TCP connection.

Every workspace (and every other local process) reaches Balsam's port from
127.0.0.1, the same address as the host's own browser users. For rate limits
and the audit trail such a client is told apart by the unix uid that owns its
socket: the peer's socket is the one whose local end is the connection's
client address:port and whose remote end is Balsam's server address:port.
Linux answers that question for one exact socket over sock_diag netlink
(what ``ss`` uses; ~50 µs); where netlink is unavailable the same entry is
looked up in ``/proc/net/tcp`` and ``/proc/net/tcp6`` (one line per socket,
but ~10 ms per read here: the kernel walks its whole connection table).

Contract of :func:`peer_address`: a remote client keeps its IP address; a local
client (any source address: a local process may bind any address of this host and
still connect to 127.0.0.1, so every client is looked up, and one whose socket is in
this host's table is local) owned by a uid other than 0 and Balsam's own effective
uid becomes ``"uid:<n>"``; a local socket without an owning process (closed or reset
by its process already: the kernel then reports uid 0 or nothing) becomes
``"loopback:closed"``, so closing early cannot pass for root; root and Balsam's own
uid keep the IP address, and so does everyone where neither lookup works (not
Linux). The netlink lookup costs ~50 µs a request.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
import sys
from pathlib import Path
from typing import NamedTuple

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Endpoint = tuple[IPAddress, int]

PROC_NET = Path("/proc/net")
TABLES = ("tcp", "tcp6")
CLOSED = "loopback:closed"

# sock_diag netlink (linux/sock_diag.h, linux/inet_diag.h)
NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 1
NLMSG_ERROR = 2
NO_COOKIE = 0xFFFFFFFF
ALL_STATES = 0xFFFFFFFF
NLMSG_HEADER = struct.Struct("=IHHII")
DIAG_REQUEST = struct.Struct("=BBBBI")
#: In inet_diag_msg: 4 bytes of family/state/timer/retrans, the 48-byte socket
#: id, then expires, rqueue, wqueue, uid, inode.
DIAG_UID_INODE = struct.Struct("=II")
DIAG_UID_OFFSET = NLMSG_HEADER.size + 4 + 48 + 12


class Owner(NamedTuple):
    """A socket's owner: ``inode`` 0 means no process holds it any more."""

    uid: int
    inode: int


class LookupUnavailable(OSError):
    """Neither netlink nor /proc/net can answer (not Linux, or sandboxed)."""


def _ip(text: str) -> IPAddress | None:
    """An address as the kernel compares it: IPv4-mapped IPv6 becomes IPv4."""
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _diag_request(client: Endpoint, server: Endpoint, family: int, interface: int = 0) -> bytes:
    def packed(address: IPAddress) -> bytes:
        if family == socket.AF_INET6 and address.version == 4:
            address = ipaddress.IPv6Address(b"\0" * 10 + b"\xff" * 2 + address.packed)
        return address.packed.ljust(16, b"\0")

    body = (
        DIAG_REQUEST.pack(family, socket.IPPROTO_TCP, 0, 0, ALL_STATES)
        + struct.pack(">HH", client[1], server[1])
        + packed(client[0])
        + packed(server[0])
        + struct.pack("=III", interface, NO_COOKIE, NO_COOKIE)
    )
    return (
        NLMSG_HEADER.pack(NLMSG_HEADER.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, 1, 0)
        + body
    )


def _netlink_owner(client: Endpoint, server: Endpoint) -> Owner | None:
    """Ask the kernel for the one socket (an IPv4 peer may hold an IPv6 socket; a
    socket bound to an interface, by a link-local address or SO_BINDTODEVICE, is
    found only when its interface is named, so each is asked for in turn).
    Raises OSError when netlink cannot answer, not merely "no such socket"."""
    families = [socket.AF_INET6] if client[0].version == 6 else [socket.AF_INET, socket.AF_INET6]
    interfaces = [0, *(index for index, _ in socket.if_nameindex())]
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG) as link:
        link.settimeout(1)
        for interface in interfaces:
            for family in families:
                link.send(_diag_request(client, server, family, interface))
                answer = link.recv(8192)
                if NLMSG_HEADER.unpack_from(answer)[1] != NLMSG_ERROR:
                    return Owner(*DIAG_UID_INODE.unpack_from(answer, DIAG_UID_OFFSET))
                error = -struct.unpack_from("=i", answer, NLMSG_HEADER.size)[0]
                if error != errno.ENOENT:
                    raise OSError(error, os.strerror(error))
    return None


def _proc_endpoint(field: str) -> Endpoint | None:
    """Decode ``0100007F:1F90``: each 32-bit word of the address is printed in
    host byte order, the port as a plain hexadecimal number."""
    raw, _, port = field.partition(":")
    try:
        data = bytes.fromhex(raw)
        number = int(port, 16)
    except ValueError:
        return None
    if len(data) not in (4, 16):
        return None
    if sys.byteorder == "little":
        data = b"".join(data[i : i + 4][::-1] for i in range(0, len(data), 4))
    address = _ip(str(ipaddress.ip_address(data)))
    return (address, number) if address is not None else None


def _proc_owner(client: Endpoint, server: Endpoint, proc_net: Path) -> Owner | None:
    readable = False
    for table in TABLES:
        try:
            lines = (proc_net / table).read_text().splitlines()[1:]
        except OSError:
            continue
        readable = True
        for line in lines:
            fields = line.split()
            if (
                len(fields) >= 10
                and _proc_endpoint(fields[1]) == client
                and _proc_endpoint(fields[2]) == server
            ):
                return Owner(int(fields[7]), int(fields[9]))
    if not readable:
        raise LookupUnavailable("no /proc/net/tcp")
    return None


def socket_owner(client: Endpoint, server: Endpoint, proc_net: Path = PROC_NET) -> Owner | None:
    """The owner of the socket whose local end is ``client`` and remote end is
    ``server``; None when there is no such socket. Raises LookupUnavailable
    when the system cannot say."""
    try:
        return _netlink_owner(client, server)
    except OSError:
        return _proc_owner(client, server, proc_net)


def peer_address(
    client: tuple[str, int], server: tuple[str, int] | None, proc_net: Path = PROC_NET
) -> str:
    """The address to rate-limit and audit a client by (see the module docstring)."""
    host, port = client
    client_ip = _ip(host)
    server_ip = _ip(server[0]) if server else None
    if client_ip is None or server is None or server_ip is None:
        return host
    # Surely from this host: a connection to a loopback address, or from loopback, or
    # from the server's own address. A local process may bind any address of this host
    # as its source and still reach 127.0.0.1, so the source alone proves nothing; any
    # other client may be local too (another address of this host): the socket table
    # tells, as a remote client's socket is not in it.
    surely_local = client_ip.is_loopback or server_ip.is_loopback or client_ip == server_ip
    try:
        owner = socket_owner((client_ip, port), (server_ip, server[1]), proc_net)
    except LookupUnavailable:
        return host
    if owner is None and not surely_local:
        return host  # a remote client
    if owner is None or owner.inode == 0:
        return CLOSED
    if owner.uid in (0, os.geteuid()):
        return host
    return f"uid:{owner.uid}"
