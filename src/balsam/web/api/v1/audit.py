"""The audit trail (admins: all; project owners: their project's)."""

from __future__ import annotations

from fastapi import APIRouter

from balsam.domain.audit.activity import project_activity
from balsam.domain.audit.views import AuditPage, page
from balsam.web.api.v1.common import MEMBER, Limit, Offset, problems
from balsam.web.api.v1.projects import ProjectId
from balsam.web.deps import AdminActor, Ctx, CurrentActor

router = APIRouter(tags=["Audit"])


@router.get(
    "/audit", response_model=AuditPage, operation_id="ListAudit", responses=problems(401, 403, 422)
)
def list_audit(actor: AdminActor, ctx: Ctx, limit: Limit = 50, offset: Offset = 0) -> AuditPage:
    """Every audit record, newest first (admins)."""
    rows, total = ctx.audit.page(limit=limit, offset=offset)
    return page(rows, total, limit, offset)


@router.get(
    "/projects/{projectId}/audit",
    response_model=AuditPage,
    operation_id="ListProjectAudit",
    responses=MEMBER,
)
def list_project_audit(
    projectId: ProjectId, actor: CurrentActor, ctx: Ctx, limit: Limit = 50, offset: Offset = 0
) -> AuditPage:
    """The project's audit records, newest first (project owners and admins)."""
    return project_activity(ctx, actor, projectId, limit=limit, offset=offset)
