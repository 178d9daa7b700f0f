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
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from balsam.providers.workspaces.unix import kill_user

log = logging.getLogger(__name__)

_TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))
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
    return taken
