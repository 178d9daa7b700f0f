"""The API's view of the audit trail (database rows → public schemas)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from balsam.db.models import AuditEvent


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
    return AuditPage(
        events=[
            AuditEventPublic(
                id=e.id,
                at=e.at,
                actor=e.actor,
                action=e.action,
                target=e.target,
                project_id=e.project_id,
                outcome=e.outcome,
                request_id=e.request_id,
                details=e.details,
                hash=e.hash,
                prev_hash=e.prev_hash,
            )
            for e in rows
        ],
        total=total,
        limit=limit,
        offset=offset,
    )
