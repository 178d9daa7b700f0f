"""A project's activity: its audit records, for its owners and administrators."""

from __future__ import annotations

from balsam.context import AppContext
from balsam.domain.audit.views import AuditPage, page
from balsam.domain.identity.service import Actor
from balsam.domain.projects.service import ProjectService


def project_activity(
    ctx: AppContext, actor: Actor, project_id: str, *, limit: int = 50, offset: int = 0
) -> AuditPage:
    """The project's audit records, newest first; Forbidden for members who are
    not owners, NotFound for everyone else."""
    ProjectService(ctx).require_owner(actor, project_id, "audit.read")
    rows, total = ctx.audit.page(project_id=project_id, limit=limit, offset=offset)
    return page(rows, total, limit, offset)
