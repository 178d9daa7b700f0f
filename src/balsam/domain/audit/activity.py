"""Who did what: a project's audit records for its owners and administrators, and
the whole trail, with filters, for administrators."""

from __future__ import annotations

from balsam.context import AppContext
from balsam.domain.audit.views import AuditPage, page
from balsam.domain.identity.service import Actor, require_admin
from balsam.domain.projects.service import ProjectService


def project_activity(
    ctx: AppContext, actor: Actor, project_id: str, *, limit: int = 50, offset: int = 0
) -> AuditPage:
    """The project's audit records, newest first; Forbidden for members who are
    not owners, NotFound for everyone else."""
    ProjectService(ctx).require_owner(actor, project_id, "audit.read")
    rows, total = ctx.audit.page(project_id=project_id, limit=limit, offset=offset)
    return page(rows, total, limit, offset)


def all_activity(
    ctx: AppContext,
    actor: Actor,
    *,
    project_id: str | None = None,
    user: str | None = None,
    action: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> AuditPage:
    """Every audit record (administrators only), newest first, filtered by project,
    user and the start of the action (e.g. ``project.``)."""
    require_admin(actor)
    rows, total = ctx.audit.page(
        project_id=project_id, actor=user, action=action, limit=limit, offset=offset
    )
    return page(rows, total, limit, offset)
