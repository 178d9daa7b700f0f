"""Liveness and readiness, for load balancers, orchestrators and operators.

Both answer without authentication and say nothing but states."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from balsam.domain.health.service import HealthService, State
from balsam.web.deps import Ctx, health_runner, library_sync_running

router = APIRouter(tags=["Health"])


class Liveness(BaseModel):
    status: Literal["ok"] = "ok"


class ReadinessOut(BaseModel):
    status: Literal["ready", "unready"]
    components: dict[str, State] = Field(
        description="State of each part: database, storage, git, disk (free space on "
        "the data directory's file system), workspaces (the supervisor), librarySync: ok, "
        "failing, timeout or stopped."
    )


@router.get("/health", response_model=Liveness, operation_id="Health")
async def health() -> Liveness:
    """The process serves requests (liveness). Touches no backend."""
    return Liveness()


@router.get(
    "/health/ready",
    response_model=ReadinessOut,
    operation_id="HealthReady",
    responses={503: {"model": ReadinessOut, "description": "A part is not ready."}},
)
async def ready(request: Request, ctx: Ctx) -> JSONResponse:
    """Each part Balsam depends on, checked now within a few seconds; 503 (with
    ``Retry-After``) unless every one is ``ok``."""
    readiness = await run_in_threadpool(
        HealthService(ctx).readiness,
        health_runner(request),
        library_sync_running=library_sync_running(request),
    )
    body = ReadinessOut(
        status="ready" if readiness.ready else "unready", components=readiness.components
    )
    if readiness.ready:
        return JSONResponse(body.model_dump())
    return JSONResponse(body.model_dump(), status_code=503, headers={"Retry-After": "5"})
