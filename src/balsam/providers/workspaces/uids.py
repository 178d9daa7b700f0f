"""Which numeric user id each local workspace runs as, when Balsam runs as root.

A workspace's uid is claimed in the host-wide :class:`~balsam.hostuids.HostUidRegistry`
under the owner ``<data_dir>#workspace:<id>`` and recorded in ``<id>/uid``. It is
checked again before every start, because what was safe when it was claimed may
not be now: the registry must still hold it for this workspace, no passwd or group
entry or subordinate-id range may name it, and no process this workspace did not
start may run under it. A workspace whose check fails is not started
(:class:`WorkspaceStartError`): running it under a uid someone else has would hand
that someone's files to it, or its files to them.

Earlier releases counted uids per data directory (``.next-uid`` from 200000), so
two installations on one host could hand out the same uid. Their ``uid`` files are
adopted into the registry when the provider starts: a uid nobody else holds is
registered to its workspace; one another owner holds first is refused at start.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from balsam.hostuids import (
    WORKSPACE_MARK,
    HostUidRegistry,
    UidRegistryError,
    processes_of,
    system_use,
)
from balsam.providers.workspaces.base import WorkspaceStartError

log = logging.getLogger(__name__)

_ADMIN = "An admin must resolve this (see 'User ids' in docs/workspaces.md)."


class WorkspaceUids:
    """The uids of the workspaces under ``root`` (``<data_dir>/workspaces``)."""

    def __init__(self, root: Path, registry: HostUidRegistry) -> None:
        self.root = root
        self.registry = registry
        self._lock = threading.Lock()

    def owner(self, workspace_id: str) -> str:
        """The registry's name for a workspace: stable while the data directory stays."""
        return f"{self.root.resolve().parent}{WORKSPACE_MARK}{workspace_id}"

    def recorded(self, workspace_id: str) -> int | None:
        """The uid in ``<id>/uid``, or None when none was recorded."""
        try:
            return int((self.root / workspace_id / "uid").read_text())
        except (FileNotFoundError, ValueError):
            return None

    def ours(self, workspace_id: str) -> int | None:
        """The recorded uid while the registry still holds it for this workspace:
        only then may everything running under it be stopped as the workspace's."""
        uid = self.recorded(workspace_id)
        try:
            if uid is None or not self.registry.verify(uid, self.owner(workspace_id)):
                return None
        except UidRegistryError as exc:
            log.error("workspace %s: %s", workspace_id, exc)
            return None
        return uid

    def for_start(self, workspace_id: str, home: Path) -> int:
        """The uid to start the workspace as: claimed (first start), adopted (a uid
        an earlier release recorded) or found, then checked. Raises
        :class:`WorkspaceStartError` with the reason when it is not safe to use."""
        try:
            uid = self._claimed(workspace_id)
        except UidRegistryError as exc:
            raise WorkspaceStartError(f"No user id for the workspace: {exc}") from exc
        self._check(workspace_id, uid, home)
        return uid

    def _claimed(self, workspace_id: str) -> int:
        with self._lock:
            uid = self.recorded(workspace_id)
            if uid is None:
                uid = self.registry.claim(self.owner(workspace_id), avoid=self._used_here())
                (self.root / workspace_id / "uid").write_text(str(uid))
            elif not self.registry.adopt(uid, self.owner(workspace_id)):
                self._refuse_held(workspace_id, uid)
            return uid

    def migrate(self) -> None:
        """Adopt every recorded uid the registry does not hold yet (data directories
        of earlier releases); a conflict is logged here and refused at start, and so
        is an unusable registry (Balsam still serves everything else)."""
        try:
            self._adopt_all()
        except UidRegistryError as exc:
            log.error("workspace uids: %s; workspaces will not start", exc)

    def _adopt_all(self) -> None:
        for folder in sorted(self.root.iterdir()):
            uid = self.recorded(folder.name) if folder.is_dir() else None
            if uid is not None and not self.registry.adopt(uid, self.owner(folder.name)):
                log.warning(
                    "workspace %s: its uid %d is held by %s; it will not start",
                    folder.name,
                    uid,
                    self.registry.owner_of(uid) or "the system",
                )

    # -- checks -----------------------------------------------------------------------

    def _refuse_held(self, workspace_id: str, uid: int) -> None:
        holder = self.registry.owner_of(uid)
        log.warning(
            "workspace %s: uid %d is registered to %s, not to it",
            workspace_id,
            uid,
            holder or "nobody (the system names it)",
        )
        raise WorkspaceStartError(
            f"The workspace's user id {uid} is in use by another owner on this host "
            f"({'another workspace or Balsam installation' if holder else 'the system'}); "
            f"it is not started, so that neither can reach the other's files. {_ADMIN}"
        )

    def _check(self, workspace_id: str, uid: int, home: Path) -> None:
        named = system_use(uid)
        if named is not None:
            raise WorkspaceStartError(
                f"The workspace's user id {uid} now belongs to {named} on this host; it is "
                f"not started, so that it cannot reach that user's files. {_ADMIN}"
            )
        foreign = foreign_processes(uid, home)
        if foreign:
            log.warning(
                "workspace %s: processes %s run under its uid %d", workspace_id, foreign, uid
            )
            raise WorkspaceStartError(
                f"Processes this workspace did not start run under its user id {uid} "
                f"(pids {', '.join(map(str, foreign[:10]))}); it is not started. {_ADMIN}"
            )

    def _used_here(self) -> set[int]:
        """Uids recorded or owning files in the workspaces folder (two levels down):
        never handed out fresh, e.g. before an earlier release's workspace is adopted."""
        used: set[int] = set()
        for folder in self.root.iterdir():
            uid = self.recorded(folder.name) if folder.is_dir() else None
            if uid is not None:
                used.add(uid)
            used.update(_owners(folder, depth=2))
        return used


def foreign_processes(uid: int, home: Path) -> list[int]:
    """Pids running under ``uid`` that this workspace did not start: every process
    it starts inherits ``HOME=<home>`` (read from ``/proc/<pid>/environ``, root only)."""
    mark = f"HOME={home}".encode()
    foreign = []
    for pid in processes_of(uid):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile
            continue
        if mark not in environ:
            foreign.append(pid)
    return foreign


def _owners(path: Path, depth: int) -> set[int]:
    """User and group ids owning ``path`` and what lies up to ``depth`` levels below
    it (symbolic links are not followed)."""
    try:
        info = os.lstat(path)
    except OSError:
        return set()
    found = {info.st_uid, info.st_gid}
    if depth > 0 and path.is_dir() and not path.is_symlink():
        try:
            children = list(path.iterdir())
        except OSError:
            return found
        for child in children:
            found |= _owners(child, depth - 1)
    return found
