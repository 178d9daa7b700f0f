"""Unix process and permission helpers of the local workspace provider."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


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
    wherever an operator put the environments. Each folder outside the data
    directory so opened is logged as a WARNING (its mode before and after): it
    may be a private one, e.g. ``/root``. Everything else in the data directory
    (``root``'s parent) is closed to other users: database, repositories, object
    data, secrets."""
    data_dir = root.parent
    for folder in dict.fromkeys([root, *root.parents, environments, *environments.parents]):
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            folder.chmod(mode | stat.S_IXOTH)
            if folder != data_dir and data_dir not in folder.parents:
                _warn_opened(folder, mode)
    for entry in data_dir.iterdir():
        if entry in (root, environments) or entry.is_symlink():
            continue
        entry.chmod(entry.stat().st_mode & ~0o077)


def _warn_opened(folder: Path, mode: int) -> None:
    log.warning(
        "%s is now traversable by every user (mode %o -> %o) so that workspaces reach "
        "their homes and the template environments: other users can open what they know "
        "the name of under it. Keep the data directory and environments_dir outside private "
        "folders (see 'Known limits' in docs/security.md).",
        folder,
        stat.S_IMODE(mode),
        stat.S_IMODE(mode | stat.S_IXOTH),
    )


def signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def wait_gone(alive: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while alive() and time.monotonic() < deadline:
        time.sleep(0.05)


def kill_user(uid: int, timeout: float = 2.0) -> list[int]:
    """SIGKILL every process of ``uid`` (a workspace's own user id); the pids still
    alive after ``timeout`` seconds (none, unless the kernel refuses), logged.

    Walking ``/proc`` misses a fork chain (each process forks and exits at once): by
    the time a listed pid is read or signalled its child has taken over, and it may
    not even be listed. A process that takes ``uid`` and calls ``kill(-1, SIGKILL)``
    has the kernel signal every process that uid may signal, all of that uid's, in
    one pass no fork can outrun (a fork with SIGKILL pending fails). That is done
    first, without looking; then, with nothing left able to fork, ``/proc`` is
    reliable and the kill is repeated until it shows none alive (e.g. in ``D`` state
    a moment longer). Refuses root and Balsam's own uid."""
    if uid in (0, os.getuid(), os.geteuid()):
        raise ValueError(f"kill_user refuses uid {uid}: it is not a workspace's own")
    deadline = time.monotonic() + timeout
    _kill_all_as(uid)
    while left := processes_of(uid):
        if time.monotonic() >= deadline:
            log.warning("processes %s of uid %d survived SIGKILL", left, uid)
            return left
        time.sleep(0.01)
        _kill_all_as(uid)
    return []


#: Shared folders a workspace's processes can fill (``/dev/shm`` is memory).
#: Folders every user may write to: what a workspace leaves there is removed at stop.
SHARED_SCRATCH = tuple(
    Path(p)
    for p in ("/dev/shm", "/tmp", "/var/tmp", "/run/lock", "/dev/mqueue")  # noqa: S108
)
#: System V IPC tables: (table, ipcrm's option, the columns of id, owner and creator).
_SYSV = (
    (Path("/proc/sysvipc/shm"), "-m", 1, 7, 9),
    (Path("/proc/sysvipc/sem"), "-s", 1, 4, 6),
    (Path("/proc/sysvipc/msg"), "-q", 1, 7, 9),
)


def remove_leftovers(uid: int, folders: tuple[Path, ...] = SHARED_SCRATCH) -> list[str]:
    """Remove what a stopped workspace left where every user may write: the entries of
    ``folders`` that ``uid`` owns (files, links, whole folders; links are not
    followed) and its System V shared-memory segments, semaphores and message queues
    (each counts against host-wide limits). Call it once nothing of ``uid`` runs.
    Returns what was removed, for the log."""
    if uid in (0, os.getuid(), os.geteuid()):
        raise ValueError(f"remove_leftovers refuses uid {uid}: it is not a workspace's own")
    removed = []
    for folder in folders:
        with contextlib.suppress(OSError):
            for entry in os.scandir(folder):
                with contextlib.suppress(OSError):
                    if entry.stat(follow_symlinks=False).st_uid != uid:
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path)
                    else:
                        os.unlink(entry.path)
                    removed.append(entry.path)
    return removed + _remove_sysv(uid)


def _remove_sysv(uid: int) -> list[str]:
    removed = []
    for table, option, id_column, owner, creator in _SYSV:
        try:
            lines = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > creator and str(uid) in (fields[owner], fields[creator]):
                done = subprocess.run(
                    ["ipcrm", option, fields[id_column]], capture_output=True, check=False
                )
                if done.returncode == 0:
                    removed.append(f"{table.name} {fields[id_column]}")
    return removed


def _kill_all_as(uid: int) -> None:
    """In a forked child that has become ``uid`` (and nothing else), ``kill(-1)``."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child; coverage does not follow it
        try:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            if os.getresuid() == (uid, uid, uid):  # never as root: that kills everything
                os.kill(-1, signal.SIGKILL)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def processes_of(uid: int) -> list[int]:
    """Pids of live (not zombie) processes whose real or saved uid is ``uid``: those
    a process of ``uid`` may signal."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and _signalable_by(int(entry.name), uid):
            found.append(int(entry.name))
    return found


def _signalable_by(pid: int, uid: int) -> bool:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:  # gone meanwhile
        return False
    fields = {k: v.split() for k, _, v in (line.partition(":") for line in lines)}
    ids = fields.get("Uid", [])
    zombie = fields.get("State", ["Z"])[0] in ("Z", "X")
    return not zombie and len(ids) >= 3 and str(uid) in (ids[0], ids[2])
