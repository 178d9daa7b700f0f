"""The audit trail (admins: all; project owners: their project's)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from balsam.db.models import AuditEvent
from balsam.domain.projects.service import ProjectService
from balsam.web.api.v1.common import MEMBER, Limit, Offset, problems
from balsam.web.api.v1.projects import ProjectId
from balsam.web.deps import AdminActor, Ctx, CurrentActor

router = APIRouter(tags=["Audit"])


class AuditEventPublic(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    id: int
    at: datetime
    actor: str
    action: str
    target: str
    project_id: str | None = Field(None, alias="projectId")
    outcome: str
    request_id: str = Field(alias="requestId")
    details: dict[str, Any]
    hash: str
    prev_hash: str = Field(alias="prevHash")


class AuditPage(BaseModel):
    events: list[AuditEventPublic]
    total: int
    limit: int
    offset: int


def page(rows: list[AuditEvent], total: int, limit: int, offset: int) -> AuditPage:
    return AuditPage(events=[AuditEventPublic(
        id=e.id, at=e.at, actor=e.actor, action=e.action, target=e.target,
        project_id=e.project_id, outcome=e.outcome, request_id=e.request_id,
        details=e.details, hash=e.hash, prev_hash=e.prev_hash) for e in rows],
        total=total, limit=limit, offset=offset)


@router.get("/audit", response_model=AuditPage, operation_id="ListAudit",
            responses=problems(401, 403, 422))
def list_audit(actor: AdminActor, ctx: Ctx, limit: Limit = 50, offset: Offset = 0) -> AuditPage:
    """Every audit record, newest first (admins)."""
    rows, total = ctx.audit.page(limit=limit, offset=offset)
    return page(rows, total, limit, offset)


@router.get("/projects/{projectId}/audit", response_model=AuditPage,
            operation_id="ListProjectAudit", responses=MEMBER)
def list_project_audit(projectId: ProjectId, actor: CurrentActor, ctx: Ctx,
                       limit: Limit = 50, offset: Offset = 0) -> AuditPage:
    """The project's audit records, newest first (project owners and admins)."""
    ProjectService(ctx).require_owner(actor, projectId, "audit.read")
    rows, total = ctx.audit.page(project_id=projectId, limit=limit, offset=offset)
    return page(rows, total, limit, offset)
