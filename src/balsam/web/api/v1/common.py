"""Shared pieces of the v1 API: problem schemas and pagination parameters."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import BackgroundTasks, Query, Request
from pydantic import BaseModel, Field

from balsam.context import AppContext
from balsam.domain.queue_worker import ClaimNext, QueueWorker, RunOne


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


def wake_worker(
    request: Request,
    background: BackgroundTasks,
    name: str,
    claim_next: ClaimNext,
    run_one: RunOne,
    ctx: AppContext,
) -> None:
    """Tell the app's queue worker ``app.state.<name>`` that work was queued; an app
    served without its lifespan (tests) has none: the work then runs after the
    response, in the request's background tasks."""
    worker = getattr(request.app.state, name, None)
    if isinstance(worker, QueueWorker) and worker.running:
        worker.wake()
        return

    def run_queued() -> None:
        while (item := claim_next(ctx)) is not None:
            run_one(ctx, item, lambda: False)

    background.add_task(run_queued)
