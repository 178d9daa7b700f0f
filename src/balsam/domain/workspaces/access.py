"""Who may open a workspace (through the proxy), and where it answers.

Only the workspace's owner opens it (every project member, when
``workspaces.members_may_open``); admins see it but do not open it. Non-members
are told it does not exist. A locked workspace opens for nobody. Refusals of
members are audited (``workspace.open``, denied).
"""

from __future__ import annotations

from balsam.context import AppContext
from balsam.db.models import Workspace
from balsam.domain.audit.service import AuditRecord
from balsam.domain.identity.service import Actor
from balsam.domain.projects.access import role_of
from balsam.errors import BalsamError, Forbidden, NotFound
from balsam.providers.workspaces.base import Endpoint


class WorkspaceNotRunning(BalsamError):
    status = 503
    reason = "workspace-not-running"


class WorkspaceAccess:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def open(self, actor: Actor, workspace_id: str) -> Endpoint:
        """Where ``actor``'s requests to the workspace go; NotFound (404), Forbidden
        (403) or WorkspaceNotRunning (503) otherwise."""
        with self.ctx.sessions() as session:
            ws = session.get(Workspace, workspace_id)
            member = ws is not None and role_of(session, actor, ws.project_id) is not None
            if ws is None or not (member or actor.is_admin):
                raise NotFound(f"No workspace '{workspace_id}'.")
            allowed = ws.owner_id == actor.user_id or (
                member and self.ctx.settings.workspaces.members_may_open
            )
            if not allowed or ws.locked:
                self._deny(actor, ws, "locked" if allowed else "not the owner")
                raise Forbidden(
                    "Only the workspace's owner can open it."
                    if not allowed
                    else "This workspace is locked."
                )
            state, reason = ws.state, ws.state_reason
        endpoint = (
            self.ctx.providers.workspaces.endpoint(workspace_id) if state == "running" else None
        )
        if endpoint is None:
            raise WorkspaceNotRunning(
                f"The workspace is {state}" + (f": {reason}" if reason else ".")
            )
        return endpoint

    def _deny(self, actor: Actor, ws: Workspace, why: str) -> None:
        self.ctx.audit.record(
            AuditRecord(
                actor=actor.username,
                action="workspace.open",
                outcome="denied",
                target=f"project:{ws.project_id}/workspace:{ws.id}",
                project_id=ws.project_id,
                details={"reason": why},
            )
        )
