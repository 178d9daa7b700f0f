"""Who may do what on a project.

* Non-members (who are not admins) are told the project does not exist (404),
  so ids of other people's projects do not leak; the denial is audited.
* ``member`` rules admit members and owners; ``owner`` rules admit owners;
  admins pass every rule.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from balsam.context import AppContext
from balsam.db.models import Membership, Project
from balsam.domain.audit.service import AuditRecord
from balsam.domain.identity.service import Actor
from balsam.errors import N_, Forbidden, NotFound

Need = Literal["member", "owner"]


def role_of(session: Session, actor: Actor, project_id: str) -> str | None:
    return session.scalar(
        select(Membership.role).where(
            Membership.project_id == project_id, Membership.user_id == actor.user_id
        )
    )


def require(
    ctx: AppContext, session: Session, actor: Actor, project_id: str, need: Need, action: str
) -> Project:
    """The project if ``actor`` may do ``action`` on it; NotFound/Forbidden otherwise."""
    project = session.get(Project, project_id)
    role = role_of(session, actor, project_id) if project is not None else None
    if project is not None and (
        actor.is_admin or role == "owner" or (need == "member" and role == "member")
    ):
        return project
    deny(
        ctx,
        actor,
        project_id,
        action,
        "not a member" if role is None else f"role {role}",
        exists=project is not None,
    )
    if project is None or role is None:
        raise NotFound(N_("No project '%(project)s'."), params={"project": project_id})
    raise Forbidden(N_("Only the project's owners may do this."))


def deny(
    ctx: AppContext, actor: Actor, project_id: str, action: str, why: str, *, exists: bool = True
) -> None:
    """Audit a refused request (on the project's own trail when it exists)."""
    ctx.audit.record(
        AuditRecord(
            actor=actor.username,
            action=action,
            target=f"project:{project_id}"[:300],
            project_id=project_id if exists else None,
            outcome="denied",
            request_id=actor.request_id,
            details={"reason": why},
        )
    )
