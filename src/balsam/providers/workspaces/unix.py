"""Unix process and permission helpers of the local workspace provider."""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import time
from collections.abc import Callable
from pathlib import Path


def as_user(uid: int | None) -> dict[str, object]:
    """``subprocess`` arguments that run a child as ``uid`` (None: as ourselves)."""
    return {} if uid is None else {"user": uid, "group": uid, "extra_groups": []}


def write_private(path: Path, text: str, uid: int | None) -> None:
    """Write a new file only its owner (``uid``, or Balsam) can read.

    Whatever was at ``path`` is removed first and the file is created with
    ``O_EXCL | O_NOFOLLOW`` and changed through its descriptor: in a home its user
    owns, a symbolic or hard link planted there must not make root write or chown
    another file (e.g. ``~/.git-credentials`` -> ``/etc/shadow``). A link planted
    between the two steps makes this raise FileExistsError rather than follow it."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(fd, 0o600)
        if uid is not None:
            os.fchown(fd, uid, uid)
        out.write(text)


def runs_server(pid: int, workspace_id: str) -> bool:
    """The pid is alive (not a zombie) and still runs this workspace's server."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except (OSError, IndexError):
        return False
    return state != "Z" and f"/workspaces/{workspace_id}/" in cmdline


def share_with_workspaces(root: Path, environments: Path) -> None:
    """Let workspace users reach their homes under ``root`` and the shared
    template ``environments``, and nothing else of Balsam's.

    Every folder above either becomes traversable (not listable): a workspace
    user cannot run ``bin/jupyter-lab`` under a folder it may not pass through,
    wherever an operator put the environments. Everything else in the data
    directory (``root``'s parent) is closed to other users: database,
    repositories, object data, secrets."""
    data_dir = root.parent
    for folder in [root, *root.parents, environments, *environments.parents]:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            folder.chmod(mode | stat.S_IXOTH)
    for entry in data_dir.iterdir():
        if entry in (root, environments) or entry.is_symlink():
            continue
        entry.chmod(entry.stat().st_mode & ~0o077)


def signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def wait_gone(alive: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while alive() and time.monotonic() < deadline:
        time.sleep(0.05)


def kill_user(uid: int) -> None:
    """SIGKILL every process running under ``uid`` (a workspace's own user id)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    os.kill(int(entry.name), signal.SIGKILL)
            except (OSError, ProcessLookupError):
                continue
