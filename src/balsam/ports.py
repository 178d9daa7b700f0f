"""Taking back the loopback ports Balsam needs from workspaces.

As root, code in a workspace runs under a uid of its own and may listen on any free
port above 1023. While Balsam or its SeaweedFS is down (a crash, ``kill -9``, a
restart), such a process can take their ports and answer in their place: a login
form that keeps passwords, an S3 server that keeps uploads. So before Balsam
listens and before weed starts (or restarts), every socket listening on those
ports is looked up in ``/proc/net/tcp`` and ``tcp6``: the processes holding one
whose uid belongs to a workspace (``is_workspace_uid``) are killed, and the port
is waited for. A listener of any other user is left alone; the start then fails
as before, naming the port.

A socket that is bound but does not listen is in no table (``/proc/net/tcp`` lists
sockets in a hash the kernel keeps for connections and listeners only), yet it keeps
the port from being bound again — with ``SO_REUSEADDR`` switched off after its own
bind, also from a server that sets it. So a port that still cannot be bound once the
listeners are gone is blamed on the workspaces that hold a socket no table lists:
every process of such a uid is killed too (:func:`hidden_holders`).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from balsam.providers.workspaces.unix import kill_user

log = logging.getLogger(__name__)

_TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))
#: Every table of sockets the kernel lists; a socket in none of them is bound only
#: (or not bound at all).
_ALL_TABLES = {
    **{name: 9 for name in ("tcp", "tcp6", "udp", "udp6", "raw", "raw6", "netlink")},
    "unix": 6,
    "packet": 8,
}  # table → the column of its inode
_LISTEN = "0A"


@dataclass(frozen=True)
class Listener:
    """A socket listening on ``port`` (any address), of ``uid``."""

    port: int
    uid: int
    inode: int


def listeners(ports: Collection[int], tables: Collection[Path] = _TABLES) -> list[Listener]:
    """The sockets listening on ``ports``, on any local address, IPv4 and IPv6."""
    wanted, found = set(ports), []
    for table in tables:
        try:
            lines = table.read_text().splitlines()[1:]
        except OSError:  # no IPv6 on this host
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != _LISTEN:
                continue
            port = int(fields[1].rsplit(":", 1)[1], 16)
            if port in wanted:
                found.append(Listener(port, int(fields[7]), int(fields[9])))
    return found


def holders(inodes: Collection[int]) -> dict[int, list[int]]:
    """``{inode: pids}``: the processes that have one of these sockets open."""
    links = {f"socket:[{inode}]": inode for inode in inodes}
    found: dict[int, list[int]] = {inode: [] for inode in inodes}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):  # gone meanwhile, or not ours to read
            for fd in os.scandir(f"/proc/{entry.name}/fd"):
                inode = links.get(os.readlink(fd.path))
                if inode is not None:
                    found[inode].append(int(entry.name))
    return found


def bindable(port: int) -> bool:
    """Whether a server could bind ``port`` on the loopback addresses now (with
    ``SO_REUSEADDR``, as uvicorn and weed do)."""
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        try:
            probe = socket.socket(family, socket.SOCK_STREAM)
        except OSError:  # no IPv6 on this host
            continue
        with probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return False
    return True


def _listed_inodes() -> set[int]:
    inodes: set[int] = set()
    for table, column in _ALL_TABLES.items():
        with contextlib.suppress(OSError):
            for line in (Path("/proc/net") / table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > column and fields[column].isdigit():
                    inodes.add(int(fields[column]))
    return inodes


def hidden_holders(is_workspace_uid: Callable[[int], bool]) -> dict[int, list[int]]:
    """``{uid: pids}``: processes of workspace uids holding a socket that no table
    lists (bound without listening, or not yet bound)."""
    listed = _listed_inodes()
    found: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            uid = os.stat(entry.path).st_uid
            if not is_workspace_uid(uid):
                continue
            for fd in os.scandir(f"{entry.path}/fd"):
                link = os.readlink(fd.path)
                if link.startswith("socket:[") and int(link[8:-1]) not in listed:
                    found.setdefault(uid, []).append(int(entry.name))
                    break
    return found


def reclaim(
    ports: Collection[int],
    is_workspace_uid: Callable[[int], bool],
    *,
    what: str,
    timeout: float = 5.0,
) -> list[Listener]:
    """Stop every workspace whose uid listens on one of ``ports``: all processes of
    that uid are killed (a squatter's helper would otherwise listen again), and
    wait (up to ``timeout``) until their sockets are gone. Returns the listeners
    found. ``what`` names the ports' user in the log ("Balsam", "SeaweedFS")."""
    taken = [entry for entry in listeners(ports) if is_workspace_uid(entry.uid)]
    if not taken:
        _reclaim_hidden(ports, is_workspace_uid, what, timeout)
        return []
    pids_of_socket = holders({entry.inode for entry in taken})
    for uid in sorted({entry.uid for entry in taken}):
        ports_held = sorted({e.port for e in taken if e.uid == uid})
        pids = {pid for e in taken if e.uid == uid for pid in pids_of_socket[e.inode]}
        log.warning(
            "workspace uid %d was listening on port(s) %s of %s (pids %s): "
            "every process of that uid was killed",
            uid, ports_held, what, sorted(pids),
        )  # fmt: skip
        kill_user(uid)  # all of them at once: a forking helper cannot outrun it
    deadline = time.monotonic() + timeout
    inodes = {entry.inode for entry in taken}
    while time.monotonic() < deadline and any(e.inode in inodes for e in listeners(ports)):
        time.sleep(0.05)
    _reclaim_hidden(ports, is_workspace_uid, what, timeout)
    return taken


def _reclaim_hidden(
    ports: Collection[int], is_workspace_uid: Callable[[int], bool], what: str, timeout: float
) -> None:
    """Kill the workspaces holding unlisted sockets while a port nobody listens on
    still cannot be bound."""
    blocked = [p for p in ports if not listeners([p]) and not bindable(p)]
    if not blocked:
        return
    for uid, pids in sorted(hidden_holders(is_workspace_uid).items()):
        log.warning(
            "port(s) %s of %s could not be bound and workspace uid %d held a socket that "
            "does not listen (pids %s): every process of that uid was killed",
            blocked, what, uid, sorted(pids),
        )  # fmt: skip
        kill_user(uid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(bindable(p) for p in blocked):
        time.sleep(0.05)
