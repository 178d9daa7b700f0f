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
from balsam.errors import N_, BalsamError, Forbidden, NotFound
from balsam.providers.workspaces.base import Endpoint


class WorkspaceNotRunning(BalsamError):
    status = 503
    reason = "workspace-not-running"


def _not_running(state: str) -> WorkspaceNotRunning:
    """Why a workspace cannot be opened now; ``details["starting"]`` when waiting
    a moment will do (then clients are asked to retry). The state's reason is on My
    pages and in the API's workspace, in the reader's language there."""
    if state in ("pending", "running"):  # starting, or its server just being found
        return WorkspaceNotRunning(
            N_("The workspace is starting; try again in a moment."), details={"starting": True}
        )
    return WorkspaceNotRunning(
        N_("The workspace is stopped: start it again on My pages.")
        if state == "stopped"
        else N_("The workspace did not start: see why on My pages, and start it again there.")
    )


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
                raise NotFound(N_("No workspace '%(id)s'."), params={"id": workspace_id})
            allowed = ws.owner_id == actor.user_id or (
                member and self.ctx.settings.workspaces.members_may_open
            )
            if not allowed or ws.locked:
                self._deny(actor, ws, "locked" if allowed else "not the owner")
                raise Forbidden(
                    N_("Only the workspace's owner can open it.")
                    if not allowed
                    else N_("This workspace is locked: its owner is no longer a member.")
                )
            state = ws.state
        endpoint = (
            self.ctx.providers.workspaces.endpoint(workspace_id) if state == "running" else None
        )
        if endpoint is None:
            raise _not_running(state)
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
