"""A registry of numeric user ids shared by every Balsam on this host.

When Balsam runs as root it runs each workspace (and its embedded SeaweedFS) under
a numeric user id of its own. Two installations on one host, each counting from
the same base, would hand the same uid to different users: one could then read
and write the other's home. Every installation therefore claims its uids in one
host-wide folder (``uid_registry_dir``, default ``/var/lib/balsam/uids``)::

    <root>/            0700, root's
    <root>/lock        flock'ed around every change
    <root>/uids/<uid>  one entry per uid (created with O_EXCL), holding its owner
    <root>/owners/<h>  the uid of an owner (h: SHA-256 of the owner string)

An owner is a stable string naming who holds the uid, e.g.
``f"{data_dir}#workspace:{id}"`` or ``f"{data_dir}#seaweedfs"``. The ``uids``
entries are the truth; ``owners`` only speeds up finding an owner's uid.

A fresh uid is one no entry holds, no passwd or group entry names, no
``/etc/subuid``/``/etc/subgid`` range delegates (user namespaces), no running
process uses and no file the caller names (``avoid``) is owned by.
"""

from __future__ import annotations

import contextlib
import fcntl
import grp
import hashlib
import os
import pwd
import stat
from collections.abc import Collection, Iterator
from pathlib import Path

#: Where the registry lives unless settings say otherwise.
DEFAULT_DIR = Path("/var/lib/balsam/uids")
#: What the owner name of every workspace's uid holds: ``<data_dir>#workspace:<id>``.
WORKSPACE_MARK = "#workspace:"
#: Largest uid handed out: 2**31 - 2 stays clear of the (uid_t)-1 sentinel and of
#: tools that keep uids in signed 32-bit integers.
MAX_UID = 2**31 - 2
_SUBID_FILES = (Path("/etc/subuid"), Path("/etc/subgid"))


class UidRegistryError(Exception):
    """The registry cannot be used (unsafe folder) or has no uid left to give."""


class HostUidRegistry:
    """Host-wide claims of numeric user ids; safe across processes (flock + O_EXCL).

    Every method takes the lock, so two Balsam processes claiming at once get
    distinct uids. The folder must be private to the user running Balsam (root):
    whoever could write it could make two owners share a uid.
    """

    def __init__(self, root: Path, *, base: int = 200_000) -> None:
        if not 0 < base <= MAX_UID:
            raise ValueError(f"uid base {base} is out of range")
        self.root = root
        self.base = base

    # -- public ------------------------------------------------------------------------

    def claim(self, owner: str, *, avoid: Collection[int] = ()) -> int:
        """The uid registered to ``owner``, registering a fresh one if none.

        ``avoid``: uids the caller knows to be in use (e.g. owners of files in its
        data directory) and that must not be handed out fresh.
        Raises :class:`UidRegistryError` when the folder is unsafe or no uid is left.
        """
        _check_owner(owner)
        with self._locked():
            uid = self._uid_of(owner)
            if uid is None:
                uid = self._register_fresh(owner, set(avoid))
            return uid

    def adopt(self, uid: int, owner: str) -> bool:
        """Register a uid ``owner`` already uses (e.g. recorded by an earlier release).

        True when ``uid`` is now registered to ``owner`` (also if it already was);
        False when another owner holds it, or passwd, group or a subordinate-id
        range names it: then the caller must not run anything under it.
        """
        _check_owner(owner)
        with self._locked():
            holder = self._holder(uid)
            if holder is not None:
                return holder == owner
            if self._uid_of(owner) is not None or system_use(uid):
                return False
            return self._create_entry(uid, owner)

    def verify(self, uid: int, owner: str) -> bool:
        """``uid`` is (still) registered to ``owner``."""
        with self._locked():
            return self._holder(uid) == owner

    def release(self, owner: str) -> None:
        """Forget ``owner``'s uid; a no-op when it has none. The uid may then be
        handed out again, so release only after nothing of the owner is left
        (processes, files)."""
        with self._locked():
            uid = self._uid_of(owner)
            if uid is not None:
                (self._uids / str(uid)).unlink(missing_ok=True)
            (self._owners / _digest(owner)).unlink(missing_ok=True)

    def is_workspace(self, uid: int) -> bool:
        """Whether ``uid`` is registered to a workspace (of any installation)."""
        owner = self.owner_of(uid)
        return owner is not None and WORKSPACE_MARK in owner

    def owner_of(self, uid: int) -> str | None:
        """Who holds ``uid``, or None (for messages to admins)."""
        with self._locked():
            return self._holder(uid)

    # -- folder and lock --------------------------------------------------------------

    @property
    def _uids(self) -> Path:
        return self.root / "uids"

    @property
    def _owners(self) -> Path:
        return self.root / "owners"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self._ensure_folder()
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def _ensure_folder(self) -> None:
        """Create the folder 0700; refuse one another user owns or a symlink."""
        self.root.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            self.root.mkdir(mode=0o700)
        info = os.lstat(self.root)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
            raise UidRegistryError(
                f"The uid registry {self.root} must be a folder owned by uid "
                f"{os.geteuid()} (it is not); refusing to use it."
            )
        if stat.S_IMODE(info.st_mode) != 0o700:
            self.root.chmod(0o700)  # only its owner may add or change claims
        for sub in (self._uids, self._owners):
            sub.mkdir(mode=0o700, exist_ok=True)

    # -- entries (call with the lock held) --------------------------------------------

    def _holder(self, uid: int) -> str | None:
        try:
            return (self._uids / str(uid)).read_text().rstrip("\n")
        except FileNotFoundError:
            return None

    def _uid_of(self, owner: str) -> int | None:
        """The owner's uid: from its index file, checked against the entry; else by
        scanning the entries (an index lost to a crash between two writes)."""
        with contextlib.suppress(FileNotFoundError, ValueError):
            uid = int((self._owners / _digest(owner)).read_text())
            if self._holder(uid) == owner:
                return uid
        for entry in os.scandir(self._uids):
            if entry.name.isdigit() and self._holder(int(entry.name)) == owner:
                self._write_index(int(entry.name), owner)
                return int(entry.name)
        return None

    def _register_fresh(self, owner: str, avoid: set[int]) -> int:
        taken = {int(name) for name in os.listdir(self._uids) if name.isdigit()}
        busy = avoid | taken | process_uids()
        ranges = subordinate_ranges()
        uid = self.base
        while uid <= MAX_UID:
            skip = next(
                (start + count for start, count in ranges if start <= uid < start + count), None
            )
            if skip is not None:  # a whole delegated range at once
                uid = skip
            elif uid not in busy and not system_use(uid) and self._create_entry(uid, owner):
                return uid
            else:
                uid += 1
        raise UidRegistryError(f"No free uid left at or above {self.base}.")

    def _create_entry(self, uid: int, owner: str) -> bool:
        """Register ``uid`` to ``owner``; False when an entry already exists."""
        try:
            fd = os.open(
                self._uids / str(uid), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600
            )
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as out:
            out.write(owner + "\n")
            out.flush()
            os.fsync(out.fileno())
        self._write_index(uid, owner)
        return True

    def _write_index(self, uid: int, owner: str) -> None:
        path = self._owners / _digest(owner)
        partial = path.with_suffix(".tmp")
        partial.write_text(str(uid))
        partial.replace(path)


def system_use(uid: int) -> str | None:
    """What on this system already names ``uid`` (as user, group or in a
    subordinate-id range), or None. Workspaces run with gid = uid, so a group of
    that number counts too."""
    with contextlib.suppress(KeyError):
        return f"the system user {pwd.getpwuid(uid).pw_name!r}"
    with contextlib.suppress(KeyError):
        return f"the system group {grp.getgrgid(uid).gr_name!r}"
    if any(start <= uid < start + count for start, count in subordinate_ranges()):
        return "a subordinate id range in /etc/subuid or /etc/subgid"
    return None


def process_uids() -> set[int]:
    """Every uid and gid (real, effective, saved, file system) of a running process."""
    ids: set[int] = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            ids.update(_process_ids(int(entry.name)))
    return ids


def processes_of(uid: int) -> list[int]:
    """The pids of running processes with ``uid`` among their user or group ids."""
    return [
        int(entry.name)
        for entry in os.scandir("/proc")
        if entry.name.isdigit() and uid in _process_ids(int(entry.name))
    ]


def _process_ids(pid: int) -> set[int]:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:  # gone meanwhile
        return set()
    return {
        int(value)
        for line in lines
        if line.startswith(("Uid:", "Gid:"))
        for value in line.split()[1:]
    }


def subordinate_ranges() -> list[tuple[int, int]]:
    """The ``(start, count)`` ranges of /etc/subuid and /etc/subgid, which container
    tools map users' namespaces onto."""
    ranges = []
    for file in _SUBID_FILES:
        with contextlib.suppress(OSError):
            for line in file.read_text().splitlines():
                parts = line.strip().split(":")
                if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                    ranges.append((int(parts[1]), int(parts[2])))
    return ranges


def _digest(owner: str) -> str:
    return hashlib.sha256(owner.encode()).hexdigest()


def _check_owner(owner: str) -> None:
    if not owner or "\n" in owner or "\0" in owner:
        raise ValueError(f"invalid uid owner {owner!r}")
