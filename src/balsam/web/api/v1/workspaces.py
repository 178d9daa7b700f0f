"""Workspaces and workspace templates (upstream paths plus lifecycle extensions)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from balsam.domain.workspaces.schemas import TemplatePublic, WorkspaceCreate, WorkspacePublic
from balsam.domain.workspaces.service import WorkspaceService
from balsam.web.api.v1.common import AUTH, MEMBER, problems
from balsam.web.deps import Ctx, CurrentActor
from balsam.web.origins import portal_origin, workspace_link

router = APIRouter(tags=["Workspace"])
MANAGE = problems(400, 401, 403, 404, 409, 422)


def _linked(request: Request, ctx: Ctx, ws: WorkspacePublic) -> WorkspacePublic:
    """``ws`` with its ``url`` absolute, where the browser opens it: its own origin, or
    the portal's when workspaces share it. Absolute, so that a client on another origin
    (upstream's UI) opens the workspace, not a page of its own."""
    url = workspace_link(request, ctx.settings, ws.url)
    if url.startswith("/"):
        url = portal_origin(request, ctx.settings) + url
    return ws.model_copy(update={"url": url})


@router.get(
    "/templates", response_model=list[TemplatePublic], operation_id="ListTemplates", responses=AUTH
)
def list_templates(actor: CurrentActor, ctx: Ctx) -> list[TemplatePublic]:
    """Workspace templates, with the exact packages of their built environments."""
    return WorkspaceService(ctx).templates()


@router.post(
    "/workspaces",
    status_code=201,
    response_model=WorkspacePublic,
    operation_id="CreateWorkspace",
    responses=MANAGE,
)
def create_workspace(
    body: WorkspaceCreate, actor: CurrentActor, ctx: Ctx, request: Request
) -> WorkspacePublic:
    """Create a workspace on a project branch and start it. Answers at once with
    state 'pending'; poll GET /workspaces/{id} until 'running' (or 'failed')."""
    service = WorkspaceService(ctx)
    return _linked(request, ctx, service.public(service.create(actor, body)))


@router.get(
    "/workspaces",
    response_model=list[WorkspacePublic],
    operation_id="ListWorkspaces",
    responses=MEMBER,
)
def list_workspaces(
    actor: CurrentActor,
    ctx: Ctx,
    request: Request,
    project_id: Annotated[str | None, Query(alias="projectId", max_length=63)] = None,
    branch_id: Annotated[str | None, Query(alias="branchId", max_length=100)] = None,
    all_: Annotated[
        bool,
        Query(
            alias="all",
            description="true: every workspace of your "
            "projects (all for admins); false: only your own.",
        ),
    ] = True,
) -> list[WorkspacePublic]:
    service = WorkspaceService(ctx)
    return [
        _linked(request, ctx, service.public(ws))
        for ws in service.list_for(
            actor, project_id=project_id, branch_id=branch_id, all_visible=all_
        )
    ]


@router.get(
    "/workspaces/{workspaceId}",
    response_model=WorkspacePublic,
    operation_id="GetWorkspace",
    responses=MEMBER,
)
def get_workspace(
    workspaceId: str, actor: CurrentActor, ctx: Ctx, request: Request
) -> WorkspacePublic:
    service = WorkspaceService(ctx)
    return _linked(request, ctx, service.public(service.get(actor, workspaceId)))


@router.post(
    "/workspaces/{workspaceId}/start",
    status_code=202,
    response_model=WorkspacePublic,
    operation_id="StartWorkspace",
    responses=MANAGE,
)
def start_workspace(
    workspaceId: str, actor: CurrentActor, ctx: Ctx, request: Request
) -> WorkspacePublic:
    """Start a stopped or failed workspace (owner only); its home is kept."""
    service = WorkspaceService(ctx)
    return _linked(request, ctx, service.public(service.start(actor, workspaceId)))


@router.post(
    "/workspaces/{workspaceId}/stop",
    status_code=202,
    response_model=WorkspacePublic,
    operation_id="StopWorkspace",
    responses=MANAGE,
)
def stop_workspace(
    workspaceId: str, actor: CurrentActor, ctx: Ctx, request: Request
) -> WorkspacePublic:
    """Stop the server (owner, project owners, admins); the home is kept."""
    service = WorkspaceService(ctx)
    return _linked(request, ctx, service.public(service.stop(actor, workspaceId)))


@router.delete(
    "/workspaces/{workspaceId}", status_code=204, operation_id="DeleteWorkspace", responses=MANAGE
)
async def delete_workspace(
    workspaceId: str,
    actor: CurrentActor,
    ctx: Ctx,
    project_id: Annotated[str | None, Query(alias="projectId", max_length=63)] = None,
    branch_id: Annotated[str | None, Query(alias="branchId", max_length=100)] = None,
) -> Response:
    """Delete the workspace and its home; revoke its S3 key and git token.
    ``projectId``/``branchId`` (upstream) are optional and must match."""
    await run_in_threadpool(
        WorkspaceService(ctx).delete, actor, workspaceId, project_id=project_id, branch_id=branch_id
    )
    return Response(status_code=204)
