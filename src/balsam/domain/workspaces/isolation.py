"""Who may run workspaces when workspaces are not isolated from each other.

As root, the local provider runs every workspace under a numeric user id of its
own (Kubernetes: a pod of its own), so a workspace can read neither Balsam's data
nor another user's home. Not as root, every workspace runs as Balsam's own user
and can read everything Balsam can: its database, repositories, object data and
keys, and every other workspace's home. Such an installation is safe for one
user only, so by default workspaces run for one Balsam user:

* *the* user is the owner of the earliest-created workspace that still exists
  (anyone, while there is none);
* everyone else gets 409 (reason ``workspaces-not-isolated``) when creating or
  starting a workspace;
* an admin may accept the risk with ``workspaces.single_uid_for_all_users``;
  Balsam then warns in its log at startup (``balsam.wiring``), and every workspace's API shape
  says ``isolation: "none"``.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from balsam.db.models import Workspace
from balsam.errors import Conflict
from balsam.providers.workspaces.base import WorkspaceProvider
from balsam.settings import Settings


class WorkspacesNotIsolated(Conflict):
    """Another user has this installation's (unisolated) workspaces."""

    reason = "workspaces-not-isolated"


def isolation(provider: WorkspaceProvider) -> Literal["per-workspace", "none"]:
    """``"per-workspace"`` when each workspace runs apart from Balsam's data and other
    workspaces, else ``"none"`` (they all run as Balsam's own user)."""
    return "per-workspace" if provider.isolates_users else "none"


def check_may_run(
    session: Session, provider: WorkspaceProvider, settings: Settings, user_id: int
) -> None:
    """Raise :class:`WorkspacesNotIsolated` unless workspaces may run for ``user_id``."""
    if provider.isolates_users or settings.workspaces.single_uid_for_all_users:
        return
    first = session.scalar(
        select(Workspace.owner_id).order_by(Workspace.created_at, Workspace.id).limit(1)
    )
    if first is not None and first != user_id:
        raise WorkspacesNotIsolated(
            "Workspaces on this installation run as Balsam's own system user (Balsam does "
            "not run as root), where they could read each other's files and Balsam's data; "
            "so they run for one user only, and another user has them. Ask an admin to run "
            "Balsam as root."
        )
