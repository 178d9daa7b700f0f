"""Shared pieces of the v1 API: problem schemas and pagination parameters."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel, Field


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    reason: str = Field(description="Short machine-readable reason.")
    instance: str | None = None
    request_id: str | None = Field(None, alias="requestId")
    errors: list[dict[str, Any]] | None = None


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the given error statuses."""
    return {
        s: {
            "model": Problem,
            "content": {"application/problem+json": {}},
            "description": Problem.__doc__ or "",
        }
        for s in statuses
    }


AUTH = problems(401, 403)
MEMBER = problems(400, 401, 403, 404, 422)

Limit = Annotated[int, Query(ge=1, le=1000, description="Page size.")]
Offset = Annotated[int, Query(ge=0, le=10_000_000, description="Items to skip.")]
