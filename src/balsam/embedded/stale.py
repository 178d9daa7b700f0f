"""Finding and stopping a child service left running by a process that died.

The parent-death signal (see :mod:`balsam.embedded.seaweedfs`) makes a child
die with the thread that started it, but not in every case: a parent killed
between the fork and the moment the child sets that signal, or a child
started by an older Balsam, survives as an orphan that holds its ports and
its data dir. A new start therefore looks for such a process first.

A process counts only if its arguments contain the data dir's own marker
(e.g. ``-dir=<data_dir>/data``) and it runs as the uid the service runs as:
a process of another uid cannot pose as one and be killed. Signals go through
a pidfd, so a pid reused meanwhile is never signalled.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

_PROC = Path("/proc")
_TERM_GRACE_S = 2.0  # then SIGKILL: the data dir is crash-safe, a restart must not wait


def stop_stale_processes(marker: str, *, uid: int, timeout: float = 10.0) -> list[int]:
    """Stop every process of ``uid`` whose arguments include ``marker`` (SIGTERM,
    SIGKILL after 2 s) and wait, at most ``timeout`` seconds, until each is gone.
    Returns their pids. Processes of another uid, zombies and this process are
    left alone."""
    stopped = []
    for pid in _matching(marker, uid):
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:  # gone already
            continue
        try:
            if _matches(pid, marker, uid):  # the pid is pinned now: check it again
                _stop(pidfd, pid, timeout)
                stopped.append(pid)
        finally:
            os.close(pidfd)
    return stopped


def _matching(marker: str, uid: int) -> list[int]:
    own = os.getpid()
    pids = (int(entry.name) for entry in _PROC.iterdir() if entry.name.isdigit())
    return [pid for pid in pids if pid != own and _matches(pid, marker, uid)]


def _matches(pid: int, marker: str, uid: int) -> bool:
    try:
        arguments = (_PROC / str(pid) / "cmdline").read_bytes().split(b"\0")
        status = (_PROC / str(pid) / "status").read_text()
    except OSError:  # exited, or not ours to read
        return False
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    real_uid = int(fields.get("Uid", "-1").split()[0])
    zombie = fields.get("State", "").strip().startswith("Z")
    return real_uid == uid and not zombie and marker.encode() in arguments


def _stop(pidfd: int, pid: int, timeout: float) -> None:
    signal.pidfd_send_signal(pidfd, signal.SIGTERM)
    if _gone(pid, min(_TERM_GRACE_S, timeout)):
        return
    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    _gone(pid, timeout)


def _gone(pid: int, timeout: float) -> bool:
    """Whether ``pid`` exits within ``timeout`` seconds, or is left a zombie
    with no file open (only its new parent can reap it; its ports are free)."""
    deadline = time.monotonic() + timeout
    while True:
        if _exited(pid):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def _exited(pid: int) -> bool:
    # A killed multi-threaded process shows "Z" while its other threads still
    # hold its files (and sockets): only an empty fd table means it is done.
    try:
        state = (_PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
        return state == "Z" and not os.listdir(_PROC / str(pid) / "fd")
    except (OSError, IndexError):
        return True
