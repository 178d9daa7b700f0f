"""Administration: the system status (database, storage server, git, workspace
supervisor, knowledge-library sync, operations waiting for repair)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from balsam.domain.health.status import system_status
from balsam.web.deps import get_ctx, health_runner, library_sync_running
from balsam.web.pages.forms import require_session
from balsam.web.pages.render import render

router = APIRouter(include_in_schema=False)


@router.get("/admin")
def admin_start() -> RedirectResponse:
    """The administration starts at the system status (which decides who may see it)."""
    return RedirectResponse("/admin/status", status_code=303)


@router.get("/admin/status")
async def status_page(request: Request) -> HTMLResponse:
    """Each part's state now (bounded by a few seconds); administrators only."""
    session = await require_session(request)
    status = await run_in_threadpool(
        system_status,
        get_ctx(request),
        session.actor,
        health_runner(request),
        library_sync_running=library_sync_running(request),
    )
    return render(request, "admin/status.html", nav="admin", system=status)
