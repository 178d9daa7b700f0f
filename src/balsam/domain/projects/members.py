"""Project membership: who is in, with which role.

Rules: any member may list members; owners (and admins) add, re-role and
remove; a member may remove themself; the last owner can be neither removed
nor demoted. Removing a member revokes their S3 keys for the project and
stops and locks their workspaces on it.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from balsam.context import AppContext
from balsam.db.models import Credential, Membership, User
from balsam.domain.audit.service import AuditRecord
from balsam.domain.identity.service import Actor
from balsam.domain.projects.access import Need, require
from balsam.domain.projects.schemas import MemberAdd, Role
from balsam.domain.workspaces.service import WorkspaceService
from balsam.errors import N_, Conflict, InvalidInput, NotFound


class MemberService:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def list(self, actor: Actor, project_id: str) -> list[Membership]:
        with self.ctx.sessions() as session:
            require(self.ctx, session, actor, project_id, "member", "member.list")
            return list(
                session.scalars(
                    select(Membership)
                    .where(Membership.project_id == project_id)
                    .order_by(Membership.created_at)
                ).all()
            )

    def add(
        self, actor: Actor, project_id: str, data: MemberAdd, *, via_group: str | None = None
    ) -> Membership:
        """Add a member (``via_group``: the identity provider's group whose rule adds
        them; the membership then ends with the user's membership of that group)."""
        with self.ctx.sessions() as session, session.begin():
            require(self.ctx, session, actor, project_id, "owner", "member.add")
            user = session.scalar(select(User).where(User.username == data.username))
            if user is None or not user.is_active:
                raise InvalidInput(
                    N_("No active user '%(username)s'."), params={"username": data.username}
                )
            if session.get(Membership, (project_id, user.id)) is not None:
                raise Conflict(f"'{data.username}' is already a member.")
            membership = Membership(
                project_id=project_id, user_id=user.id, role=data.role, via_group=via_group
            )
            session.add(membership)
            session.flush()
            session.refresh(membership)
        details: dict[str, object] = {"role": data.role}
        if via_group:
            details["viaGroup"] = via_group
        self._audit(actor, "member.add", project_id, data.username, details)
        return membership

    def change_role(self, actor: Actor, project_id: str, username: str, role: Role) -> Membership:
        with self.ctx.sessions() as session, session.begin():
            require(self.ctx, session, actor, project_id, "owner", "member.update")
            membership = self._membership(session, project_id, username)
            if membership.role == "owner" and role != "owner":
                self._keep_an_owner(session, project_id)
            membership.role = role
        self._audit(actor, "member.update", project_id, username, {"role": role})
        return membership

    def remove(self, actor: Actor, project_id: str, username: str) -> None:
        """Remove a member and revoke their keys for this project."""
        with self.ctx.sessions() as session, session.begin():
            need: Need = "member" if username == actor.username else "owner"
            require(self.ctx, session, actor, project_id, need, "member.remove")
            membership = self._membership(session, project_id, username)
            if membership.role == "owner":
                self._keep_an_owner(session, project_id)
            keys = list(
                session.scalars(
                    select(Credential).where(
                        Credential.project_id == project_id,
                        Credential.user_id == membership.user_id,
                    )
                ).all()
            )
            for key in keys:
                self.ctx.providers.storage.revoke_key(key.access_key)
                session.delete(key)
            locked = WorkspaceService(self.ctx).lock_for(session, project_id, membership.user_id)
            session.delete(membership)
        for workspace_id in locked:
            self.ctx.supervisor.submit_stop(
                workspace_id, "Locked: the owner is no longer a member of the project"
            )
        self._audit(
            actor,
            "member.remove",
            project_id,
            username,
            {"revokedKeys": len(keys), "lockedWorkspaces": locked},
        )

    @staticmethod
    def _membership(session: Session, project_id: str, username: str) -> Membership:
        membership = session.scalar(
            select(Membership)
            .join(User)
            .where(Membership.project_id == project_id, User.username == username)
        )
        if membership is None:
            raise NotFound(f"'{username}' is not a member of this project.")
        return membership

    @staticmethod
    def _keep_an_owner(session: Session, project_id: str) -> None:
        owners = (
            session.scalar(
                select(func.count()).where(
                    Membership.project_id == project_id, Membership.role == "owner"
                )
            )
            or 0
        )
        if owners <= 1:
            raise Conflict(N_("A project needs at least one owner; add another owner first."))

    def _audit(
        self, actor: Actor, action: str, project_id: str, username: str, details: dict[str, object]
    ) -> None:
        self.ctx.audit.record(
            AuditRecord(
                actor=actor.username,
                action=action,
                target=f"project:{project_id}/user:{username}",
                project_id=project_id,
                request_id=actor.request_id,
                details=details,
            )
        )
